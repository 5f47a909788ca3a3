// Helpers for the tests of `smfs mount`: a storage, metadata and file server as child
// processes, `smfs mount` as a child process (a mount must not be served by the process that
// uses it: its FUSE thread would wait for that process's main thread), programs run without
// blocking the event loop, and making sure no FUSE mount of ours is left behind.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { SMFS_BIN, startStorage, testCredential } from './smfs';
import type { StorageChild } from './smfs';
import { startSmfs } from './smfs-files';
import type { SmfsChild } from './smfs-files';

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

// Runs a program to its end (killed after timeoutMs), with `input` on its stdin.
export function run(cmd: string, args: string[], options: { cwd?: string; input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

// The smfs FUSE mounts in /proc/mounts (their mount points).
export function smfsMounts(): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[2] === 'fuse.smfs').map((l) => l.split(' ')[1]);
}

// Unmounts `mountpoint` if it is still mounted: lazily, and if its connection hangs (a mount
// process stuck), by aborting the connection through fusectl.
export function forceUnmount(mountpoint: string): void {
  if (!smfsMounts().includes(mountpoint)) return;
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mountpoint);
  const minor = info?.split(' ')[2]?.split(':')[1];
  if (minor) {
    if (!fs.existsSync('/sys/fs/fuse/connections/' + minor)) spawnSync('mount', ['-t', 'fusectl', 'none', '/sys/fs/fuse/connections']);
    try {
      fs.writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1');
    } catch {
      // gone already
    }
  }
  spawnSync('fusermount3', ['-u', '-z', mountpoint]);
}

export interface MountChild {
  child: ChildProcess;
  mountpoint: string;
  mounted: Record<string, unknown>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  // Stops it (SIGTERM: it commits and unmounts) and makes sure nothing stays mounted.
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

// Starts `smfs mount MOUNTPOINT --server S --json ARGS`, under `prefix` (nsenter into a
// network namespace, say), and waits until it is mounted.
export async function startMount(mountpoint: string, server: string, args: string[] = [], prefix: string[] = []): Promise<MountChild> {
  const argv = [...prefix, process.execPath, SMFS_BIN, 'mount', mountpoint, '--server', server, '--json', ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SMFS_CREDENTIALS: testCredential().file } });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = readline.createInterface({ input: child.stdout! });
  const first = await new Promise<string | undefined>((resolve) => {
    lines.once('line', resolve);
    void exited.then(() => resolve(undefined));
  });
  lines.on('line', (l) => { out += `${l}\n`; });
  if (first === undefined) {
    forceUnmount(mountpoint);
    throw new Error(`smfs mount exited before mounting: ${err}`);
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const result = await exited;
    clearTimeout(timer);
    for (let i = 0; i < 50 && smfsMounts().includes(mountpoint); i++) await new Promise((r) => setTimeout(r, 100));
    forceUnmount(mountpoint);
    return result;
  };
  return { child, mountpoint, mounted: JSON.parse(first) as Record<string, unknown>, exited, stdout: () => out, stderr: () => err, stop };
}

export interface FileServers {
  dir: string;
  storage: StorageChild;
  metadata: SmfsChild;
  files: SmfsChild;
  server: string;    // host:port of the file server
  stop(): Promise<void>;
}

// A storage server, a metadata server and a file server on a new log, as child processes;
// `mirrored`: the storage server streams to a mirror storage server (another child process).
export async function startFileServers(dir: string, options: { mirrored?: boolean } = {}): Promise<FileServers> {
  const kill = async (c: ChildProcess) => {
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
  };
  const started: ChildProcess[] = [];
  try {
    const mirror = options.mirrored ? await startStorage(path.join(dir, 'mirror'), ['--segment-size', '64M', '--role', 'mirror']) : undefined;
    if (mirror) started.push(mirror.child);
    const storage = await startStorage(path.join(dir, 'storage'), ['--segment-size', '64M', ...(mirror ? ['--mirror', `127.0.0.1:${mirror.port}`] : [])]);
    started.push(storage.child);
    const metadata = await startSmfs(['metadata', '--dir', path.join(dir, 'meta'), '--storage', `127.0.0.1:${storage.port}`]);
    started.push(metadata.child);
    const files = await startSmfs(['files', '--metadata', `127.0.0.1:${metadata.listening.port as number}`]);
    started.push(files.child);
    return {
      dir, storage, metadata, files, server: `127.0.0.1:${files.listening.port as number}`,
      stop: async () => {
        for (const c of started.reverse()) await kill(c);
      },
    };
  } catch (err) {
    for (const c of started.reverse()) await kill(c);
    throw err;
  }
}
