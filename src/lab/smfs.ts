// SMFS in the lab: a primary storage server in hostA mirroring to one in hostB through the
// gateways (over TLS unless told otherwise), the load that drives it (smfs-load.ts, in hostA)
// and the checks made at the mirror site, all holding one credential made for the lab run.
// What the SMFS network tests and `smfs bench` share.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Lab } from './lab';
import { LabError, inNs } from './netns';
import { ADDRESSES } from './topology';
import type { AckLevel } from '../smfs/mirror';
import type { AppendLevel } from '../smfs/client';
import type { TagCacheStats } from '../smfs/tag-cache';
import type { HandoverReport, Verdict } from '../smfs/handover';
import { CREDENTIAL_FILE, createCredential } from '../smfs/credentials';

const smfsBin = path.resolve(__dirname, '..', 'cli', 'smfs.js');
const loadTool = path.resolve(__dirname, 'smfs-load.js');

export const PRIMARY = `${ADDRESSES.hostA}:7610`;
export const MIRROR = `${ADDRESSES.hostB}:7610`;
// The sites a tagged client at the client site (hostC) looks for a primary among, in order.
export const SITES = `${PRIMARY},${MIRROR}`;

// A credential for one lab run's servers and clients, in a directory of its own (mode 0700);
// remove() deletes both.
export function labCredential(): { file: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-lab-credential-'));
  fs.chmodSync(dir, 0o700);
  const { file } = createCredential(path.join(dir, CREDENTIAL_FILE));
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface SmfsServer {
  child: ChildProcess;
  listening: Record<string, unknown>;
  events: Record<string, unknown>[];
  // Resolves once an event line named `event` has been printed (false after timeoutMs).
  until(event: string, timeoutMs: number): Promise<boolean>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startServer(lab: Lab, ns: string, args: string[]): Promise<SmfsServer> {
  const child = lab.spawn(ns, [process.execPath, smfsBin, 'storage', '--json', ...args]);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const events: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const lines = readline.createInterface({ input: child.stdout! });
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const failed = (code: number | null) => reject(new LabError(`smfs storage in ${ns} exited (${code}): ${stderr.trim()}`));
    child.once('exit', failed);
    lines.on('line', (text) => {
      const o = JSON.parse(text) as Record<string, unknown>;
      events.push(o);
      for (const w of waiters) w();
      if (o.event === 'listening') {
        child.off('exit', failed);
        resolve(o);
      }
    });
  });
  return {
    child, listening, events,
    until: (event, timeoutMs) => new Promise((resolve) => {
      const check = () => {
        if (!events.some((e) => e.event === event)) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => { waiters.delete(check); resolve(false); }, timeoutMs);
      waiters.add(check);
      check();
    }),
    stop: (signal = 'SIGTERM') => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    }),
  };
}

// The mirror in hostB and the primary in hostA, the primary trusting gateway A's feedback, both
// with the credential file `credentials`; the stream over TLS unless `mirrorTls` is false.
// Resolves once the primary's link to the mirror is live.
export async function startSmfsPair(
  lab: Lab, credentials: string, dirs: { primary: string; mirror: string }, options: { fsync?: string; ackTimeoutMs?: number; mirrorTls?: boolean; codedShares?: number } = {},
): Promise<{ primary: SmfsServer; mirror: SmfsServer }> {
  const common = ['--fsync', options.fsync ?? 'always', '--credentials', credentials, '--mirror-tls', options.mirrorTls === false ? 'off' : 'on'];
  const mirror = await startServer(lab, lab.ns.hostB, ['--dir', dirs.mirror, '--role', 'mirror', '--host', ADDRESSES.hostB, '--port', '7610', ...common]);
  try {
    const primary = await startServer(lab, lab.ns.hostA, ['--dir', dirs.primary, '--host', ADDRESSES.hostA, '--port', '7610', ...common,
      '--mirror', MIRROR, '--gateway', ADDRESSES.gwALan, '--feedback-key', lab.keys.feedback, '--ack-timeout', String(options.ackTimeoutMs ?? 10_000),
      ...(options.codedShares ? ['--coded-shares', String(options.codedShares)] : [])]);
    if (!await primary.until('mirror-live', 10_000)) {
      await primary.stop('SIGKILL');
      throw new LabError(`the primary's link to the mirror did not go live: ${JSON.stringify(primary.events)}`);
    }
    return { primary, mirror };
  } catch (err) {
    await mirror.stop('SIGKILL');
    throw err;
  }
}

export interface LoadAck {
  i: number;
  a: string[];
  t: bigint; // CLOCK_MONOTONIC ns, comparable with process.hrtime.bigint() here
  s?: number; // the group's sequence number (level tagged)
}

export interface LoadSummary {
  appends: number;
  bytes: number;
  seconds: number;
  latencyUs: { p50: number; p99: number; max: number };
  errors: Record<string, number>;
  misordered?: number;
  levelsUs?: Record<AckLevel, { p50: number; p99: number; n: number }>;
  cache?: TagCacheStats;
  memory?: { t: number; rss: number; heap: number; external: number; cache: number }[];
  drainMs?: number;
}

// What a tagged client that lost its primary did with its cache.
export interface LoadHandover {
  site?: string;
  verdict?: Verdict;
  code?: string;
  error?: string;
  lost?: number[];
}

export interface LoadOptions {
  level: AppendLevel;
  logs?: number;
  blocks?: number;
  blockSize?: number;
  clients?: number;
  appends?: number;
  seconds?: number;
  acks?: boolean;
  timings?: boolean;
  ns?: string;             // where it runs (default hostA)
  // Level tagged:
  cacheBytes?: number;
  sites?: string;          // hand the cache over to the new primary among these once the primary is lost
  deadAfterMs?: number;
  noShares?: boolean;
  memory?: boolean;        // sample memory once a second, after a GC
  drain?: boolean;         // after the run, wait until the cache is empty
}

// smfs-load append (in hostA unless told) against the primary.
export function startLoad(lab: Lab, credentials: string, o: LoadOptions): { child: ChildProcess; acks: LoadAck[]; handover: Promise<LoadHandover | undefined>; done: Promise<LoadSummary> } {
  const tagged = [
    ...(o.cacheBytes ? ['--cache-bytes', String(o.cacheBytes)] : []), ...(o.sites ? ['--sites', o.sites] : []),
    ...(o.deadAfterMs ? ['--dead-after', String(o.deadAfterMs)] : []), ...(o.noShares ? ['--no-shares'] : []),
    ...(o.memory ? ['--memory'] : []), ...(o.drain ? ['--drain'] : []),
  ];
  const child = lab.spawn(o.ns ?? lab.ns.hostA, [process.execPath, ...(o.memory ? ['--expose-gc'] : []), loadTool, 'append', '--server', PRIMARY, '--credentials', credentials, '--level', o.level,
    '--logs', String(o.logs ?? 1), '--blocks', String(o.blocks ?? 4), '--block-size', String(o.blockSize ?? 4096),
    '--clients', String(o.clients ?? 1), '--appends', String(o.appends ?? 1e9), '--seconds', String(o.seconds ?? 3600), ...(o.acks ? ['--acks'] : []), ...(o.timings ? ['--timings'] : []), ...tagged]);
  const acks: LoadAck[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const lines = readline.createInterface({ input: child.stdout! });
  let gotHandover: (h: LoadHandover | undefined) => void = () => undefined;
  const handover = new Promise<LoadHandover | undefined>((resolve) => { gotHandover = resolve; });
  const done = new Promise<LoadSummary>((resolve, reject) => {
    lines.on('line', (text) => {
      const o = JSON.parse(text) as Record<string, unknown>;
      if (o.error) reject(new LabError(`smfs-load: ${o.error as string}`));
      else if (o.handover) gotHandover(o.handover as LoadHandover);
      else if (o.done) {
        gotHandover(undefined);
        resolve(o as unknown as LoadSummary);
      } else acks.push({ i: o.i as number, a: o.a as string[], t: BigInt(o.t as string), s: o.s as number | undefined });
    });
    child.once('exit', (code, signal) => {
      gotHandover(undefined);
      reject(new LabError(`smfs-load exited (${code ?? signal}) without a summary: ${stderr.trim()}`));
    });
  });
  done.catch(() => undefined);
  return { child, acks, handover, done };
}

// Reads every acknowledged block back from the server at `server` (from the mirror's site).
export function verifyAcked(lab: Lab, credentials: string, acks: LoadAck[], server = MIRROR, blockSize = 4096): Promise<{ checked: number; missing: number; bad: number; errors: Record<string, number> }> {
  const [cmd, ...args] = inNs(lab.ns.hostB, [process.execPath, loadTool, 'verify', '--server', server, '--credentials', credentials, '--block-size', String(blockSize)]);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('exit', (code) => {
      try {
        const o = JSON.parse(stdout.trim().split('\n').pop() ?? '') as { checked: number; missing: number; bad: number; errors: Record<string, number>; error?: string };
        if (o.error || code !== 0) throw new Error(o.error ?? `exit ${code}`);
        resolve(o);
      } catch (err) {
        reject(new LabError(`smfs-load verify: ${(err as Error).message} ${stderr.trim()}`));
      }
    });
    child.stdin.end(acks.map((a) => JSON.stringify({ i: a.i, a: a.a })).join('\n') + '\n');
  });
}

// `smfs promote` of the mirror in hostB.
export function promoteMirror(lab: Lab, credentials: string): Record<string, unknown> {
  const text = lab.exec(lab.ns.hostB, [process.execPath, smfsBin, 'promote', '--host', ADDRESSES.hostB, '--port', '7610', '--credentials', credentials, '--json']);
  return JSON.parse(text.trim()) as Record<string, unknown>;
}

// `smfs promote` of the mirror in hostB, as a child, without blocking this process (which the
// clients' tools report to meanwhile); with awaitClients, it returns once that many tagged
// clients' caches are replayed (at most graceS seconds). `track` hears of the child when it
// starts and ends (the reproduction ends it on Ctrl-C).
export function promoteAwaiting(lab: Lab, credentials: string, o: { awaitClients: number; graceS: number }, track?: { started(c: ChildProcess): void; ended(c: ChildProcess): void }): Promise<{ lastSeq: number; handover?: HandoverReport } & Record<string, unknown>> {
  const child = lab.spawn(lab.ns.hostB, [process.execPath, smfsBin, 'promote', '--host', ADDRESSES.hostB, '--port', '7610', '--credentials', credentials, '--json',
    ...(o.awaitClients > 0 ? ['--await-clients', String(o.awaitClients), '--grace', String(o.graceS)] : [])]);
  track?.started(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      track?.ended(child);
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        resolve(JSON.parse(stdout.trim()) as { lastSeq: number; handover?: HandoverReport } & Record<string, unknown>);
      } catch (err) {
        reject(new LabError(`smfs promote: ${(err as Error).message} ${stdout.trim()} ${stderr.trim()}`));
      }
    });
  });
}
