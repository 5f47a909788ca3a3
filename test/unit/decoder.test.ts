import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder, parseRepair } from '../../src/fec/codec';
import { closedFormBound } from '../../src/model/redundancy';
import { addon } from '../../src/native/addon';
import { decoderConfig, nativeEncoderConfig, codecConfig } from '../../src/fec/config';
import { deliver, encodeStream } from '../helpers/channel';
import { Rng, makeStream } from '../helpers/packets';

const decoder = suite('decoder: recovery over random streams and losses');

decoder('iid loss: outputs are byte-identical originals, none arrived or repeated, nearly all losses rebuilt', () => {
  for (const [seed, p] of [[21, 0.01], [22, 0.03], [23, 0.1]] as const) {
    const packets = makeStream(seed, 6000);
    const { wire } = encodeStream(packets);
    const rng = new Rng(seed * 31);
    const o = deliver(packets, wire, () => rng.next() < p);
    assert.is(o.wrong, 0, `seed ${seed}: wrong packets out`);
    assert.is(o.repeated, 0, `seed ${seed}: packets output twice or after arriving`);
    assert.ok(o.lost.size > 0);
    const unrecovered = (o.lost.size - o.rebuilt.size) / o.lost.size;
    // At 10% loss the bound is about 0.26; at 1% it is 4.6e-4 and nearly everything comes back.
    assert.ok(unrecovered <= closedFormBound(8, 3, p) + 0.02, `p=${p}: ${unrecovered} unrecovered`);
    assert.is(o.decoder.stats().recovered, o.rebuilt.size);
    assert.is(o.decoder.stats().verifyFailed, 0);
  }
});

decoder('a burst of up to 100 lost data packets is fully rebuilt with interleaves 1,10,100 at (8,3)', () => {
  const packets = makeStream(31, 3000);
  const { wire } = encodeStream(packets, { r: 8, interleaves: [1, 10, 100] });
  const rng = new Rng(32);
  for (const length of [1, 2, 7, 8, 9, 10, 11, 50, 99, 100]) {
    for (let trial = 0; trial < 3; trial++) {
      const start = rng.int(900, 1800);
      const o = deliver(packets, wire, (t) => t.kind === 'data' && t.index >= start && t.index < start + length);
      assert.is(o.lost.size, length);
      assert.is(o.rebuilt.size, length, `burst of ${length} at ${start}: ${o.rebuilt.size} rebuilt`);
      assert.is(o.wrong + o.repeated, 0);
    }
  }
});

decoder('bursty (Gilbert-Elliott) loss of data and repairs never yields a wrong or repeated packet', () => {
  const packets = makeStream(41, 8000);
  const { wire } = encodeStream(packets);
  const rng = new Rng(42);
  let bad = false;
  const o = deliver(packets, wire, () => {
    bad = bad ? rng.next() >= 1 / 15 : rng.next() < 0.02 / 15 / 0.98;
    return bad;
  });
  assert.ok(o.lost.size > 20);
  assert.is(o.wrong, 0);
  assert.is(o.repeated, 0);
  assert.ok(o.rebuilt.size > 0);
});

decoder('cascading: a repair missing two packets waits, and is peeled when another layer rebuilds one', () => {
  const packets = makeStream(51, 400, 60, 200);
  const { wire } = encodeStream(packets, { r: 4, interleaves: [1, 4] });
  // Lose packets 40 and 41: the layer-1 repair covering 40..43 misses both; layer 4 puts them
  // in different bins, so each comes back from its layer-4 repair, and the layer-1 repair
  // is then peeled without anything left to rebuild.
  const o = deliver(packets, wire, (t) => t.kind === 'data' && (t.index === 40 || t.index === 41));
  assert.equal([...o.rebuilt].sort((a, b) => a - b), [40, 41]);
  assert.is(o.decoder.stats().pending, 0, 'the waiting repair was peeled and freed');
  // Lose 40 and 41 and the layer-4 repair covering 41: 41 can only come back from the layer-1
  // repair, once 40 has been rebuilt from its own layer-4 repair and peeled out of it.
  const covering41 = wire.find((t) => {
    if (t.kind !== 'repair') return false;
    const r = parseRepair(t.bytes);
    return !('error' in r) && r.layer === 1 && r.entries.some((_, k) => r.baseSeq + k * r.interleave === 41);
  });
  assert.ok(covering41);
  const o2 = deliver(packets, wire, (t) => t === covering41 || (t.kind === 'data' && (t.index === 40 || t.index === 41)));
  assert.equal([...o2.rebuilt].sort((a, b) => a - b), [40, 41]);
  assert.is(o2.wrong + o2.repeated, 0);
});

decoder('duplicates of data and repairs are ignored and counted', () => {
  const packets = makeStream(61, 500);
  const { wire } = encodeStream(packets);
  const d = new Decoder();
  let out = 0;
  for (const t of wire) {
    if (t.kind === 'data' && t.index === 100) continue; // lost once
    const call = (b: Buffer) => (t.kind === 'data' ? d.receiveData([b, b]) : d.receiveRepairs([b, b]));
    out += call(t.bytes).length;
  }
  assert.is(out, 1, 'the lost packet is output exactly once');
  assert.is(d.stats().duplicates, 499);
  assert.is(d.stats().recovered, 1);
});

decoder('measured unrecovered fraction at 1% iid loss is at or below the closed-form bound', () => {
  const config = codecConfig({ r: 8, interleaves: [1, 10, 100] });
  const sim = addon().simulate({
    encoder: { ...nativeEncoderConfig(config), flushTimeoutNs: 0 },
    decoder: decoderConfig({ r: 8, interleaves: [1, 10, 100] }),
    packets: 1_000_000, minLength: 40, maxLength: 1500, loss: 0.01, burstLength: 1,
    loseRepairs: true, seed: 2026, packetIntervalNs: 1000,
  });
  assert.is(sim.wrongOutput, 0);
  assert.is(sim.repeatedOutput, 0);
  assert.ok(sim.dataLost > 9000 && sim.dataLost < 11000, `${sim.dataLost} lost of 1e6 at 1%`);
  const measured = sim.unrecovered / sim.dataLost;
  assert.ok(measured <= closedFormBound(8, 3, 0.01), `measured ${measured} above bound ${closedFormBound(8, 3, 0.01)}`);
});

decoder.run();
