// Helpers for the SMFS tests: temporary store directories, the credential the tests' servers
// and clients share, records that say which group they belong to (so a test can tell a whole
// group from part of one by reading the log back), and `smfs storage` run as a child process.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import * as assert from 'uvu/assert';
import { StorageClient } from '../../src/smfs/client';
import { createCredential } from '../../src/smfs/credentials';
import type { Credential } from '../../src/smfs/credentials';
import { SmfsError } from '../../src/smfs/errors';

export const SMFS_BIN = path.resolve(__dirname, '..', '..', 'src', 'cli', 'smfs.js');

export async function withDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), `smfs-${prefix}-`));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// One credential for a test process's servers and clients, in a directory of its own, removed
// when the process exits.
let shared: Credential | undefined;
export function testCredential(): Credential {
  if (!shared) {
    const dir = mkdtempSync(path.join(tmpdir(), 'smfs-credential-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    shared = createCredential(path.join(dir, 'credentials'));
  }
  return shared;
}

// A client of the storage server on 127.0.0.1:port, with the tests' credential.
export function connectStorage(port: number, options: { tls?: boolean } = {}): Promise<StorageClient> {
  return StorageClient.connect({ host: '127.0.0.1', port }, testCredential(), options);
}

// A record's bytes: a 12-byte tag (group, index in the group, records in the group) and then a
// fill byte that depends on the tag, so a record can be checked from its own content.
export const TAG_BYTES = 12;

export function taggedRecord(group: number, index: number, count: number, length: number): Buffer {
  const b = Buffer.alloc(Math.max(length, TAG_BYTES), (group * 7 + index * 13 + 1) & 0xff);
  b.writeUInt32BE(group, 0);
  b.writeUInt32BE(index, 4);
  b.writeUInt32BE(count, 8);
  return b;
}

export interface Tag {
  group: number;
  index: number;
  count: number;
}

// The tag of a record, or undefined if its bytes are not what taggedRecord wrote.
export function readTag(b: Buffer): Tag | undefined {
  if (b.length < TAG_BYTES) return undefined;
  const tag = { group: b.readUInt32BE(0), index: b.readUInt32BE(4), count: b.readUInt32BE(8) };
  return b.equals(taggedRecord(tag.group, tag.index, tag.count, b.length)) ? tag : undefined;
}

export interface StorageChild {
  child: ChildProcess;
  port: number;
  listening: Record<string, unknown>;
  nextLine(): Promise<string | undefined>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

// Starts `smfs storage --port 0 --json` on `dir`, with the tests' credential unless `args` give
// one or `ownCredential` leaves it to the server (DIR/credentials), and waits for its
// "listening" line.
export async function startStorage(dir: string, args: string[] = [], options: { ownCredential?: boolean } = {}): Promise<StorageChild> {
  const credentials = args.includes('--credentials') || options.ownCredential ? [] : ['--credentials', testCredential().file];
  const child = spawn(process.execPath, [SMFS_BIN, 'storage', '--dir', dir, '--port', '0', '--json', ...credentials, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const nextLine = async () => (await lines.next()).value as string | undefined;
  const first = await nextLine();
  if (first === undefined) {
    const { code } = await exited;
    throw new Error(`smfs storage exited (${code}) before listening: ${err}`);
  }
  const listening = JSON.parse(first) as Record<string, unknown>;
  return { child, port: listening.port as number, listening, nextLine, exited, stderr: () => err };
}

// Asserts that p fails with the SMFS code; returns the message.
export async function refusedWith(p: Promise<unknown>, code: string, what = ''): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, SmfsError, String(err));
    assert.is((err as SmfsError).code, code, `${what} ${(err as Error).message}`);
    return (err as Error).message;
  }
  assert.unreachable(`${what}: expected ${code}, it succeeded`);
  return '';
}

// Every segment file of a store directory, by path under logs/: to compare two sites byte for byte.
export function segmentFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const logs = path.join(dir, 'logs');
  for (const log of readdirSync(logs)) {
    for (const f of readdirSync(path.join(logs, log))) out.set(`${log}/${f}`, readFileSync(path.join(logs, log, f)));
  }
  return out;
}

// A TCP relay standing in for the WAN between a primary and its mirror, in one process: it
// passes bytes both ways, or drops them all (`cut`: what is sent is taken and lost, as on a
// link that died), or holds them back (`hold`: nothing gets through until `pass`, and then
// everything, in order).
export interface Relay {
  port: number;
  pass(): void;
  hold(): void;
  cut(): void;
  // Flips a bit in the next chunk from the mirror to the primary (a record TLS must refuse).
  damageNext(): void;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<Relay> {
  let mode: 'pass' | 'hold' | 'cut' = 'pass';
  let damage = false;
  const links = new Set<{ a: import('node:net').Socket; b: import('node:net').Socket; held: Buffer[]; back: Buffer[] }>();
  const net = await import('node:net');
  const server = net.createServer((a) => {
    const b = net.connect({ host: '127.0.0.1', port: targetPort });
    const link = { a, b, held: [] as Buffer[], back: [] as Buffer[] };
    links.add(link);
    a.on('data', (d: Buffer) => {
      if (mode === 'pass') b.write(d);
      else if (mode === 'hold') link.held.push(d);
    });
    b.on('data', (d: Buffer) => {
      if (damage) {
        damage = false;
        d = Buffer.from(d);
        d[d.length - 1] ^= 0x10;
      }
      if (mode === 'pass') a.write(d);
      else if (mode === 'hold') link.back.push(d);
    });
    const done = () => {
      a.destroy();
      b.destroy();
      links.delete(link);
    };
    for (const s of [a, b]) {
      s.on('error', done);
      s.on('close', () => { if (mode !== 'cut') done(); });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as import('node:net').AddressInfo).port,
    pass: () => {
      mode = 'pass';
      for (const l of links) {
        for (const d of l.held.splice(0)) l.b.write(d);
        for (const d of l.back.splice(0)) l.a.write(d);
      }
    },
    hold: () => { mode = 'hold'; },
    cut: () => { mode = 'cut'; },
    damageNext: () => { damage = true; },
    close: async () => {
      for (const l of links) {
        l.a.destroy();
        l.b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
