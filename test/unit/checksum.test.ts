// The engine completes TCP and UDP checksums that a LAN host's checksum offload left partial
// (the pseudo-header's sum only, as veth and virtio pass them on), and leaves every other
// checksum as it is: a wrong one stays wrong, for the far host to drop.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { addon } from '../../src/native/addon';

const checksum = suite('partial checksums');

function sum(b: Buffer, from: number, to: number, start = 0): number {
  let s = start;
  for (let i = from; i < to; i += 2) s += (b[i] << 8) | (i + 1 < to ? b[i + 1] : 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return s;
}

// An IPv4 packet of protocol `proto` (6 TCP, 17 UDP) with `payload` bytes, its transport
// checksum right, and the pseudo-header's sum (what an offloading host leaves in the field).
function packet(proto: 6 | 17, payload: number): { p: Buffer; right: number; partial: number } {
  const l4 = proto === 6 ? 20 : 8;
  const p = Buffer.alloc(20 + l4 + payload);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = proto;
  Buffer.from([10, 1, 0, 2, 10, 2, 0, 2]).copy(p, 12);
  p.writeUInt16BE(~sum(p, 0, 20) & 0xffff, 10);
  p.writeUInt16BE(40000, 20);
  p.writeUInt16BE(5001, 22);
  if (proto === 6) p[32] = 0x50; else p.writeUInt16BE(8 + payload, 24);
  for (let i = 20 + l4; i < p.length; i++) p[i] = (i * 7 + 3) & 0xff;
  const field = proto === 6 ? 36 : 26;
  const pseudo = sum(p, 12, 20, proto + (p.length - 20));
  const right = ~sum(p, 20, p.length, pseudo) & 0xffff;
  p.writeUInt16BE(pseudo, field);
  return { p, right: proto === 17 && right === 0 ? 0xffff : right, partial: pseudo };
}

checksum('a partial TCP or UDP checksum is completed, odd lengths too; right, wrong and absent ones stay', () => {
  const complete = addon().completeChecksum;
  for (const proto of [6, 17] as const) {
    for (const payload of [0, 1, 1400, 1401]) {
      const { p, right } = packet(proto, payload);
      const field = proto === 6 ? 36 : 26;
      assert.ok(complete(p), `${proto}/${payload}: completed`);
      assert.is(p.readUInt16BE(field), right, `${proto}/${payload}: the checksum the host would have computed`);
      assert.not.ok(complete(p), `${proto}/${payload}: a right checksum is left alone`);
      const wrong = packet(proto, payload).p;
      wrong.writeUInt16BE(0x1234, field);
      assert.not.ok(complete(wrong), 'a wrong checksum is forwarded as it is');
      assert.is(wrong.readUInt16BE(field), 0x1234);
    }
  }
  const none = packet(17, 100).p;
  none.writeUInt16BE(0, 26);
  assert.not.ok(complete(none), 'UDP without a checksum keeps none');
  const fragment = packet(6, 100).p;
  fragment.writeUInt16BE(0x2000, 6);
  assert.not.ok(complete(fragment), 'a fragment is not a whole segment');
  assert.not.ok(complete(packet(6, 100).p.subarray(0, 50)), 'a packet cut short is left alone');
});

checksum.run();
