// Ethernet/IPv4/UDP frames for data-plane tests, with valid checksums unless told otherwise.
import { ipv4Checksum } from './packets';

export function ipv4Bytes(a: string): number[] {
  return a.split('.').map(Number);
}

export interface FrameOptions {
  src: string;
  dst: string;
  protocol?: number;     // 17 UDP by default
  ttl?: number;
  ihl?: number;          // 5 by default; more adds zeroed option words
  fragment?: boolean;    // sets MF
  srcPort?: number;
  dstPort?: number;
  payload?: Buffer;
  etherType?: number;
}

export function frame(o: FrameOptions): Buffer {
  const ihl = o.ihl ?? 5;
  const payload = o.payload ?? Buffer.alloc(32, 0x61);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(o.srcPort ?? 40000, 0);
  udp.writeUInt16BE(o.dstPort ?? 40001, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const ip = Buffer.alloc(Math.max(20, ihl * 4));
  ip[0] = 0x40 | (ihl & 0x0f);
  ip.writeUInt16BE(ip.length + udp.length + payload.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip.writeUInt16BE(o.fragment ? 0x2000 : 0x4000, 6);
  ip[8] = o.ttl ?? 64;
  ip[9] = o.protocol ?? 17;
  Buffer.from(ipv4Bytes(o.src)).copy(ip, 12);
  Buffer.from(ipv4Bytes(o.dst)).copy(ip, 16);
  ip.writeUInt16BE(ipv4Checksum(ip.subarray(0, Math.max(20, Math.min(60, ihl * 4)))), 10);
  const eth = Buffer.alloc(14);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(eth, 0);
  Buffer.from([2, 0, 0, 0, 0, 2]).copy(eth, 6);
  eth.writeUInt16BE(o.etherType ?? 0x0800, 12);
  return Buffer.concat([eth, ip, udp, payload]);
}
