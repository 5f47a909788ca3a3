// Runs a commander program with the project's error conventions: a MaelstromError prints its
// code and message and exits with its status; usage errors exit 2; anything else is a bug and
// prints its stack. A reader that goes away (`smfs ls | head`) ends the command quietly.
import { CommanderError } from 'commander';
import type { Command } from 'commander';
import { ExitCode, MaelstromError } from '../errors';

// The status a shell reports for a process ended by SIGPIPE (128 + 13). Node ignores SIGPIPE, so
// a write to a closed pipe fails with EPIPE instead; the command then ends as a C program would.
export const EXIT_PIPE_CLOSED = 128 + 13;

// stdout or stderr closed by its reader: nobody is left to tell, so exit quietly. Any other
// failure to write them is said in one line on stderr (if that still works), without a stack.
function endOnClosedOutput(name: string, stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') process.exit(EXIT_PIPE_CLOSED);
    if (stream !== process.stderr) process.stderr.write(`${name}: cannot write to stdout: ${err.message}\n`);
    process.exit(ExitCode.failure);
  });
}

export async function run(program: Command, argv: string[]): Promise<void> {
  endOnClosedOutput(program.name(), process.stdout);
  endOnClosedOutput(program.name(), process.stderr);
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program)) c.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    } else if (err instanceof MaelstromError) {
      process.stderr.write(`${program.name()}: ${err.message} [${err.code}]\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`${program.name()}: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = ExitCode.failure;
    }
  }
}
