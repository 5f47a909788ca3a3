// `smfs bench local`: SMFS appends on loopback beside the raw disk, in the same run, as ratios.
// The yardsticks write the same appends (--append-kib) to a file in the same directory: with
// O_DSYNC one at a time (what one client waiting for each answer could get at best), and in
// batches of as many appends as there are clients with one fdatasync per batch (what a server
// that commits the clients' appends as one group could get at best). The storage server
// (fsync always, level local) and the load generator (src/lab/smfs-load.ts: C clients, one
// connection each, appends of B blocks over 4 logs, their data made once for 64 appends and
// reused, as a client's data is ready when it appends) are child processes on 127.0.0.1, with
// a credential made for the run; everything is removed after.
// Prints figures and the issue's targets beside them; never passes or fails on them.
import { spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCredential } from '../src/smfs/credentials';
import { firstLine, spawnChild } from './children';
import { MaelstromError } from '../src/errors';
import type { LoadSummary } from '../src/lab/smfs';

const smfsBin = path.resolve(__dirname, '..', 'src', 'cli', 'smfs.js');
const loadBin = path.resolve(__dirname, '..', 'src', 'lab', 'smfs-load.js');
const MB = 1e6;
// A yardstick file is started anew past this size, as the store starts a new segment.
const RAW_FILE_BYTES = 256 * 1024 * 1024;

export interface LocalBenchOptions {
  clients?: number[];
  seconds?: number;
  appendKiB?: number;
  blockKiB?: number;
  logs?: number;
  dir?: string;       // where the store and the yardstick files go (default: the OS's temporary directory)
  onProgress?: (line: string) => void;
}

export interface LocalBenchRow {
  clients: number;
  smfs_mbytes_per_s: number;
  smfs_p50_ms: number;
  smfs_p99_ms: number;
  errors: Record<string, number>;
  raw_dsync_mbytes_per_s: number;     // one append at a time, O_DSYNC
  raw_batched_mbytes_per_s: number;   // `clients` appends, then one fdatasync
  vs_dsync: number;                   // smfs / raw O_DSYNC
  vs_batched: number;                 // smfs / raw batched
}

export interface LocalBenchResult {
  dir: string;
  filesystem: string;
  append_kib: number;
  block_kib: number;
  logs: number;
  seconds: number;
  rows: LocalBenchRow[];
  targets: { dsync_1_client_at_least: number; batched_64_clients_at_least: number };
}

// Writes appends of `size` bytes for `seconds`: one at a time through an O_DSYNC descriptor,
// or `batch` at a time with plain writes and one fdatasync per batch. Returns MB/s. It yields
// to the event loop between appends, so that Ctrl-C is heard.
async function rawRate(dir: string, size: number, mode: 'dsync' | { batch: number }, seconds: number): Promise<number> {
  const buf = Buffer.alloc(size, 0x5a);
  const dsync = mode === 'dsync';
  const batch = dsync ? 1 : mode.batch;
  const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | (dsync ? fs.constants.O_DSYNC : 0);
  const file = path.join(dir, dsync ? 'raw-dsync' : `raw-batch-${batch}`);
  let fd = fs.openSync(file, flags, 0o600);
  let position = 0;
  let bytes = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  try {
    while (process.hrtime.bigint() < deadline) {
      if (position + size * batch > RAW_FILE_BYTES) {
        fs.closeSync(fd);
        fd = fs.openSync(file, flags, 0o600);
        position = 0;
      }
      for (let k = 0; k < batch; k++) {
        fs.writeSync(fd, buf, 0, size, position);
        position += size;
      }
      if (!dsync) fs.fdatasyncSync(fd);
      bytes += size * batch;
      await new Promise(setImmediate);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return bytes / (Number(process.hrtime.bigint() - start) / 1e9) / MB;
}

// Ends a child and waits for it, unless it has ended already.
async function end(c: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((resolve) => c.once('exit', resolve));
  c.kill(signal);
  await gone;
}

async function smfsRate(root: string, env: NodeJS.ProcessEnv, o: { clients: number; seconds: number; appendKiB: number; blockKiB: number; logs: number }, children: ChildProcess[]): Promise<LoadSummary> {
  // A fresh store per row, so no row inherits another's segments.
  const dir = fs.mkdtempSync(path.join(root, 'store-'));
  const server = spawnChild(smfsBin, ['storage', '--dir', dir, '--port', '0', '--json'], env, children);
  const started = await firstLine(server, 'smfs storage');
  try {
    const load = spawnChild(loadBin, ['append', '--server', `127.0.0.1:${started.port as number}`, '--level', 'local', '--logs', String(o.logs),
      '--blocks', String(o.appendKiB / o.blockKiB), '--block-size', String(o.blockKiB * 1024), '--clients', String(o.clients), '--seconds', String(o.seconds), '--data-pool', '64'], env, children);
    let summary: LoadSummary | undefined;
    load.lines.on('line', (l) => {
      try {
        const j = JSON.parse(l) as LoadSummary & { done?: boolean };
        if (j.done) summary = j;
      } catch {
        // Not a report line: the error, if any, is in its stderr.
      }
    });
    // 'close', not 'exit': after its output is read to the end.
    const code = await new Promise<number | null>((resolve) => load.child.once('close', resolve));
    if (!summary) throw new MaelstromError('MAELSTROM_ERR_LAB', `the load generator exited with ${code} and no summary: ${load.stderr()}`);
    return summary;
  } finally {
    await end(server.child, 'SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// The device and type of the file system under dir, e.g. "/dev/vda ext4".
function filesystemOf(dir: string): string {
  const r = spawnSync('df', ['--output=source,fstype', dir], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n').pop()!.trim().replace(/\s+/, ' ') : 'unknown';
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

export async function runLocalBench(o: LocalBenchOptions = {}): Promise<LocalBenchResult> {
  const clients = o.clients ?? [1, 64];
  const seconds = o.seconds ?? 4;
  const appendKiB = o.appendKiB ?? 512;
  const blockKiB = o.blockKiB ?? 4;
  const logs = o.logs ?? 4;
  const root = fs.mkdtempSync(path.join(o.dir ?? os.tmpdir(), 'smfs-bench-local-'));
  fs.chmodSync(root, 0o700);
  const credential = createCredential(path.join(root, 'credentials'));
  const env = { ...process.env, SMFS_CREDENTIALS: credential.file };
  const children: ChildProcess[] = [];
  const stop = (signal: NodeJS.Signals) => {
    void Promise.all(children.map((c) => end(c, 'SIGKILL'))).finally(() => {
      fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const rows: LocalBenchRow[] = [];
    const size = appendKiB * 1024;
    for (const n of clients) {
      o.onProgress?.(`${n} client${n === 1 ? '' : 's'}: raw disk, then smfs (${seconds} s each)`);
      const dsync = await rawRate(root, size, 'dsync', seconds);
      const batched = await rawRate(root, size, { batch: n }, seconds);
      const s = await smfsRate(root, env, { clients: n, seconds, appendKiB, blockKiB, logs }, children);
      const rate = s.bytes / s.seconds / MB;
      rows.push({
        clients: n, smfs_mbytes_per_s: round(rate), smfs_p50_ms: round(s.latencyUs.p50 / 1000, 2), smfs_p99_ms: round(s.latencyUs.p99 / 1000, 2), errors: s.errors,
        raw_dsync_mbytes_per_s: round(dsync), raw_batched_mbytes_per_s: round(batched), vs_dsync: round(rate / dsync, 2), vs_batched: round(rate / batched, 2),
      });
    }
    return {
      dir: o.dir ?? os.tmpdir(), filesystem: filesystemOf(root), append_kib: appendKiB, block_kib: blockKiB, logs, seconds, rows,
      targets: { dsync_1_client_at_least: 0.8, batched_64_clients_at_least: 0.8 },
    };
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    await Promise.all(children.map((c) => end(c, 'SIGKILL')));
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  }
}

export function formatLocalBench(r: LocalBenchResult): string {
  const lines = [
    `smfs appends on loopback (fsync always, level local) beside the raw disk, ${r.filesystem} under ${r.dir}`,
    `appends of ${r.append_kib} KiB in ${r.block_kib} KiB blocks over ${r.logs} logs; ${r.seconds} s per figure; raw: the same appends with O_DSYNC, and batched (as many as clients, one fdatasync)`,
    `${'clients'.padStart(7)} ${'smfs MB/s'.padStart(10)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'O_DSYNC'.padStart(8)} ${'batched'.padStart(8)} ${'/dsync'.padStart(7)} ${'/batch'.padStart(7)}`,
  ];
  for (const x of r.rows) {
    const errors = Object.entries(x.errors).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(`${String(x.clients).padStart(7)} ${x.smfs_mbytes_per_s.toFixed(1).padStart(10)} ${x.smfs_p50_ms.toFixed(2).padStart(7)} ${x.smfs_p99_ms.toFixed(2).padStart(7)} ${x.raw_dsync_mbytes_per_s.toFixed(1).padStart(8)} ${x.raw_batched_mbytes_per_s.toFixed(1).padStart(8)} ${x.vs_dsync.toFixed(2).padStart(7)} ${x.vs_batched.toFixed(2).padStart(7)}${errors ? `  errors: ${errors}` : ''}`);
  }
  if (/\btmpfs\b/.test(r.filesystem)) lines.push('note: tmpfs keeps everything in memory, so fsync costs nothing here; give --dir on the disk to measure');
  const one = r.rows.find((x) => x.clients === 1);
  const many = r.rows.find((x) => x.clients === 64);
  if (one) lines.push(`target: 1 client at least ${r.targets.dsync_1_client_at_least}x raw O_DSYNC: ${one.vs_dsync.toFixed(2)}x, ${one.vs_dsync >= r.targets.dsync_1_client_at_least ? 'met' : 'NOT met'}`);
  if (many) lines.push(`target: 64 clients at least ${r.targets.batched_64_clients_at_least}x raw batched: ${many.vs_batched.toFixed(2)}x, ${many.vs_batched >= r.targets.batched_64_clients_at_least ? 'met' : 'NOT met'}`);
  return lines.join('\n');
}
