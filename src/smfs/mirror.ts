// Mirroring, the primary's side (docs/smfs.md, "Mirroring"): a MirrorLink streams every change
// of a LogStore to the mirror's storage server, over one TCP connection (TLS by default, both
// ends authenticated: auth.ts), in the order the writer made them, as the very bytes it wrote.
// It keeps what each acknowledgement level waits for: the newest group network-safe on that
// connection (from the gateway's feedback; under TLS, counted in the TCP bytes under it) and
// the newest group the mirror has written (its answers).
//
// Nothing is held in memory for the mirror but sequence numbers: the log on disk is the
// backlog. On every (re)connection the mirror says where each of its logs ends, and the link
// reads the parts after that back from the segments, in sequence order, before it goes live.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { secureClient } from './auth';
import type { Credential } from './credentials';
import { SmfsError } from './errors';
import { SEGMENT_HEADER, decodePart, decodePartHead, formatAddress, PART_HEADER } from './format';
import { fsyncDirectory } from './files';
import type { Change, LogStore, ShippedPart } from './store';
import { ANSWER_FLAG, FrameReader, Op, decodeError, encodeFrame, encodeU32 } from './wire';
import { traceMirror } from './trace';
import type { NetworkSyncListener, TrackedSocket } from '../feedback/listener';

export type AckLevel = 'local' | 'network' | 'remote';
export const ACK_LEVELS: readonly AckLevel[] = ['local', 'network', 'remote'];
export type Role = 'primary' | 'mirror';

// A mirror's directory says so in this file, so that it cannot be started as a primary by
// mistake; `smfs promote` removes it.
export const ROLE_FILE = 'MIRROR';

export function readRole(dir: string): Role {
  return fs.existsSync(path.join(dir, ROLE_FILE)) ? 'mirror' : 'primary';
}

export function writeRole(dir: string, role: Role): void {
  const file = path.join(dir, ROLE_FILE);
  if (role === 'mirror') {
    const fd = fs.openSync(file, 'w');
    try {
      fs.writeSync(fd, 'This directory is an SMFS mirror. `smfs promote` makes it a primary.\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } else fs.rmSync(file, { force: true });
  fsyncDirectory(dir);
}

// What a mirror answers to hello: where each of its logs ends, and its newest group.
export interface MirrorState {
  lastSeq: number;
  logs: { log: number; segment: number; offset: number }[];
}

export function encodeGroup(seq: number, parts: ShippedPart[]): Uint8Array[] {
  const head = Buffer.alloc(12);
  head.writeBigUInt64BE(BigInt(seq), 0);
  head.writeUInt32BE(parts.length, 8);
  const out: Uint8Array[] = [head];
  for (const p of parts) {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(p.log, 0);
    h.writeUInt32BE(p.segment, 4);
    h.writeUInt32BE(p.offset, 8);
    h.writeUInt32BE(p.bytes.length, 12);
    out.push(h, p.bytes);
  }
  return out;
}

export interface MirrorOptions {
  host: string;
  port: number;
  credential: Credential;         // the deployment's; the mirror must hold the same
  tls?: boolean;                  // the stream over TLS (default true; off only where the path is trusted)
  listener?: NetworkSyncListener; // feedback from the gateways: needed for level 'network'
  ackTimeoutMs?: number;          // a level not reached in this long fails the append (default 10000)
  retryMs?: number;               // wait before reconnecting (default 500, doubling to 5000)
  onEvent?: (event: string, detail: Record<string, unknown>) => void;
}

export type LinkState = 'connecting' | 'catching-up' | 'live' | 'behind' | 'down';

export interface MirrorStat {
  mirror: string;
  state: LinkState;
  connects: number;
  lastError: string | null;
  tls: boolean;
  authFailures: number;  // connections on which the mirror refused our credential or could not prove it holds it
  sentSeq: number;       // newest group sent on the current connection
  kernelSeq: number;     // every group up to here was taken by the kernel for sending
  networkSeq: number;    // every group up to here is network-safe (or at the mirror)
  remoteSeq: number;     // every group up to here is written at the mirror
  pendingGroups: number; // sent, not yet acknowledged by the mirror: the state kept for it
  caughtUpGroups: number; // groups read back from the log for a (re)connected mirror
  sentBytes: number;
  ackTimeouts: Record<AckLevel, number>;
  waiting: Record<AckLevel, number>;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: SmfsError) => void;
  timer: NodeJS.Timeout;
}

// Above this many bytes queued on the socket, live changes are no longer copied into memory:
// the link falls behind and reads them back from the log once the socket drains.
const HIGH_WATER = 16 * 1024 * 1024;

interface Connection {
  socket: net.Socket;    // the TCP socket, then once authenticated the TLS socket over it
  failed: boolean;
  tracked: TrackedSocket | undefined;
  reader: FrameReader;
  nextId: number;
  inflight: { id: number; seq: number; done: boolean }[];
  hello?: { resolve: (s: MirrorState) => void; reject: (e: SmfsError) => void };
  cursors: Map<number, { segment: number; offset: number }>;
}

export class MirrorLink {
  private conn: Connection | undefined;
  private state: LinkState = 'connecting';
  private connects = 0;
  private lastError: string | null = null;
  private authFailures = 0;
  private sentSeq = 0;
  private kernelSeq = 0;
  private networkSeq = 0;
  private remoteSeq = 0;
  private caughtUpGroups = 0;
  private sentBytes = 0;
  private readonly ackTimeouts: Record<AckLevel, number> = { local: 0, network: 0, remote: 0 };
  private readonly waiters: Record<AckLevel, Waiter[]> = { local: [], network: [], remote: [] };
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  // Told each time the mirror acknowledges more groups: the tagged responses' watermark moved.
  onAcknowledged: ((seq: number) => void) | undefined;

  constructor(private readonly store: LogStore, private readonly options: MirrorOptions) {
    this.retryMs = options.retryMs ?? 500;
    store.onChange = (c) => this.changed(c);
    // The cleaner must leave raw every segment holding groups the mirror may still need.
    store.cleanFloor = () => this.remoteSeq;
    this.connect();
  }

  get networkSync(): boolean {
    return this.options.listener !== undefined;
  }

  // The mirrored-through watermark: every group up to here is written at the mirror.
  get watermark(): number {
    return this.remoteSeq;
  }

  // Resolves once group `seq` has reached `level`; fails with SMFS_ERR_MIRROR after the ack timeout.
  // 'local' (the group is written here) waits for the kernel to take the group for the
  // mirror, which paces appends to what the link can carry; with no connection to the mirror
  // it does not wait (the group is sent from the log once there is one), nor past the timeout.
  wait(seq: number, level: AckLevel): Promise<void> {
    if (this.remoteSeq >= seq || (level === 'network' && this.networkSeq >= seq)) return Promise.resolve();
    if (level === 'local' && (this.kernelSeq >= seq || this.state === 'down' || this.state === 'connecting')) return Promise.resolve();
    if (level === 'network' && !this.networkSync) return Promise.reject(new SmfsError('SMFS_ERR_REQUEST', 'network-sync needs feedback from the gateways: start the server with --gateway'));
    const timeoutMs = this.options.ackTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const list = this.waiters[level];
      const w: Waiter = {
        seq, resolve, reject,
        timer: setTimeout(() => {
          list.splice(list.indexOf(w), 1);
          this.ackTimeouts[level]++;
          if (level === 'local') return resolve();
          reject(new SmfsError('SMFS_ERR_MIRROR', `group ${seq} is written here but did not reach level '${level}' within ${timeoutMs} ms (mirror ${this.target}: ${this.state}${this.lastError ? `, ${this.lastError}` : ''})`));
        }, timeoutMs),
      };
      // Groups complete in sequence order, so waiters are appended in order too.
      list.push(w);
    });
  }

  stat(): MirrorStat {
    return {
      mirror: this.target, state: this.state, connects: this.connects, lastError: this.lastError, tls: this.tls, authFailures: this.authFailures,
      sentSeq: this.sentSeq, networkSeq: Math.max(this.networkSeq, this.remoteSeq), remoteSeq: this.remoteSeq,
      pendingGroups: this.conn?.inflight.filter((f) => f.seq > 0).length ?? 0, caughtUpGroups: this.caughtUpGroups, sentBytes: this.sentBytes,
      kernelSeq: Math.max(this.kernelSeq, this.remoteSeq),
      ackTimeouts: { ...this.ackTimeouts }, waiting: { local: this.waiters.local.length, network: this.waiters.network.length, remote: this.waiters.remote.length },
    };
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.store.onChange = undefined;
    this.conn?.socket.destroy();
    this.release('local', Infinity);
    for (const level of ['network', 'remote'] as const) {
      for (const w of this.waiters[level].splice(0)) {
        clearTimeout(w.timer);
        w.reject(new SmfsError('SMFS_ERR_CLOSED', `the server is closing; group ${w.seq} is written here, not yet at level '${level}'`));
      }
    }
  }

  private get target(): string {
    return `${this.options.host}:${this.options.port}`;
  }

  private get tls(): boolean {
    return this.options.tls ?? true;
  }

  private event(event: string, detail: Record<string, unknown> = {}): void {
    this.options.onEvent?.(event, { mirror: this.target, ...detail });
  }

  private connect(): void {
    if (this.closed) return;
    this.state = 'connecting';
    const tcp = net.connect({ host: this.options.host, port: this.options.port });
    tcp.setNoDelay(true);
    const conn: Connection = { socket: tcp, failed: false, tracked: undefined, reader: new FrameReader(true), nextId: 1, inflight: [], cursors: new Map() };
    this.conn = conn;
    const failed = (err: Error) => { if (!conn.failed) this.lastError = err.message; };
    tcp.on('error', failed);
    tcp.once('close', () => this.lost(conn));
    tcp.once('connect', () => {
      this.connects++;
      void (async () => {
        const socket = await secureClient(tcp, { credential: this.options.credential, tls: this.tls, peer: `mirror at ${this.target}` });
        if (socket !== tcp) {
          // A TLS error (a record that does not decrypt) leaves the TLS socket open over its
          // stream wrapper: end the connection, so the link reconnects and catches up.
          socket.on('error', (err: Error) => {
            failed(err);
            tcp.destroy();
          });
          socket.once('close', () => tcp.destroy());
        }
        conn.socket = socket;
        socket.on('data', (chunk: Buffer) => this.answers(conn, chunk));
        socket.resume();
        // The gateway counts the flow's bytes from its first one; the tracker counts the
        // handshake's as written.
        conn.tracked = this.options.listener?.track(socket);
        await this.start(conn);
      })().catch((err: unknown) => this.fail(conn, err));
    });
  }

  private lost(conn: Connection): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    conn.hello?.reject(new SmfsError('SMFS_ERR_CLOSED', 'the mirror closed the connection'));
    if (this.closed) return;
    this.state = 'down';
    this.release('local', Infinity);
    this.event('mirror-down', { error: this.lastError });
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 5000);
  }

  private fail(conn: Connection, err: unknown): void {
    if (conn.failed) return;
    conn.failed = true;
    this.lastError = err instanceof Error ? err.message : String(err);
    if (err instanceof SmfsError && err.code === 'SMFS_ERR_DIVERGED') this.event('mirror-diverged', { error: this.lastError });
    if (err instanceof SmfsError && err.code === 'SMFS_ERR_AUTH') {
      this.authFailures++;
      this.event('mirror-auth-failed', { error: this.lastError });
    }
    conn.socket.destroy();
  }

  private send(conn: Connection, op: number, body: Uint8Array[], seq: number): void {
    const id = conn.nextId++;
    const frame = Buffer.concat(encodeFrame(op, id, body));
    conn.inflight.push({ id, seq, done: false });
    this.sentBytes += frame.length;
    const flushed = (err?: Error | null) => {
      if (err || this.conn !== conn || seq <= this.kernelSeq) return;
      this.kernelSeq = seq;
      this.release('local', seq);
    };
    if (!conn.tracked) {
      conn.socket.write(frame, flushed);
      return;
    }
    conn.tracked.write(frame, flushed).then(() => {
      if (seq > this.networkSeq && this.conn === conn) {
        this.networkSeq = seq;
        this.release('network', seq);
      }
    }, () => undefined); // a connection lost or feedback late: the group is sent again on the next one
  }

  private answers(conn: Connection, chunk: Buffer): void {
    for (const f of conn.reader.push(chunk)) {
      if (f.kind === 'bad') return this.fail(conn, f.error);
      const op = f.op & ~ANSWER_FLAG;
      const ok = f.body.length > 0 && f.body[0] === 0;
      const error = ok ? undefined : f.body.length > 1 ? decodeError(f.body.subarray(1)) : new SmfsError('SMFS_ERR_FRAME', 'an answer without a status');
      if (op === Op.mirrorHello && conn.hello) {
        const hello = conn.hello;
        conn.hello = undefined;
        conn.inflight = conn.inflight.filter((x) => x.id !== f.id);
        if (error) hello.reject(error);
        else hello.resolve(JSON.parse(f.body.subarray(1).toString('utf8')) as MirrorState);
        continue;
      }
      if (error) return this.fail(conn, new SmfsError(error.code, `the mirror refused: ${error.message}`));
      const entry = conn.inflight.find((x) => x.id === f.id);
      if (entry) entry.done = true;
      while (conn.inflight.length > 0 && conn.inflight[0].done) {
        this.acknowledged(conn.inflight.shift()!.seq);
      }
    }
  }

  // Every group up to seq is written at the mirror, which implies every other level.
  private acknowledged(seq: number): void {
    if (seq <= this.remoteSeq) return;
    this.remoteSeq = seq;
    for (const level of ACK_LEVELS) this.release(level, seq);
    this.onAcknowledged?.(seq);
  }

  private release(level: AckLevel, upTo: number): void {
    const list = this.waiters[level];
    while (list.length > 0 && list[0].seq <= upTo) {
      const w = list.shift()!;
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  // hello, then the parts the mirror lacks, then live.
  private async start(conn: Connection): Promise<void> {
    const state = await new Promise<MirrorState>((resolve, reject) => {
      conn.hello = { resolve, reject };
      this.send(conn, Op.mirrorHello, [], 0);
    });
    if (state.lastSeq > this.store.lastSeq) {
      throw new SmfsError('SMFS_ERR_DIVERGED', `the mirror has group ${state.lastSeq}, past this primary's last (${this.store.lastSeq}): it holds groups this log lost; reseed it`);
    }
    const ends = new Map(this.store.ends().map((e) => [e.log, e]));
    for (const m of state.logs) {
      const mine = ends.get(m.log);
      if (!mine) throw new SmfsError('SMFS_ERR_DIVERGED', `the mirror has a log ${m.log} this primary does not have; reseed it`);
      if (m.segment > mine.segment || (m.segment === mine.segment && m.offset > mine.offset)) {
        throw new SmfsError('SMFS_ERR_DIVERGED', `the mirror's log ${m.log} ends at ${formatAddress(m)}, past this primary's end ${formatAddress(mine)}; reseed it`);
      }
      conn.cursors.set(m.log, { segment: m.segment, offset: m.offset });
    }
    this.acknowledged(state.lastSeq);
    this.retryMs = this.options.retryMs ?? 500;
    this.lastError = null;
    this.event('mirror-connected', { mirrorLastSeq: state.lastSeq });
    await this.catchUp(conn);
  }

  // Sends, in sequence order, every committed group the mirror does not have, read back from
  // the segments; goes live once nothing is left, in the same turn of the event loop as it
  // finds nothing, so no group can fall between the two.
  private async catchUp(conn: Connection): Promise<void> {
    this.state = 'catching-up';
    for (;;) {
      if (this.conn !== conn) return;
      for (const id of this.store.logIds()) {
        if (conn.cursors.has(id)) continue;
        this.send(conn, Op.mirrorCreate, [encodeU32(id)], 0);
        conn.cursors.set(id, { segment: 0, offset: SEGMENT_HEADER });
      }
      const limit = this.store.lastSeq;
      const peeks: { log: number; segment: number; offset: number; seq: number; length: number }[] = [];
      for (const [log, cursor] of conn.cursors) {
        const p = await this.peek(log, cursor, limit);
        if (p) peeks.push(p);
      }
      if (this.conn !== conn) return;
      if (peeks.length === 0) {
        if (this.store.lastSeq !== limit || this.store.logIds().some((id) => !conn.cursors.has(id))) continue;
        this.state = 'live';
        this.event('mirror-live', { seq: limit });
        return;
      }
      const seq = Math.min(...peeks.map((p) => p.seq));
      const parts: ShippedPart[] = [];
      for (const p of peeks.filter((x) => x.seq === seq).sort((a, b) => a.log - b.log)) {
        const bytes = await this.store.readRaw(p.log, p.segment, p.offset, p.length);
        const part = decodePart(bytes, p.log, p.offset);
        if (typeof part === 'string') throw new SmfsError('SMFS_ERR_CORRUPT', `log ${p.log}: the part at ${formatAddress(p)} does not check out (${part})`);
        parts.push({ log: p.log, segment: p.segment, offset: p.offset, bytes });
      }
      if (this.conn !== conn) return;
      this.sendGroup(conn, seq, parts);
      this.caughtUpGroups++;
      if (conn.socket.writableLength > HIGH_WATER) await drained(conn.socket);
    }
  }

  // The next committed part of a log at or after its cursor, if any.
  private async peek(log: number, cursor: { segment: number; offset: number }, limit: number): Promise<{ log: number; segment: number; offset: number; seq: number; length: number } | undefined> {
    for (;;) {
      const info = this.store.segmentInfo(log, cursor.segment);
      if (!info) throw new SmfsError('SMFS_ERR_DIVERGED', `the mirror needs log ${log} from segment ${cursor.segment}, which the cleaner removed here; reseed it`);
      if (info.state === 'compacted') throw new SmfsError('SMFS_ERR_DIVERGED', `the mirror needs log ${log} from segment ${cursor.segment}, which the cleaner compacted here; reseed it`);
      if (cursor.offset > info.size) throw new SmfsError('SMFS_ERR_DIVERGED', `the mirror's log ${log} goes past ${formatAddress({ log, ...cursor })}`);
      if (cursor.offset === info.size) {
        if (info.last) return undefined;
        cursor.segment++;
        cursor.offset = SEGMENT_HEADER;
        continue;
      }
      const head = decodePartHead(await this.store.readRaw(log, cursor.segment, cursor.offset, PART_HEADER));
      if (typeof head === 'string') throw new SmfsError('SMFS_ERR_DIVERGED', `the mirror's log ${log} ends at ${formatAddress({ log, ...cursor })}, which is not where a group starts here (${head}); reseed it`);
      if (head.seq > limit) return undefined;
      return { log, segment: cursor.segment, offset: cursor.offset, seq: head.seq, length: head.length };
    }
  }

  private sendGroup(conn: Connection, seq: number, parts: ShippedPart[]): void {
    traceMirror('send', seq);
    this.send(conn, Op.mirrorGroup, encodeGroup(seq, parts), seq);
    this.sentSeq = seq;
    for (const p of parts) conn.cursors.set(p.log, { segment: p.segment, offset: p.offset + p.bytes.length });
  }

  // Live: each change goes out as soon as the writer has written it (before its fsync).
  private changed(c: Change): void {
    const conn = this.conn;
    if (this.state !== 'live' || !conn) return; // not connected, or catching up: it is read back from the log
    if (c.kind === 'create') {
      this.send(conn, Op.mirrorCreate, [encodeU32(c.log)], 0);
      conn.cursors.set(c.log, { segment: 0, offset: SEGMENT_HEADER });
      return;
    }
    this.sendGroup(conn, c.seq, c.parts);
    if (conn.socket.writableLength > HIGH_WATER) {
      this.state = 'behind';
      void drained(conn.socket).then(() => this.catchUp(conn)).catch((err: unknown) => this.fail(conn, err));
    }
  }
}

function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.once('drain', done);
    socket.once('close', done);
  });
}
