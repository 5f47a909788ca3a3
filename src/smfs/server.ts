// `smfs storage`: a LogStore served over TCP (docs/smfs.md, "Protocol"). Each connection may
// send many requests without waiting; each is answered under its request id, changes are
// applied in the order they arrive, and a request that is refused is answered with its error
// code while the connection's other requests go on.
import net from 'node:net';
import { SmfsError } from './errors';
import { LIMITS } from './format';
import type { Address } from './format';
import type { AppendRecord, LogStore } from './store';
import {
  ALL_LOGS, Cursor, FrameReader, OP_NAMES, Op, encodeAddress, encodeAnswer, encodeErrorAnswer, encodeU32,
} from './wire';
import type { Frame } from './wire';

// A connection stops reading while its requests in flight hold this much, or while the
// kernel will not take its answers, so one client cannot fill the server's memory.
const INFLIGHT_BYTES = 256 * 1024 * 1024;
const SHUTDOWN_GRACE_MS = 5000;

export interface ServerCounters {
  connections: number;     // open now
  accepted: number;
  requests: number;
  refused: Record<string, number>; // answers with an error, by code
}

function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v), 0);
  return b;
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

class Connection {
  private readonly reader = new FrameReader();
  private inflight = 0;
  private inflightBytes = 0;
  private writeBlocked = false;
  private draining = false;
  readonly closed: Promise<void>;

  constructor(private readonly socket: net.Socket, private readonly server: StorageServer) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.reader.push(chunk)) this.take(frame);
      this.flow();
    });
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.flow();
    });
    socket.on('error', () => undefined); // a reset by the client; 'close' follows
    socket.setNoDelay(true);
  }

  // Stops taking requests, answers those in flight, then closes.
  drain(): void {
    this.draining = true;
    this.socket.pause();
    if (this.inflight === 0) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private take(frame: Frame): void {
    this.server.counters.requests++;
    if (frame.kind === 'bad') {
      this.refuse(frame.op, frame.id, frame.error);
      if (frame.close) this.socket.end();
      return;
    }
    this.inflight++;
    this.inflightBytes += frame.body.length;
    this.server.dispatch(frame.op, frame.body).then(
      (body) => this.send(encodeAnswer(frame.op, frame.id, body)),
      (err: unknown) => this.refuse(frame.op, frame.id, err),
    ).finally(() => {
      this.inflight--;
      this.inflightBytes -= frame.body.length;
      if (this.draining && this.inflight === 0) this.socket.end();
      else this.flow();
    });
  }

  private refuse(op: number, id: number, err: unknown): void {
    let e: SmfsError;
    if (err instanceof SmfsError) e = err;
    else {
      process.stderr.write(`smfs storage: internal error on ${OP_NAMES[op] ?? `op ${op}`}: ${err instanceof Error ? err.stack : String(err)}\n`);
      e = new SmfsError('SMFS_ERR_IO', `internal error: ${err instanceof Error ? err.message : String(err)}`);
    }
    const refused = this.server.counters.refused;
    refused[e.code] = (refused[e.code] ?? 0) + 1;
    this.send(encodeErrorAnswer(op, id, e.code, e.message));
  }

  private send(buffers: Uint8Array[]): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    let ok = true;
    for (const b of buffers) ok = this.socket.write(b);
    if (!ok) this.writeBlocked = true;
  }

  private flow(): void {
    if (this.draining) return;
    if (this.writeBlocked || this.inflightBytes > INFLIGHT_BYTES) this.socket.pause();
    else this.socket.resume();
  }
}

export class StorageServer {
  readonly counters: ServerCounters = { connections: 0, accepted: 0, requests: 0, refused: {} };
  private readonly connections = new Set<Connection>();
  private closing: Promise<void> | undefined;

  private constructor(readonly store: LogStore, private readonly server: net.Server) {
    server.on('connection', (socket) => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      const c = new Connection(socket, this);
      this.connections.add(c);
      this.counters.accepted++;
      this.counters.connections++;
      void c.closed.then(() => {
        this.connections.delete(c);
        this.counters.connections--;
      });
    });
  }

  static async listen(store: LogStore, options: { port: number; host?: string }): Promise<StorageServer> {
    const server = net.createServer({ pauseOnConnect: false });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new StorageServer(store, server);
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  // Stops accepting, lets every connection finish what it asked, closes the store.
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const c of this.connections) c.drain();
      const grace = setTimeout(() => { for (const c of this.connections) c.destroy(); }, SHUTDOWN_GRACE_MS);
      await Promise.all([...this.connections].map((c) => c.closed));
      clearTimeout(grace);
      await stopped;
      await this.store.close();
    })();
    return this.closing;
  }

  async dispatch(op: number, body: Buffer): Promise<Buffer[]> {
    const name = OP_NAMES[op];
    const c = new Cursor(body, name ?? `op ${op}`);
    switch (op) {
      case Op.createLog: {
        const log = c.u32();
        c.end();
        await this.store.createLog(log);
        return [];
      }
      case Op.append: {
        const flags = c.u32();
        if (flags !== 0) throw new SmfsError('SMFS_ERR_REQUEST', `append flags ${flags}: this server knows none yet (acknowledgement levels come with mirroring)`);
        const n = c.u32();
        if (n === 0) throw new SmfsError('SMFS_ERR_REQUEST', 'a group needs at least one record');
        if (n > LIMITS.groupRecords) throw new SmfsError('SMFS_ERR_TOO_LARGE', `a group holds at most ${LIMITS.groupRecords} records, got ${n}`);
        const records: AppendRecord[] = [];
        for (let i = 0; i < n; i++) {
          const log = c.u32();
          const length = c.u32();
          const crc = c.u32();
          if (length > LIMITS.recordBytes) throw new SmfsError('SMFS_ERR_TOO_LARGE', `record ${i} has ${length} bytes; a record holds at most ${LIMITS.recordBytes}`);
          records.push({ log, crc, data: c.bytes(length) });
        }
        c.end();
        const addresses = await this.store.append(records);
        return [encodeU32(addresses.length), ...addresses.map(encodeAddress)];
      }
      case Op.read: {
        const a = c.address();
        c.end();
        const r = await this.store.read(a);
        return [encodeU32(r.data.length), encodeU32(r.crc), r.data];
      }
      case Op.free: {
        const n = c.u32();
        if (n > LIMITS.groupRecords) throw new SmfsError('SMFS_ERR_TOO_LARGE', `free takes at most ${LIMITS.groupRecords} addresses, got ${n}`);
        const addresses: Address[] = [];
        for (let i = 0; i < n; i++) addresses.push(c.address());
        c.end();
        await this.store.free(addresses);
        return [];
      }
      case Op.clean: {
        const log = c.u32();
        const percent = c.u8();
        c.end();
        if (percent > 100) throw new SmfsError('SMFS_ERR_REQUEST', `clean takes a live share from 0 to 100 percent, got ${percent}`);
        return [json(await this.store.clean({ maxLiveRatio: percent / 100, logs: log === ALL_LOGS ? undefined : [log] }))];
      }
      case Op.stat: {
        c.end();
        return [json({ ...this.store.stat(), recovery: this.store.recovery, server: this.counters })];
      }
      case Op.sync: {
        c.end();
        return [u64(await this.store.sync())];
      }
      case Op.tail: {
        const log = c.u32();
        c.end();
        const a = this.store.tail(log);
        return [Buffer.of(a ? 1 : 0), encodeAddress(a ?? { log: 0, segment: 0, offset: 0 })];
      }
      default:
        throw new SmfsError('SMFS_ERR_FRAME', `unknown op ${op}; this server knows ${Object.entries(Op).map(([k, v]) => `${v} (${k})`).join(', ')}`);
    }
  }
}
