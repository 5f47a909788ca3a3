// A TLS connection whose TCP bytes are counted, for network-sync over TLS. A gateway's feedback
// counts offsets in the TCP stream, which under TLS holds record headers, MACs and handshakes
// besides the data written. TcpCount sits between the TLSSocket and its net.Socket, passing
// everything through and counting what TLS writes into TCP; TrackedSocket (listener.ts) maps
// each write to the TCP offset counted when TLS calls the write back, by which time every
// byte of its records has gone through here: the offset may be a little past the write's true
// end, never short of it, so a write is never reported safe before its bytes are.
import type net from 'node:net';
import { Duplex } from 'node:stream';
import type tls from 'node:tls';

const carried = new WeakMap<tls.TLSSocket, TcpCount>();

export class TcpCount extends Duplex {
  private count = 0n;

  constructor(readonly tcp: net.Socket) {
    super();
    tcp.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) tcp.pause();
    });
    tcp.on('end', () => this.push(null));
    tcp.on('error', (err) => this.destroy(err));
    tcp.on('close', () => this.destroy());
  }

  // The TCP connection under `socket`, if it is a TLS connection made over a TcpCount.
  static under(socket: net.Socket): TcpCount | undefined {
    return carried.get(socket as tls.TLSSocket);
  }

  // Marks `socket` as the TLS connection this stream carries.
  carry(socket: tls.TLSSocket): void {
    carried.set(socket, this);
  }

  // Bytes given to TCP so far, from the first byte of the stream.
  get written(): bigint {
    return this.count;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.count += BigInt(chunk.length);
    this.tcp.write(chunk, callback);
  }

  override _read(): void {
    this.tcp.resume();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.tcp.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.tcp.destroy(err ?? undefined);
    callback(err);
  }
}
