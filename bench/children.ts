// The node children a bench starts (a storage server, the load generator, the FUSE mount...):
// spawned with their stderr kept for the error message, every one pushed on `children` for the
// caller to end, and their first stdout line read as their JSON start report.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { MaelstromError } from '../src/errors';

export interface BenchChild {
  child: ChildProcess;
  lines: readline.Interface;
  stderr: () => string;
}

export function spawnChild(bin: string, args: string[], env: NodeJS.ProcessEnv, children: ChildProcess[]): BenchChild {
  const c = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  children.push(c);
  let err = '';
  c.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  return { child: c, lines: readline.createInterface({ input: c.stdout! }), stderr: () => err.trim() };
}

// The child's first line, parsed; an error naming `what` if it is not JSON or the child exits first.
export function firstLine(c: BenchChild, what: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    c.lines.once('line', (l) => {
      try {
        resolve(JSON.parse(l) as Record<string, unknown>);
      } catch {
        reject(new MaelstromError('MAELSTROM_ERR_LAB', `${what} printed ${l.slice(0, 200)}, not its JSON start report`));
      }
    });
    c.child.once('exit', () => reject(new MaelstromError('MAELSTROM_ERR_LAB', `${what} exited: ${c.stderr()}`)));
  });
}
