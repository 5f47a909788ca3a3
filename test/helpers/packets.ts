// Random packet streams and loss patterns for the codec tests, from a seeded generator so a
// failure can be replayed by its seed.

export class Rng {
  private s: bigint;
  constructor(seed: number) {
    this.s = BigInt(seed) & 0xffffffffffffffffn;
  }
  next(): number {
    this.s = (this.s + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = this.s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    return Number((z ^ (z >> 31n)) >> 11n) / 2 ** 53;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
}

export function ipv4Checksum(h: Buffer): number {
  let sum = 0;
  for (let i = 0; i < h.length; i += 2) sum += (h[i] << 8) | (h[i + 1] ?? 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

// A packet of `len` bytes: IPv4 (valid header checksum), IPv6, or opaque bytes, with a
// unique id written into the payload so no two packets of a stream are equal.
export function makePacket(rng: Rng, id: number, len: number, kind = rng.int(0, 9)): Buffer {
  const p = Buffer.alloc(len);
  for (let i = 0; i < len; i++) p[i] = rng.int(0, 255);
  if (kind < 7 && len >= 28) {
    p[0] = 0x45;
    p[1] = rng.int(0, 255);
    p.writeUInt16BE(len, 2);
    p[8] = rng.int(2, 255);
    p[9] = 17;
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(ipv4Checksum(p.subarray(0, 20)), 10);
  } else if (kind < 9 && len >= 48) {
    p[0] = 0x60 | (p[0] & 0x0f);
    p.writeUInt16BE(len - 40, 4);
    p[7] = rng.int(2, 255);
  } else {
    p[0] = 0x00; // neither IPv4 nor IPv6: hashed raw
  }
  const at = len >= 48 ? 40 : len - 4;
  p.writeUInt32BE(id >>> 0, at);
  if (kind < 7 && len >= 28) {
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(ipv4Checksum(p.subarray(0, 20)), 10);
  }
  return p;
}

export function makeStream(seed: number, count: number, minLen = 40, maxLen = 1500): Buffer[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, i) => makePacket(rng, i, rng.int(minLen, maxLen)));
}

// What a router on the WAN does to a packet: TTL or hop limit lowered (checksum kept valid).
export function routed(p: Buffer, hops: number): Buffer {
  const q = Buffer.from(p);
  if (q.length >= 20 && q[0] >> 4 === 4) {
    q[8] = Math.max(1, q[8] - hops);
    q.writeUInt16BE(0, 10);
    q.writeUInt16BE(ipv4Checksum(q.subarray(0, (q[0] & 0x0f) * 4)), 10);
  } else if (q.length >= 40 && q[0] >> 4 === 6) {
    q[7] = Math.max(1, q[7] - hops);
  }
  return q;
}
