// Typed errors with a stable code, a message that says what to do, and the CLI's exit status.
// docs/cli.md ("Errors and exit status") lists every code of the gateway with its status; keep it
// in step. The other families extend MaelstromError with codes of their own (SmfsError in
// smfs/errors.ts, NetworkSyncError in feedback/listener.ts); a code not listed here exits 1.

export const ExitCode = {
  ok: 0,
  failure: 1,     // the command failed (native addon, lab, daemon, internal error)
  usage: 2,       // bad usage or configuration: nothing was touched
  environment: 3, // the host is not ready: interfaces, MTU, bpffs, peer, another gateway
  permission: 4,  // not root
  attach: 5,      // the kernel refused the XDP program or an AF_XDP socket
} as const;

const EXIT_STATUS = {
  MAELSTROM_ERR_CONFIG: ExitCode.usage,
  MAELSTROM_ERR_KEY: ExitCode.usage,
  MAELSTROM_ERR_NATIVE: ExitCode.failure,
  MAELSTROM_ERR_LAB: ExitCode.failure,
  MAELSTROM_ERR_DAEMON: ExitCode.failure,
  MAELSTROM_ERR_NOT_ROOT: ExitCode.permission,
  MAELSTROM_ERR_INTERFACE: ExitCode.environment,
  MAELSTROM_ERR_MTU: ExitCode.environment,
  MAELSTROM_ERR_BPFFS: ExitCode.environment,
  MAELSTROM_ERR_PEER_UNREACHABLE: ExitCode.environment,
  MAELSTROM_ERR_NO_XDP: ExitCode.environment,
  MAELSTROM_ERR_NO_ZERO_COPY: ExitCode.environment,
  MAELSTROM_ERR_ALREADY_ATTACHED: ExitCode.environment,
  MAELSTROM_ERR_ALREADY_RUNNING: ExitCode.environment,
  MAELSTROM_ERR_NO_GATEWAY: ExitCode.environment,
  MAELSTROM_ERR_CONTROL_STALE: ExitCode.environment,
  MAELSTROM_ERR_METRICS: ExitCode.environment,
  MAELSTROM_ERR_ATTACH: ExitCode.attach,
} as const;

export type ErrorCode = keyof typeof EXIT_STATUS;

export const ERROR_CODES = Object.keys(EXIT_STATUS) as (keyof typeof EXIT_STATUS)[];

export function isErrorCode(code: unknown): code is keyof typeof EXIT_STATUS {
  return typeof code === 'string' && Object.hasOwn(EXIT_STATUS, code);
}

// The exit status of every code, for docs and tests.
export function exitStatus(code: string): number {
  return isErrorCode(code) ? EXIT_STATUS[code] : ExitCode.failure;
}

export class MaelstromError<Code extends string = ErrorCode> extends Error {
  readonly code: Code;
  readonly exitCode: number;

  // The exit status follows from the code (EXIT_STATUS); options.exitCode only for relaying
  // another process's status.
  constructor(code: Code, message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MaelstromError';
    this.code = code;
    this.exitCode = options.exitCode ?? exitStatus(code);
  }
}

export class ConfigError extends MaelstromError {
  constructor(message: string) {
    super('MAELSTROM_ERR_CONFIG', message);
    this.name = 'ConfigError';
  }
}
