// A client of a server speaking SMFS frames (storage, metadata and file servers): one TCP
// connection, authenticated both ways (auth.ts), requests pipelined and matched to answers by
// id. Failing to connect, or losing the connection, is SMFS_ERR_UNAVAILABLE naming the server
// (the storage client keeps its SMFS_ERR_CLOSED once connected), so a caller can tell "that
// server is gone" from a refusal; a server that refuses our credential, or cannot prove it
// holds it, is SMFS_ERR_AUTH. Also the endpoint helpers ("host:port") the servers and CLI share.
import net from 'node:net';
import { secureClient } from './auth';
import type { Credential } from './credentials';
import { SmfsError } from './errors';
import { ANSWER_FLAG, FrameReader, PUSH_ID, decodeError, encodeFrame } from './wire';
import { writeFrame } from './frame-write';

export interface Endpoint {
  host: string;
  port: number;
}

export const CONNECT_TIMEOUT_MS = 10_000;

export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

// "host:port" or "[v6]:port"; undefined when it is neither.
export function parseEndpoint(text: string): Endpoint | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2], port };
}

export function unavailable(what: string, e: Endpoint, err: unknown): SmfsError {
  return new SmfsError('SMFS_ERR_UNAVAILABLE', `cannot reach the ${what} at ${formatEndpoint(e)}: ${(err as Error).message}; is it running?`, { cause: err });
}

export interface ConnectOptions {
  tls?: boolean;
  connectTimeoutMs?: number; // connecting, TLS and the handshake (default CONNECT_TIMEOUT_MS)
}

// Connects and authenticates, over TLS if asked, within the connect timeout.
export async function connectSocket(e: Endpoint, what: string, credential: Credential, options: ConnectOptions = {}): Promise<net.Socket> {
  const tcp = net.connect({ port: e.port, host: e.host });
  const timeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
  const timer = setTimeout(() => tcp.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once('connect', () => {
        tcp.off('error', reject);
        resolve();
      });
      tcp.once('error', reject);
    });
    return await secureClient(tcp, { credential, tls: options.tls ?? false, peer: `${what} at ${formatEndpoint(e)}` });
  } catch (err) {
    tcp.destroy();
    throw err instanceof SmfsError ? err : unavailable(what, e, err);
  } finally {
    clearTimeout(timer);
  }
}

interface Pending {
  op: number;
  resolve: (body: Buffer) => void;
  reject: (err: SmfsError) => void;
}

export class FrameClient {
  private readonly reader = new FrameReader(true);
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: SmfsError | undefined;
  private lastHeard = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  private markLost!: (err: SmfsError) => void;
  // Resolves with the error the connection failed with, once it has.
  protected readonly lost = new Promise<SmfsError>((resolve) => { this.markLost = resolve; });

  // `socket` is authenticated (connectSocket). `lost` makes the error pending requests fail with
  // when the connection breaks or closes.
  protected constructor(
    private readonly socket: net.Socket, readonly endpoint: Endpoint, what: string,
    lost: { error: (err: Error) => SmfsError; closed: () => SmfsError } = {
      error: (err) => unavailable(what, endpoint, err),
      closed: () => new SmfsError('SMFS_ERR_UNAVAILABLE', `the ${what} at ${formatEndpoint(endpoint)} closed the connection`),
    },
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.lastHeard = Date.now();
      for (const f of this.reader.push(chunk)) {
        const p = this.pending.get(f.id);
        if (!p) {
          // A frame the server sent unasked (the watermark, a coded share); a client that knows
          // none ignores it, as it ignores an answer to nothing.
          if (f.id === PUSH_ID && f.kind === 'frame' && f.body.length > 0 && f.body[0] === 0) this.pushed(f.op & ~ANSWER_FLAG, f.body.subarray(1));
          continue;
        }
        this.pending.delete(f.id);
        if (f.kind === 'bad') p.reject(f.error);
        else if ((f.op & ~ANSWER_FLAG) !== p.op) p.reject(new SmfsError('SMFS_ERR_FRAME', `answer to request ${f.id} is for op ${f.op & ~ANSWER_FLAG}, not ${p.op}`));
        else if (f.body.length === 0) p.reject(new SmfsError('SMFS_ERR_FRAME', 'an answer without a status'));
        else if (f.body[0] === 0) p.resolve(f.body.subarray(1));
        else p.reject(decodeError(f.body.subarray(1)));
      }
    });
    socket.on('error', (err) => this.failAll(lost.error(err)));
    socket.on('close', () => this.failAll(lost.closed()));
    socket.resume();
  }

  // What a subclass does with a frame pushed by the server (request id 0).
  protected pushed(_op: number, _body: Buffer): void {
    // Nothing, unless the subclass knows the op.
  }

  // Declares the server gone when requests are waiting and nothing at all has come from it in
  // `ms`: a server whose host died never closes the connection. The requests fail as on a
  // connection lost.
  protected watchAnswers(ms: number): void {
    if (this.watchdog || !(ms > 0)) return;
    this.watchdog = setInterval(() => {
      if (this.pending.size > 0 && Date.now() - this.lastHeard > ms) this.socket.destroy(new Error(`no answer from the server in ${ms} ms`));
    }, Math.max(10, ms / 4));
    this.watchdog.unref();
  }

  // Whether the connection is gone (closed, reset, or given up on).
  get failed(): SmfsError | undefined {
    return this.failure;
  }

  // Sends one request; resolves to the answer's body (after the status byte).
  request(op: number, body: Uint8Array[] = []): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId;
    this.nextId = this.nextId === 0xffffffff ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.lastHeard = Date.now();
      this.pending.set(id, { op, resolve, reject });
      writeFrame(this.socket, encodeFrame(op, id, body));
    });
  }

  // Bytes as they are, for tests of what a server does with malformed frames.
  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  // Waits for the answer to a request id sent by writeRaw.
  expect(id: number, op: number): Promise<Buffer> {
    return new Promise((resolve, reject) => this.pending.set(id, { op, resolve, reject }));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  private failAll(err: SmfsError): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.failure ??= err;
    this.markLost(this.failure);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
