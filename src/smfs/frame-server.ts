// A TCP server speaking SMFS frames (wire.ts), for the storage, metadata and file servers: each
// connection is authenticated first (auth.ts: TLS if the client starts it, then the
// handshake), then may pipeline requests, each answered under its id by `dispatch`; a refused
// request is answered with its error code, and the connection goes on with its next frame.
// Nothing a connection sends before it has authenticated is dispatched.
import net from 'node:net';
import tls from 'node:tls';
import { AUTH_TIMEOUT_MS, secureServer } from './auth';
import type { Credential } from './credentials';
import { SmfsError } from './errors';
import { FrameReader, PUSH_ID, encodeAnswer, encodeErrorAnswer } from './wire';
import type { Frame } from './wire';
import { writeFrame } from './frame-write';

export interface ConnectionCounters {
  connections: number;     // open now, authenticated
  accepted: number;        // TCP connections taken, authenticated or not
  tls: number;             // connections authenticated over TLS
  authFailed: number;      // connections that did not authenticate (refused, TLS failed, cut off, or gone)
  requests: number;
  refused: Record<string, number>; // answers with an error, by code
}

// `conn` is the connection the request came on (the storage server takes a mirror stream only
// on one). Whatever dispatch does before its first await happens in the order requests arrive.
export type Dispatch = (op: number, body: Buffer, conn: Connection) => Promise<Uint8Array[]>;

// A connection stops reading while its requests in flight hold this much, or while the kernel
// will not take its answers, so one client cannot fill the server's memory.
const INFLIGHT_BYTES = 256 * 1024 * 1024;
const SHUTDOWN_GRACE_MS = 5000;

export class Connection {
  private readonly reader = new FrameReader();
  private inflight = 0;
  private inflightBytes = 0;
  private writeBlocked = false;
  private draining = false;
  readonly closed: Promise<void>;

  // `socket` has authenticated (secureServer) and is paused.
  constructor(readonly socket: net.Socket, private readonly server: FrameServer) {
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
    this.flow();
  }

  get tls(): boolean {
    return this.socket instanceof tls.TLSSocket;
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

  // A frame the client did not ask for (request id 0): the watermark, a coded share. Dropped
  // if the connection is closing.
  push(op: number, body: Uint8Array[]): void {
    if (this.draining) return;
    this.send(encodeAnswer(op, PUSH_ID, body));
  }

  // Bytes the kernel has not taken yet: a push waits while a slow client is this far behind.
  get backlog(): number {
    return this.socket.writableLength;
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
    this.server.dispatch(frame.op, frame.body, this).then(
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
      process.stderr.write(`${this.server.name}: internal error on ${this.server.opNames[op] ?? `op ${op}`}: ${err instanceof Error ? err.stack : String(err)}\n`);
      e = new SmfsError('SMFS_ERR_IO', `internal error: ${err instanceof Error ? err.message : String(err)}`);
    }
    const refused = this.server.counters.refused;
    refused[e.code] = (refused[e.code] ?? 0) + 1;
    this.send(encodeErrorAnswer(op, id, e.code, e.message, e.details));
  }

  private send(buffers: Uint8Array[]): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    if (!writeFrame(this.socket, buffers)) this.writeBlocked = true;
  }

  private flow(): void {
    if (this.draining) return;
    if (this.writeBlocked || this.inflightBytes > INFLIGHT_BYTES) this.socket.pause();
    else this.socket.resume();
  }
}

export interface FrameServerOptions {
  port: number;
  host?: string;
  credential: Credential;  // the deployment's: every connection proves it holds it, and so does the server
  authTimeoutMs?: number;  // a connection not authenticated in this long is closed (default 10 s)
  opNames?: Record<number, string>;
}

export function connectionCounters(): ConnectionCounters {
  return { connections: 0, accepted: 0, tls: 0, authFailed: 0, requests: 0, refused: {} };
}

export class FrameServer {
  private readonly connections = new Set<Connection>();
  private readonly authenticating = new Set<net.Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly name: string, readonly dispatch: Dispatch, private readonly server: net.Server,
    readonly counters: ConnectionCounters, private readonly options: FrameServerOptions,
  ) {
    server.on('connection', (tcp) => {
      if (this.closing) {
        tcp.destroy();
        return;
      }
      this.counters.accepted++;
      this.authenticating.add(tcp);
      secureServer(tcp, options.credential, options.authTimeoutMs ?? AUTH_TIMEOUT_MS).then((socket) => {
        this.authenticating.delete(tcp);
        if (this.closing) {
          socket.destroy();
          return;
        }
        const c = new Connection(socket, this);
        this.connections.add(c);
        if (c.tls) this.counters.tls++;
        this.counters.connections++;
        void c.closed.then(() => {
          this.connections.delete(c);
          this.counters.connections--;
        });
      }, () => {
        this.authenticating.delete(tcp);
        this.counters.authFailed++;
      });
    });
  }

  get opNames(): Record<number, string> {
    return this.options.opNames ?? {};
  }

  // `name` prefixes internal errors printed to stderr ("smfs metadata", "smfs files").
  // `counters` may be a server's own, larger record; its connection fields are kept here.
  static async listen(name: string, dispatch: Dispatch, options: FrameServerOptions, counters = connectionCounters()): Promise<FrameServer> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new FrameServer(name, dispatch, server, counters, options);
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  // Stops accepting and lets every connection finish what it asked.
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const tcp of this.authenticating) tcp.destroy();
      for (const c of this.connections) c.drain();
      const grace = setTimeout(() => { for (const c of this.connections) c.destroy(); }, SHUTDOWN_GRACE_MS);
      await Promise.all([...this.connections].map((c) => c.closed));
      clearTimeout(grace);
      await stopped;
    })();
    return this.closing;
  }
}
