import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { packetId } from '../../src/fec/codec';
import { Rng, ipv4Checksum, makePacket, routed } from '../helpers/packets';

const identity = suite('packet identity by content');

identity('IPv4 TTL, TOS and header checksum do not change the hash; the recipe keeps TTL and TOS', () => {
  const rng = new Rng(7);
  const p = makePacket(rng, 1, 200, 0);
  const id = packetId(p);
  const q = routed(p, 5);
  q[1] ^= 0x03; // ECN bits set by a router, which updates the header checksum
  q.writeUInt16BE(0, 10);
  q.writeUInt16BE(ipv4Checksum(q.subarray(0, 20)), 10);
  const qid = packetId(q);
  assert.is(qid.hash, id.hash);
  assert.is(id.ttl, p[8]);
  assert.is(id.tos, p[1]);
  assert.is(qid.ttl, q[8]);
  assert.is.not(qid.ttl, id.ttl);
});

identity('an IPv4 header with a wrong checksum is opaque: its TTL is part of its identity', () => {
  const p = makePacket(new Rng(10), 1, 120, 0);
  p.writeUInt16BE(0xbeef, 10);
  const q = Buffer.from(p);
  q[8] -= 1;
  assert.is.not(packetId(q).hash, packetId(p).hash);
  assert.is(packetId(p).ttl, 0);
});

identity('IPv6 hop limit and traffic class do not change the hash', () => {
  const rng = new Rng(8);
  const p = makePacket(rng, 2, 300, 7);
  assert.is(p[0] >> 4, 6);
  const q = routed(p, 3);
  q[0] = (q[0] & 0xf0) | 0x0a;
  q[1] = (q[1] & 0x0f) | 0x50;
  assert.is(packetId(q).hash, packetId(p).hash);
  assert.is(packetId(q).tos, 0xa5);
});

identity('payload, length and immutable header bytes change the hash', () => {
  const rng = new Rng(9);
  for (const kind of [0, 7, 9]) {
    const p = makePacket(rng, 3, 400, kind);
    const h = packetId(p).hash;
    const flipped = Buffer.from(p);
    flipped[399] ^= 1;
    assert.is.not(packetId(flipped).hash, h, `payload, kind ${kind}`);
    assert.is.not(packetId(p.subarray(0, 399)).hash, h, `length, kind ${kind}`);
    const src = Buffer.from(p);
    src[13] ^= 0x80; // IPv4 source address / IPv6 payload length / opaque byte
    assert.is.not(packetId(src).hash, h, `header, kind ${kind}`);
  }
});

identity('opaque packets have no mutable fields', () => {
  const p = Buffer.from('not an ip packet at all, just bytes');
  const id = packetId(p);
  assert.is(id.ttl, 0);
  assert.is(id.tos, 0);
  const q = Buffer.from(p);
  q[8] ^= 0xff;
  assert.is.not(packetId(q).hash, id.hash);
});

identity.run();
