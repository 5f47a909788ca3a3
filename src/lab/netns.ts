// Thin, checked wrappers over iproute2 for the lab. Every command names the namespace it acts
// in; nothing here touches the root namespace's interfaces, addresses or routes.
import type { ChildProcess } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';
import { MaelstromError } from '../errors';

export class LabError extends MaelstromError {
  constructor(message: string) {
    super('MAELSTROM_ERR_LAB', message);
    this.name = 'LabError';
  }
}

export function run(argv: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: options.timeoutMs ?? 30_000 });
  if (!options.allowFail && (r.status !== 0 || r.error)) {
    throw new LabError(`'${argv.join(' ')}' failed: ${r.error?.message ?? r.stderr.trim()}`);
  }
  return r.stdout;
}

export function inNs(ns: string, argv: string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

// Starts a long-running command in a namespace, kept in `children` while it runs (a lab kills
// what is left there, by PID, when it goes).
export function spawnInNs(ns: string, argv: string[], children: Set<ChildProcess>): ChildProcess {
  const [cmd, ...args] = inNs(ns, argv);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function nsRun(ns: string, argv: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): string {
  return run(inNs(ns, argv), options);
}

export function listNamespaces(): string[] {
  return run(['ip', '-j', 'netns', 'list'], { allowFail: true })
    .trim()
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return (JSON.parse(line) as { name: string }[]).map((n) => n.name);
      } catch {
        return [];
      }
    });
}

export function deleteNamespace(ns: string): void {
  run(['ip', 'netns', 'del', ns], { allowFail: true });
}
