// Runs `maelstrom up` on both gateways of a lab and follows their counters.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { EngineStats } from '../native/addon';
import { LabError } from './netns';
import type { Lab } from './lab';
import { ADDRESSES } from './topology';
import { CONTROL_DIR } from '../gateway/control';

const cli = path.resolve(__dirname, '..', 'cli', 'maelstrom.js');

export interface GatewayProcess {
  child: ChildProcess;
  control: string; // its control socket (maelstrom watch --control ...)
  up: Record<string, unknown>;
  latest(): EngineStats | undefined;
  // The next stats line (every --stats-interval), or after timeoutMs or the gateway's exit the
  // latest one.
  nextStats(timeoutMs?: number): Promise<EngineStats | undefined>;
  // SIGTERM, then the final counters.
  stop(): Promise<EngineStats | undefined>;
}

// Where a gateway in the lab namespace `ns` keeps its control socket when not told (as
// runDir() finds it from inside: the namespace's inode names its directory).
export function labRunDir(ns: string): string {
  return path.join(CONTROL_DIR, `netns-${fs.statSync(path.join('/run/netns', ns)).ino}`);
}

export function controlPath(ns: string): string {
  return path.join(labRunDir(ns), 'lan0.sock');
}

// What a gateway needs of the lab it runs in: a way to start processes in a namespace (killed
// with the lab), and the lab's pair key.
export interface GatewayHost {
  spawn: Lab['spawn'];
  keys: { gateway: string };
}

// `maelstrom up --lan lan0 --wan wan0` in namespace `ns`, its counters followed.
export async function startGatewayIn(lab: GatewayHost, ns: string, peer: string, remote: string, cpu: number, extra: string[]): Promise<GatewayProcess> {
  const control = controlPath(ns);
  // The lab's key, unless the caller chose (another key file, or --insecure-no-auth).
  const key = extra.includes('--key-file') || extra.includes('--insecure-no-auth') ? [] : ['--key-file', lab.keys.gateway];
  const child = lab.spawn(ns, [process.execPath, cli, 'up', '--lan', 'lan0', '--wan', 'wan0', '--peer', peer,
    '--remote', remote, '--mount-bpffs', '--stats-interval', '0.2', '--json', '--cpu', String(cpu), ...key, ...extra]);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  let latest: EngineStats | undefined;
  const waiting = new Set<() => void>();
  const lines = readline.createInterface({ input: child.stdout! });
  const up = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const failed = (code: number | null) => reject(new LabError(`the gateway in ${ns} exited (${code}): ${stderr.trim()}`));
    child.once('exit', failed);
    lines.on('line', (text) => {
      const msg = JSON.parse(text) as { event: string } & EngineStats;
      if (msg.event === 'up') {
        child.off('exit', failed);
        resolve(msg as unknown as Record<string, unknown>);
      } else if (msg.event === 'stats') {
        latest = msg;
        for (const wake of [...waiting]) wake();
      }
    });
  });
  return {
    child,
    control,
    up,
    latest: () => latest,
    nextStats: (timeoutMs = 5000) => new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        waiting.delete(wake);
        child.off('exit', wake);
        resolve(latest);
      };
      const timer = setTimeout(wake, timeoutMs);
      waiting.add(wake);
      child.once('exit', wake);
    }),
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(latest);
      child.once('exit', () => resolve(latest));
      child.kill('SIGTERM');
    }),
  };
}

// Each engine thread gets a CPU of its own (as far as there are CPUs): through veth, frames an
// unpinned thread sends are queued on whichever CPU it ran on, and a migration reorders them,
// which TCP takes for loss (docs/decisions.md 25).
// `extra` goes to both gateways, `only.a` and `only.b` to one.
export async function startGateways(lab: Lab, extra: string[] = [], only: { a?: string[]; b?: string[] } = {}): Promise<{ a: GatewayProcess; b: GatewayProcess }> {
  const cpus = os.cpus().length;
  const a = await startGatewayIn(lab, lab.ns.gwA, ADDRESSES.gwBWan, ADDRESSES.siteB, 0, [...extra, ...(only.a ?? [])]);
  try {
    const b = await startGatewayIn(lab, lab.ns.gwB, ADDRESSES.gwAWan, ADDRESSES.siteA, 1 % cpus, [...extra, ...(only.b ?? [])]);
    return { a, b };
  } catch (err) {
    await a.stop();
    throw err;
  }
}
