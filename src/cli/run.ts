// Runs a commander program with the project's error conventions: a MaelstromError prints its
// code and message and exits with its status; usage errors exit 2; anything else is a bug and
// prints its stack.
import { CommanderError } from 'commander';
import type { Command } from 'commander';
import { ExitCode, MaelstromError } from '../errors';

export async function run(program: Command, argv: string[]): Promise<void> {
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
