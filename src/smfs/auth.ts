// Authenticating an SMFS connection (docs/smfs.md, "Authentication"), one implementation for
// every server and client: the storage, metadata and file servers (frame-server.ts), their
// clients (frame-client.ts) and a primary's stream to its mirror (mirror.ts).
//
// Both ends prove they hold the deployment's credential before any request is served: a
// challenge-response in SMFS frames, HMAC-SHA256 over both ends' nonces, a label naming the
// prover's side and, over TLS, the TLS channel's exported keying material, so a proof is good
// for one connection only. A connection may first run TLS (TLS-PSK, the key derived from the
// credential): the server tells it from a plain one by its first byte.
//
//   client  auth-hello (op 32)   u8 version 1, key id (8 bytes), client nonce Nc (32 bytes)
//   server  answer               status 0, server nonce Ns (32), HMAC(K, "SMFS auth 1 server" | key id | Nc | Ns | B)
//   client  auth-proof (op 33)   HMAC(K, "SMFS auth 1 client" | key id | Nc | Ns | B)
//   server  answer               status 0, empty
//
// B is tlsSocket.exportKeyingMaterial(32, "EXPORTER-SMFS-auth-1", empty context) over TLS, empty
// on plain TCP. Anything else from a client (another op first, a wrong key id or proof, a
// frame too large for the handshake) is answered SMFS_ERR_AUTH under its request id, and the
// connection is closed.
import crypto from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import type { Credential } from './credentials';
import { SmfsError } from './errors';
import { ANSWER_FLAG, FRAME_HEADER, WIRE_MAGIC, WIRE_VERSION, decodeError, encodeAnswer, encodeErrorAnswer, encodeFrame } from './wire';
import { TcpCount } from '../feedback/tcp-count';

export const AuthOp = { hello: 32, proof: 33 } as const;
export const AUTH_VERSION = 1;
// A handshake not done in this long is cut off.
export const AUTH_TIMEOUT_MS = 10_000;
// The first byte of a TLS connection (a handshake record); no SMFS frame starts with it (its
// length would be over 350 MiB).
export const TLS_HANDSHAKE_BYTE = 0x16;
// TLS 1.2 with one suite that has a PSK (no certificates), forward secrecy (ECDHE) and an AEAD;
// its name pins the key exchange, which TLS 1.3 negotiates out of Node's sight (decision 50).
export const TLS_OPTIONS = { ciphers: 'ECDHE-PSK-CHACHA20-POLY1305', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;
const EXPORTER_LABEL = 'EXPORTER-SMFS-auth-1';
const NONCE = 32;
const MAC = 32;
const HELLO_BODY = 1 + 8 + NONCE;
// An answer in the handshake is at most an error with its message.
const MAX_ANSWER_BODY = 4096;
// Holding this much unread, the handshake stops reading: every frame it waits for is smaller.
const HANDSHAKE_BUFFER = 8192;
// A refused client is given this long to read its answer before the connection is cut.
const REFUSED_GRACE_MS = 2000;

function proof(credential: Credential, side: 'server' | 'client', nc: Buffer, ns: Buffer, binding: Buffer): Buffer {
  return crypto.createHmac('sha256', credential.authKey)
    .update(`SMFS auth 1 ${side}`).update(Buffer.from(credential.keyId, 'hex')).update(nc).update(ns).update(binding)
    .digest();
}

function channelBinding(socket: net.Socket): Buffer {
  return socket instanceof tls.TLSSocket ? socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)) : Buffer.alloc(0);
}

// A refusal the server answers under the request's op and id before closing.
class Refusal extends Error {
  constructor(readonly op: number, readonly id: number, message: string) {
    super(message);
  }
}

// Reads the handshake's bytes from a socket; afterwards gives back what came after them.
class HandshakeReader {
  private buffered: Buffer = Buffer.alloc(0);
  private want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private gone: Error | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.buffered.length >= HANDSHAKE_BUFFER) this.socket.pause();
    this.serve();
  };
  private readonly onClose = () => this.fail(new Error('the connection closed during authentication'));
  private readonly onError = (err: Error) => this.fail(err);

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.resume();
  }

  take(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.want = { n, resolve, reject };
      this.serve();
    });
  }

  // Stops reading; bytes that came after the handshake go back to the socket for its next
  // reader. The error listener stays: an error before that reader has its own must not go
  // unhandled (and would close the socket, which that reader sees).
  detach(): void {
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    if (this.buffered.length > 0) this.socket.unshift(this.buffered);
    this.buffered = Buffer.alloc(0);
  }

  private serve(): void {
    const w = this.want;
    if (!w) return;
    if (this.buffered.length >= w.n) {
      this.want = undefined;
      const out = this.buffered.subarray(0, w.n);
      this.buffered = this.buffered.subarray(w.n);
      w.resolve(out);
    } else if (this.gone) {
      this.want = undefined;
      w.reject(this.gone);
    }
  }

  private fail(err: Error): void {
    this.gone ??= err;
    this.serve();
  }
}

// One frame of the handshake, read without trusting its length beyond `maxBody`.
async function readFrame(r: HandshakeReader, answer: boolean, maxBody: number): Promise<{ op: number; id: number; body: Buffer }> {
  const length = (await r.take(4)).readUInt32BE(0);
  if (length < FRAME_HEADER) throw new Refusal(0, 0, `a frame of ${length} bytes has no room for its header`);
  const head = await r.take(FRAME_HEADER);
  const op = head[3] & ~ANSWER_FLAG;
  const id = head.readUInt32BE(4);
  if (head.readUInt16BE(0) !== WIRE_MAGIC || head[2] !== WIRE_VERSION) throw new Refusal(op, id, 'not an SMFS frame of this version');
  if (((head[3] & ANSWER_FLAG) !== 0) !== answer) throw new Refusal(op, id, answer ? 'a request where an answer was due' : 'an answer sent as a request');
  if (length - FRAME_HEADER > maxBody) throw new Refusal(op, id, `a frame of ${length} bytes during authentication, which takes at most ${FRAME_HEADER + maxBody}`);
  return { op, id, body: await r.take(length - FRAME_HEADER) };
}

function refuseAndClose(socket: net.Socket, op: number, id: number, message: string): void {
  socket.on('data', () => undefined); // read what else comes, so closing does not reset the answer away
  socket.on('error', () => undefined);
  socket.resume();
  socket.end(Buffer.concat(encodeErrorAnswer(op, id, 'SMFS_ERR_AUTH', message)));
  setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
}

// The server's side: resolves once the client has proved itself; otherwise answers
// SMFS_ERR_AUTH, closes, and rejects with the reason.
export async function acceptAuth(socket: net.Socket, credential: Credential): Promise<void> {
  const r = new HandshakeReader(socket);
  try {
    const hello = await readFrame(r, false, HELLO_BODY);
    if (hello.op !== AuthOp.hello) {
      throw new Refusal(hello.op, hello.id, `op ${hello.op} before authenticating: this server serves only clients that hold the deployment's credential (--credentials), and they begin with auth-hello`);
    }
    if (hello.body.length !== HELLO_BODY) throw new Refusal(hello.op, hello.id, `auth-hello has ${hello.body.length} bytes, not ${HELLO_BODY}`);
    if (hello.body[0] !== AUTH_VERSION) throw new Refusal(hello.op, hello.id, `authentication version ${hello.body[0]}; this server speaks ${AUTH_VERSION}`);
    const keyId = hello.body.subarray(1, 9).toString('hex');
    if (keyId !== credential.keyId) {
      throw new Refusal(hello.op, hello.id, `the client's credential is another deployment's (key id ${keyId}; this server's is ${credential.keyId})`);
    }
    const nc = hello.body.subarray(9);
    const ns = crypto.randomBytes(NONCE);
    const binding = channelBinding(socket);
    socket.write(Buffer.concat(encodeAnswer(AuthOp.hello, hello.id, [ns, proof(credential, 'server', nc, ns, binding)])));
    const p = await readFrame(r, false, MAC);
    if (p.op !== AuthOp.proof || p.body.length !== MAC) throw new Refusal(p.op, p.id, `expected auth-proof (op ${AuthOp.proof}) with a ${MAC}-byte proof`);
    if (!crypto.timingSafeEqual(p.body, proof(credential, 'client', nc, ns, binding))) {
      throw new Refusal(p.op, p.id, "the client's proof does not check out: it does not hold this deployment's credential, or the connection was relayed");
    }
    socket.write(Buffer.concat(encodeAnswer(AuthOp.proof, p.id)));
    r.detach();
  } catch (err) {
    r.detach();
    if (err instanceof Refusal) {
      refuseAndClose(socket, err.op, err.id, err.message);
      throw new SmfsError('SMFS_ERR_AUTH', err.message);
    }
    socket.destroy();
    throw new SmfsError('SMFS_ERR_AUTH', (err as Error).message, { cause: err });
  }
}

async function readAnswer(r: HandshakeReader, op: number, peer: string): Promise<Buffer> {
  let f;
  try {
    f = await readFrame(r, true, MAX_ANSWER_BODY);
  } catch (err) {
    if (err instanceof Refusal) throw new SmfsError('SMFS_ERR_AUTH', `the ${peer} answered authentication with ${err.message}: is it an SMFS server?`);
    throw err;
  }
  if (f.op !== op || f.body.length === 0) throw new SmfsError('SMFS_ERR_AUTH', `the ${peer} answered op ${op} of the authentication with something else: is it an SMFS server?`);
  if (f.body[0] === 0) return f.body.subarray(1);
  const e = decodeError(f.body.subarray(1));
  throw new SmfsError(e.code, e.code === 'SMFS_ERR_AUTH' ? `the ${peer} refused our credential: ${e.message}` : `the ${peer}: ${e.message}`);
}

// The client's side: resolves once the server has proved itself and accepted our proof.
// `peer` names the server in errors ("storage server at 10.0.0.1:7610").
export async function offerAuth(socket: net.Socket, credential: Credential, peer: string): Promise<void> {
  const r = new HandshakeReader(socket);
  try {
    const nc = crypto.randomBytes(NONCE);
    const binding = channelBinding(socket);
    socket.write(Buffer.concat(encodeFrame(AuthOp.hello, 0, [Buffer.of(AUTH_VERSION), Buffer.from(credential.keyId, 'hex'), nc])));
    const hello = await readAnswer(r, AuthOp.hello, peer);
    if (hello.length !== NONCE + MAC) throw new SmfsError('SMFS_ERR_AUTH', `the ${peer} answered auth-hello with ${hello.length} bytes, not ${NONCE + MAC}`);
    const ns = hello.subarray(0, NONCE);
    if (!crypto.timingSafeEqual(hello.subarray(NONCE), proof(credential, 'server', nc, ns, binding))) {
      throw new SmfsError('SMFS_ERR_AUTH', `the ${peer} did not prove it holds our credential (${credential.file}): it is not a server of this deployment, or the connection was relayed`);
    }
    socket.write(Buffer.concat(encodeFrame(AuthOp.proof, 0, [proof(credential, 'client', nc, ns, binding)])));
    await readAnswer(r, AuthOp.proof, peer);
  } finally {
    r.detach();
  }
}

// The first byte a client sends, left in the socket for whoever reads next.
function firstByte(socket: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      done();
      socket.pause();
      socket.unshift(chunk);
      resolve(chunk[0]);
    };
    const onClose = () => {
      done();
      reject(new Error('the connection closed before a byte came'));
    };
    const done = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', () => undefined); // 'close' follows
  });
}

// A TLS alert or protocol error is a refusal; anything else (a reset, a timeout) is the
// connection failing, and stays the error it was.
function tlsFailure(err: Error, peer: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (!code?.startsWith('ERR_SSL_')) return err;
  return new SmfsError('SMFS_ERR_AUTH', `the TLS-PSK handshake with the ${peer} failed (${code}): the two ends hold different credentials, or it does not speak TLS`, { cause: err });
}

// The server's side of a new connection: TLS if the client starts it, then the handshake, all
// within `timeoutMs`. Resolves to the socket to serve (the TLS socket, or the TCP one); on
// failure the connection is closed.
export async function secureServer(tcp: net.Socket, credential: Credential, timeoutMs = AUTH_TIMEOUT_MS): Promise<net.Socket> {
  let socket: net.Socket = tcp;
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    socket.destroy();
    tcp.destroy();
  }, timeoutMs);
  try {
    if (await firstByte(tcp) === TLS_HANDSHAKE_BYTE) {
      // pskCallback works here as in tls.createServer; @types/node leaves it out of TLSSocketOptions.
      const options: tls.TLSSocketOptions & Pick<tls.TlsOptions, 'pskCallback'> = {
        isServer: true, ...TLS_OPTIONS,
        pskCallback: (_socket, identity) => (identity === credential.pskIdentity ? credential.pskKey : null),
      };
      const t = new tls.TLSSocket(tcp, options);
      socket = t;
      await new Promise<void>((resolve, reject) => {
        t.once('secure', resolve);
        t.once('error', (err) => reject(tlsFailure(err, 'client')));
        t.once('close', () => reject(new Error('the connection closed during the TLS handshake')));
      });
    }
  } catch (err) {
    clearTimeout(timer);
    socket.destroy();
    tcp.destroy();
    if (late) throw new SmfsError('SMFS_ERR_AUTH', `no TLS handshake within ${timeoutMs} ms`, { cause: err });
    throw err instanceof SmfsError ? err : new SmfsError('SMFS_ERR_AUTH', (err as Error).message, { cause: err });
  }
  try {
    await acceptAuth(socket, credential); // closes the connection itself when it fails
    return socket;
  } catch (err) {
    if (late) throw new SmfsError('SMFS_ERR_AUTH', `no authentication within ${timeoutMs} ms`, { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

// The client's side, on a connected TCP socket: TLS first if asked (over a TcpCount, so that
// network-sync can count the TCP bytes under it), then the handshake. Resolves to the socket
// to use. On failure the TCP socket is destroyed.
export async function secureClient(tcp: net.Socket, o: { credential: Credential; tls: boolean; peer: string }): Promise<net.Socket> {
  try {
    let socket: net.Socket = tcp;
    if (o.tls) {
      const count = new TcpCount(tcp);
      const t = tls.connect({
        socket: count, ...TLS_OPTIONS,
        pskCallback: () => ({ psk: o.credential.pskKey, identity: o.credential.pskIdentity }),
        checkServerIdentity: () => undefined, // no certificate: the PSK authenticates the server
      });
      count.carry(t);
      socket = t;
      await new Promise<void>((resolve, reject) => {
        t.once('secureConnect', resolve);
        t.once('error', (err) => reject(tlsFailure(err, o.peer)));
        t.once('close', () => reject(new SmfsError('SMFS_ERR_AUTH', `the ${o.peer} closed the connection during the TLS handshake`)));
      });
    }
    await offerAuth(socket, o.credential, o.peer);
    return socket;
  } catch (err) {
    tcp.destroy();
    throw err;
  }
}
