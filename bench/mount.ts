// `smfs bench mount`: fio sequential write and read (1 MiB blocks) and postmark on an smfs mount
// against the same on a local directory, in the same run, as ratios. The storage, metadata and
// file servers and the mount are child processes on 127.0.0.1, with a credential made for the
// run; everything is removed after. fio writes 8 files of 24 MiB (a file holds at most 32 MiB)
// and ends with an fsync, so the mount's figure includes committing it at the level asked.
import { spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCredential } from '../src/smfs/credentials';
import { firstLine, spawnChild } from './children';
import { MaelstromError } from '../src/errors';

const smfsBin = path.resolve(__dirname, '..', 'src', 'cli', 'smfs.js');

export interface MountBenchResult {
  level: string;
  fio: { files: number; fileMiB: number; blockKiB: number };
  write_mbps: { mount: number; local: number; ratio: number };
  read_mbps: { mount: number; local: number; ratio: number };
  postmark_tps: { mount: number; local: number; ratio: number };
  target: { write_ratio_at_least: number; met: boolean };
}

function start(args: string[], env: NodeJS.ProcessEnv, children: ChildProcess[]): Promise<Record<string, unknown>> {
  return firstLine(spawnChild(smfsBin, [...args, '--json'], env, children), `smfs ${args[0]}`);
}

function tool(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 << 20, timeout: 600_000 });
  if (r.error || r.status !== 0) throw new MaelstromError('MAELSTROM_ERR_LAB', `${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

function fio(dir: string, rw: 'write' | 'read'): number {
  const out = tool('fio', ['--name=seq', `--directory=${dir}`, `--rw=${rw}`, '--bs=1M', '--size=192M', '--nrfiles=8', '--ioengine=psync',
    ...(rw === 'write' ? ['--end_fsync=1'] : []), '--output-format=json']);
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Record<string, { bw_bytes: number }>[] }).jobs[0];
  return job[rw].bw_bytes / 1e6;
}

function postmark(dir: string): number {
  const out = tool('postmark', [], `set location ${dir}\nset number 500\nset transactions 2000\nset size 500 20000\nrun\nquit\n`);
  const m = /seconds of transactions \((\d+) per second\)/.exec(out);
  if (!m) throw new MaelstromError('MAELSTROM_ERR_LAB', `postmark printed no transaction rate: ${out}`);
  return Number(m[1]);
}

export async function runMountBench(o: { level: string; dir?: string }): Promise<MountBenchResult> {
  const root = fs.mkdtempSync(path.join(o.dir ?? os.tmpdir(), 'smfs-bench-mount-'));
  fs.chmodSync(root, 0o700);
  const credential = createCredential(path.join(root, 'credentials'));
  const env = { ...process.env, SMFS_CREDENTIALS: credential.file };
  const children: ChildProcess[] = [];
  const mnt = path.join(root, 'mnt');
  const local = path.join(root, 'local');
  fs.mkdirSync(mnt);
  fs.mkdirSync(local);
  try {
    const storage = await start(['storage', '--dir', path.join(root, 'storage'), '--port', '0'], env, children);
    const meta = await start(['metadata', '--dir', path.join(root, 'meta'), '--storage', `127.0.0.1:${storage.port as number}`, '--port', '0'], env, children);
    const files = await start(['files', '--metadata', `127.0.0.1:${meta.port as number}`, '--port', '0'], env, children);
    await start(['mount', mnt, '--server', `127.0.0.1:${files.port as number}`, ...(o.level === 'default' ? [] : ['--level', o.level])], env, children);
    const on = (d: string, name: string) => {
      const p = path.join(d, name);
      fs.mkdirSync(p);
      return p;
    };
    const write = { mount: fio(on(mnt, 'fio'), 'write'), local: fio(on(local, 'fio'), 'write') };
    const read = { mount: fio(path.join(mnt, 'fio'), 'read'), local: fio(path.join(local, 'fio'), 'read') };
    const pm = { mount: postmark(on(mnt, 'pm')), local: postmark(on(local, 'pm')) };
    const ratio = (x: { mount: number; local: number }) => ({ mount: Math.round(x.mount * 10) / 10, local: Math.round(x.local * 10) / 10, ratio: Math.round((x.mount / x.local) * 100) / 100 });
    const w = ratio(write);
    return {
      level: o.level, fio: { files: 8, fileMiB: 24, blockKiB: 1024 },
      write_mbps: w, read_mbps: ratio(read), postmark_tps: ratio(pm), target: { write_ratio_at_least: 0.5, met: w.ratio >= 0.5 },
    };
  } finally {
    const mount = children[3];
    if (mount && mount.exitCode === null) {
      const gone = new Promise((r) => mount.once('exit', r));
      mount.kill('SIGTERM');
      await gone;
    }
    spawnSync('fusermount3', ['-u', '-z', mnt]);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(root, { recursive: true, force: true });
  }
}

export function formatMountBench(r: MountBenchResult): string {
  const row = (what: string, x: { mount: number; local: number; ratio: number }, unit: string) => `${what.padEnd(22)} ${String(x.mount).padStart(9)} ${String(x.local).padStart(9)} ${x.ratio.toFixed(2).padStart(7)}  ${unit}`;
  return [
    `smfs mount (level ${r.level}) against a local directory; fio: ${r.fio.files} files of ${r.fio.fileMiB} MiB, ${r.fio.blockKiB} KiB blocks, fsync at the end`,
    `${''.padEnd(22)} ${'mount'.padStart(9)} ${'local'.padStart(9)} ${'ratio'.padStart(7)}`,
    row('sequential write', r.write_mbps, 'MB/s'),
    row('sequential read', r.read_mbps, 'MB/s'),
    row('postmark', r.postmark_tps, 'transactions/s'),
    `target: write at least ${r.target.write_ratio_at_least}x local: ${r.target.met ? 'met' : 'NOT met'}`,
  ].join('\n');
}
