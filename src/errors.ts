// Typed errors with a stable code, a message that says what to do, and the CLI's exit status.
// docs/cli.md lists every code; keep it in step. SMFS's codes live in smfs/errors.ts.
import type { SmfsErrorCode } from './smfs/errors';

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
} as const;

export type ErrorCode =
  | SmfsErrorCode
  | 'MAELSTROM_ERR_CONFIG'
  | 'MAELSTROM_ERR_NATIVE'
  | 'MAELSTROM_ERR_LAB'
  | 'MAELSTROM_ERR_NOT_ROOT'
  | 'MAELSTROM_ERR_INTERFACE'
  | 'MAELSTROM_ERR_MTU'
  | 'MAELSTROM_ERR_BPFFS'
  | 'MAELSTROM_ERR_PEER_UNREACHABLE'
  | 'MAELSTROM_ERR_ATTACH'
  | 'MAELSTROM_ERR_ALREADY_RUNNING'
  | 'MAELSTROM_ERR_NO_GATEWAY'
  | 'MAELSTROM_ERR_CONTROL_STALE';

export class MaelstromError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MaelstromError';
    this.code = code;
    this.exitCode = options.exitCode ?? ExitCode.failure;
  }
}

export class ConfigError extends MaelstromError {
  constructor(message: string) {
    super('MAELSTROM_ERR_CONFIG', message, { exitCode: ExitCode.usage });
    this.name = 'ConfigError';
  }
}
