import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder, Encoder, parseRepair } from '../../src/fec/codec';
import { addon } from '../../src/native/addon';
import { Rng, makeStream } from '../helpers/packets';
import { encodeStream } from '../helpers/channel';

const malformed = suite('malformed repair packets are rejected and counted');

// A window holding packets 0..199 except 100, and a valid repair that would rebuild 100.
function setup() {
  const packets = makeStream(71, 200, 80, 300);
  const e = new Encoder({ r: 8, interleaves: [1], flushTimeoutMs: 0, epoch: 10 });
  const repairs = e.encode(packets, 0).repairs;
  const d = new Decoder({ r: 8, interleaves: [1], window: 512 });
  d.receiveData(packets.filter((_, i) => i !== 100));
  // A first repair, with nothing missing, tells the decoder the epoch and sequence numbers.
  d.receiveRepairs([repairs[0]]);
  const valid = repairs.find((r) => {
    const p = parseRepair(r);
    return !('error' in p) && p.baseSeq <= 100 && 100 < p.baseSeq + p.count;
  })!;
  return { packets, d, valid };
}

function expectRejected(name: string, mutate: (b: Buffer) => Buffer, counter: string) {
  malformed(name, () => {
    const { d, valid } = setup();
    const bad = mutate(Buffer.from(valid));
    assert.equal(d.receiveRepairs([bad]), [], 'no packet out');
    const s = d.stats();
    const byName = s.malformedBy as Record<string, number>;
    const count = counter in byName ? byName[counter] : (s as unknown as Record<string, number>)[counter];
    assert.is(count, 1, `${counter} counted`);
    assert.is(s.recovered, 0);
    // The decoder still works: the valid repair rebuilds the packet afterwards.
    assert.is(d.receiveRepairs([valid]).length, 1);
  });
}

expectRejected('truncated below the header', (b) => b.subarray(0, 10), 'truncated');
expectRejected('truncated inside the payload', (b) => b.subarray(0, b.length - 1), 'truncated');
expectRejected('trailing bytes', (b) => Buffer.concat([b, Buffer.from([0])]), 'bad_length');
expectRejected('wrong magic', (b) => { b[0] ^= 0xff; return b; }, 'bad_magic');
expectRejected('unknown version', (b) => { b[2] = 2; return b; }, 'bad_version');
expectRejected('unknown flags', (b) => { b[3] = 1; return b; }, 'bad_flags');
expectRejected('zero count', (b) => { b[13] = 0; return b; }, 'bad_count');
expectRejected('count larger than the packet holds', (b) => { b[13] = 200; return b; }, 'truncated');
expectRejected('XOR length larger than the packet', (b) => { b.writeUInt16BE(b.readUInt16BE(18) + 1, 18); return b; }, 'truncated');
expectRejected('XOR length over the maximum packet size', (b) => { b.writeUInt16BE(9000, 18); return b; }, 'bad_length');
expectRejected('bin not below the interleave', (b) => { b.writeUInt16BE(1, 16); return b; }, 'bad_layout');
expectRejected('layer out of range', (b) => { b[12] = 16; return b; }, 'bad_layout');
expectRejected('entry length over the XOR length', (b) => { b.writeUInt16BE(0xffff, 24 + 8); return b; }, 'bad_entry');
expectRejected('recipe TTL altered (recipe check)', (b) => { b[24 + 10] ^= 1; return b; }, 'bad_check');
expectRejected('recipe pointing outside the window', (b) => { b.writeUInt32BE((b.readUInt32BE(8) - 5000) >>> 0, 8); return reseal(b); }, 'outOfWindow');
expectRejected('stale epoch', (b) => { b.writeUInt32BE(8, 4); return reseal(b); }, 'staleEpoch');

// The recipe check covers bytes 0..19 and the entries; tests that forge header fields on
// purpose (an attacker can too) recompute it, so the decoder's later checks are what reject.
function reseal(b: Buffer): Buffer {
  addon().sealRepair(b);
  return b;
}

malformed('a corrupted payload never yields a wrong packet: the rebuilt bytes fail their hash', () => {
  const { d, valid } = setup();
  const bad = Buffer.from(valid);
  bad[bad.length - 5] ^= 0x10;
  assert.equal(d.receiveRepairs([bad]), []);
  assert.is(d.stats().verifyFailed, 1);
});

malformed('random garbage and mutated repairs: never a crash, never a packet out', () => {
  const packets = makeStream(81, 1000);
  const { wire } = encodeStream(packets);
  const repairs = wire.filter((t) => t.kind === 'repair').map((t) => t.bytes);
  const d = new Decoder();
  d.receiveData(packets.slice(0, 600));
  const rng = new Rng(82);
  let out = 0;
  for (let i = 0; i < 5000; i++) {
    let b: Buffer;
    if (i % 2) {
      b = Buffer.alloc(rng.int(0, 2000));
      for (let k = 0; k < b.length; k++) b[k] = rng.int(0, 255);
      if (b.length > 3 && i % 4 === 1) { b[0] = 0x4d; b[1] = 0x4c; b[2] = 1; b[3] = 0; }
    } else {
      b = Buffer.from(repairs[rng.int(0, repairs.length - 1)]);
      for (let k = rng.int(1, 4); k > 0; k--) b[rng.int(0, b.length - 1)] ^= rng.int(1, 255);
    }
    out += d.receiveRepairs([b]).length;
  }
  assert.is(out, 0);
  assert.ok(d.stats().malformed > 2500);
});

malformed.run();
