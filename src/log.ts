// Structured logs: one JSON object per line (pino), to stderr or a file, for the gateway's
// lifecycle and for events worth keeping (tuning). Every record names its `event`:
//
//   const log = createLogger({ level: 'info' });
//   log.info({ event: 'tune', r: 8, c: 3, epoch: 2 }, 'code changed');
//
// Fields and events are in docs/gateway.md, "Logs". stdout is not for logs: the CLI's reports
// and stats lines go there and scripts parse them.
import pino from 'pino';
import type { DestinationStream, Logger } from 'pino';
import { ConfigError, MaelstromError } from './errors';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogOptions {
  level?: string;                   // default info
  file?: string;                    // append here instead of writing to stderr
  destination?: DestinationStream;  // anything with write(line), instead of either (tests)
}

function checkLevel(level: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`--log-level is one of ${LOG_LEVELS.join(', ')}, got '${level}'`);
  }
  return level as LogLevel;
}

function open(file: string | undefined): DestinationStream {
  // Synchronous writes: the few lifecycle lines must all be out when the process exits.
  if (file === undefined) return pino.destination({ dest: 2, sync: true });
  try {
    return pino.destination({ dest: file, sync: true, append: true });
  } catch (err) {
    throw new ConfigError(`--log-file ${file}: cannot open it for appending (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export function createLogger(options: LogOptions = {}): Logger {
  const level = checkLevel(options.level ?? 'info');
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, options.destination ?? open(options.file));
}

// For code that may run without a logger.
export const silentLogger: Logger = pino({ level: 'silent' }, { write: () => undefined });

// What an error adds to a log record: a known error (MaelstromError) its code and exit status,
// the message of its cause; anything else the error itself, with its stack.
export function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof MaelstromError)) return { err };
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return { code: err.code, exitCode: err.exitCode, ...(cause === undefined ? {} : { cause }) };
}

// Wraps a command's action: makes its logger from --log-level and --log-file, and logs an
// error that ends the action (event "error", with its code) before it goes on to the CLI.
export function withLogger<O extends { logLevel?: string; logFile?: string }, A extends unknown[]>(
  action: (options: O, log: Logger, ...rest: A) => Promise<void>,
): (options: O, ...rest: A) => Promise<void> {
  return async (options, ...rest) => {
    const log = createLogger({ level: options.logLevel, file: options.logFile });
    try {
      await action(options, log, ...rest);
    } catch (err) {
      log.error({ event: 'error', ...errorFields(err) }, (err as Error)?.message ?? String(err));
      throw err;
    }
  };
}
