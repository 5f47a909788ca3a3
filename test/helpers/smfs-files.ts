// Helpers for the metadata and file server tests: in-process storage servers on free ports,
// and the smfs CLI run without
// blocking the event loop (the servers it talks to may run in this process).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { LogStore } from '../../src/smfs/store';
import { StorageServer } from '../../src/smfs/server';
import type { Endpoint } from '../../src/smfs/frame-client';
import { SMFS_BIN, testCredential } from './smfs';
export { refusedWith } from './smfs';

export interface Storage {
  server: StorageServer;
  at: Endpoint;
  close(): Promise<void>;
}

export async function startStorageHere(dir: string, port = 0): Promise<Storage> {
  const store = await LogStore.open(dir, { segmentBytes: 1 << 20 });
  const server = await StorageServer.listen(store, { credential: testCredential(), port });
  return { server, at: { host: '127.0.0.1', port: server.address.port }, close: () => server.close() };
}

// A port nothing listens on (taken from the kernel, then released).
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

// The environment of the smfs commands run here: the tests' credential in SMFS_CREDENTIALS.
function withCredential(): NodeJS.ProcessEnv {
  return { ...process.env, SMFS_CREDENTIALS: testCredential().file };
}

export interface CliResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

export function smfsCli(args: string[], input?: Buffer): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SMFS_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: withCredential() });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

export interface SmfsChild {
  child: ChildProcess;
  listening: Record<string, unknown>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

// Starts `smfs <args> --port 0 --json` and waits for its "listening" line.
export async function startSmfs(args: string[]): Promise<SmfsChild> {
  const child = spawn(process.execPath, [SMFS_BIN, ...args, '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: withCredential() });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const first = (await readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next()).value as string | undefined;
  if (first === undefined) {
    const { code } = await exited;
    throw new Error(`smfs ${args[0]} exited (${code}) before listening: ${err}`);
  }
  return { child, listening: JSON.parse(first) as Record<string, unknown>, exited, stderr: () => err };
}
