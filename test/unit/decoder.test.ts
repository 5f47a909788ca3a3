import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Decoder, Encoder, packetId, parseRepair } from '../../src/fec/codec';
import { closedFormBound } from '../../src/model/redundancy';
import { addon } from '../../src/native/addon';
import { decoderConfig, nativeEncoderConfig, codecConfig } from '../../src/fec/config';
import { deliver, encodeStream } from '../helpers/channel';
import { Rng, makePacket, makeStream } from '../helpers/packets';

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

// Two WAN queues, two threads: a repair can be handled before the packets it covers, which arrive
// a little later by the other queue. Every repair here overtakes the 4 transmissions before it.
function overtaken(graceUs: number) {
  const packets = makeStream(61, 4000);
  const { wire } = encodeStream(packets);
  const order = wire.map((t, i) => ({ t, at: t.kind === 'repair' ? i - 4.5 : i })).sort((x, y) => x.at - y.at).map((x) => x.t);
  const rng = new Rng(62);
  // One transmission every 10 us.
  return deliver(packets, order, (t) => t.kind === 'data' && rng.next() < 0.01, { graceUs }, 10_000);
}

decoder('a grace keeps repairs that overtake their packets from rebuilding them; what is lost is rebuilt after it', () => {
  const eager = overtaken(0);
  assert.ok(eager.early > 100, `without a grace, ${eager.early} late packets were rebuilt before they came`);
  const patient = overtaken(500);
  assert.is(patient.wrong, 0);
  assert.is(patient.early, 0, 'no packet rebuilt that was only late');
  assert.ok(patient.lost.size > 10);
  assert.ok(patient.rebuilt.size >= patient.lost.size - 1, `${patient.rebuilt.size} of ${patient.lost.size} lost packets rebuilt`);
  const stats = patient.decoder.stats();
  assert.ok(stats.held > 0 && stats.heldArrived > 0, 'repairs were held, and their packets came meanwhile');
  assert.is(stats.verifyFailed, 0);
  // The loss sample (what --auto sizes c from) counts as lost what never came, not what was late.
  const eagerLoss = eager.decoder.stats().lossMissing;
  assert.ok(eagerLoss > eager.lost.size + 100, `without a grace, ${eagerLoss} counted lost for ${eager.lost.size} lost`);
  assert.is(stats.lossMissing, patient.lost.size, 'with a grace, the packets lost and no others');
  assert.ok(stats.lossBursts >= 1 && stats.lossBursts <= stats.lossMissing);
});

decoder.run();

const edges = suite('decoder: sequence wrap, restarts, epochs, unusual packets');

edges('the 32-bit sequence number wraps: bins stay interleave apart and losses are rebuilt', () => {
  const packets = makeStream(91, 3000);
  const firstSeq = 2 ** 32 - 1234;
  const { wire } = encodeStream(packets, { r: 8, interleaves: [1, 10, 100], firstSeq });
  for (const t of wire) {
    if (t.kind !== 'repair') continue;
    const r = parseRepair(t.bytes);
    if ('error' in r) throw new Error(r.error);
    r.entries.forEach((e, k) => {
      const index = ((r.baseSeq + k * r.interleave) - firstSeq + 2 ** 32) % 2 ** 32;
      assert.is(e.hash, packetId(packets[index]).hash, `entry ${k} of a repair at ${r.baseSeq}`);
    });
  }
  const rng = new Rng(92);
  const o = deliver(packets, wire, (t) => (t.kind === 'data' && t.index >= 1200 && t.index < 1260) || rng.next() < 0.005);
  assert.is(o.rebuilt.size, o.lost.size, `${o.rebuilt.size} of ${o.lost.size} rebuilt across the wrap`);
  assert.is(o.wrong + o.repeated, 0);
});

edges('a restarted sender (sequence from 0 again, same or new epoch) is followed after a few repairs', () => {
  for (const epochs of [[0, 0], [4, 5]]) {
    const d = new Decoder();
    const first = makeStream(93, 20_000, 60, 120);
    const a = new Encoder({ flushTimeoutMs: 0, epoch: epochs[0], firstSeq: 5_000_000 });
    d.receiveData(first);
    d.receiveRepairs(a.encode(first, 0).repairs);
    const second = makeStream(94, 3000, 60, 120).map((p) => { p[30] ^= 0x5a; return p; });
    const b = new Encoder({ flushTimeoutMs: 0, epoch: epochs[1] });
    const { repairs } = b.encode(second, 0);
    // Lose one packet in every 100 after the first 500 (by then the decoder has followed).
    const out = [];
    let r = 0;
    for (let i = 0; i < second.length; i++) {
      if (!(i > 500 && i % 100 === 0)) out.push(...d.receiveData([second[i]]));
      // Deliver the repairs fired up to packet i: their base sequence tells which.
      while (r < repairs.length) {
        const p = parseRepair(repairs[r]);
        if ('error' in p || p.baseSeq + (p.count - 1) * p.interleave > i) break;
        out.push(...d.receiveRepairs([repairs[r++]]));
      }
    }
    out.push(...d.receiveRepairs(repairs.slice(r)));
    const lostBack = second.filter((_, i) => i > 500 && i % 100 === 0 && i < 2700);
    for (const p of lostBack) assert.ok(out.some((q) => q.equals(p)), `epochs ${epochs}: packet not rebuilt after restart`);
    assert.ok(d.stats().resyncs >= 1, `epochs ${epochs}: no resync counted`);
  }
});

edges('epochs: the one before the newest stays valid even when numbers skip; older ones are stale', () => {
  const packets = makeStream(95, 64, 60, 100);
  const d = new Decoder({ r: 8, interleaves: [1] });
  const repairsAt = (epoch: number, firstSeq: number) =>
    new Encoder({ r: 8, interleaves: [1], flushTimeoutMs: 0, epoch, firstSeq }).encode(packets.slice(0, 8), 0).repairs;
  d.receiveData(packets.slice(0, 8));
  d.receiveRepairs(repairsAt(3, 0));
  d.receiveRepairs(repairsAt(7, 0)); // a retune that skipped numbers
  d.receiveRepairs(repairsAt(3, 0)); // late repair of the previous epoch: accepted
  assert.is(d.stats().staleEpoch, 0);
  d.receiveRepairs(repairsAt(2, 0));
  assert.is(d.stats().staleEpoch, 1);
  assert.is(d.stats().epoch, 7);
});

edges('a restarted sender whose epochs begin again below ours is followed after 32 repairs', () => {
  const packets = makeStream(97, 400, 60, 100);
  const d = new Decoder({ r: 8, interleaves: [1] });
  const repairs = (epoch: number, from: number, n: number) =>
    new Encoder({ r: 8, interleaves: [1], flushTimeoutMs: 0, epoch, firstSeq: from }).encode(packets.slice(from, from + n), 0).repairs;
  d.receiveData(packets.slice(0, 8));
  d.receiveRepairs(repairs(5, 0, 8));
  d.receiveRepairs(repairs(6, 8, 8)); // two retunes: epochs 5 and 6 are valid
  const restarted = repairs(0, 16, 8 * 40);
  d.receiveRepairs(restarted.slice(0, 31));
  assert.is(d.stats().epoch, 6, 'a few stale repairs are not a restart');
  d.receiveRepairs(restarted.slice(31, 32));
  assert.is(d.stats().epoch, 0, 'the 32nd in a row is');
  assert.is(d.stats().epochChanges, 2);
  // From then on its repairs decode: lose one packet of the next bin.
  const next = packets.slice(16 + 8 * 32, 16 + 8 * 33);
  d.receiveData(next.slice(1));
  const out = d.receiveRepairs(restarted.slice(32, 33));
  assert.is(out.length, 1);
  assert.ok(out[0].equals(next[0]));
});

edges('the lowest layer samples the WAN loss: packets covered, missing, and runs of consecutive losses', () => {
  const packets = makeStream(98, 2000, 60, 200);
  const { wire } = encodeStream(packets, { r: 8, interleaves: [1, 10], flushTimeoutMs: 0 });
  // Lost: 100, 101, 102 (one burst), 500 (another), 900 and 901 (a third).
  const lost = new Set([100, 101, 102, 500, 900, 901]);
  const d = new Decoder({ r: 8, interleaves: [1, 10] });
  for (const t of wire) {
    if (t.kind === 'data') { if (!lost.has(t.index)) d.receiveData([packets[t.index]]); } else d.receiveRepairs([t.bytes]);
  }
  const s = d.stats();
  assert.is(s.lossSampled, 2000);
  assert.is(s.lossMissing, 6);
  assert.is(s.lossBursts, 3);
});

edges('IPv4 with a wrong header checksum is covered as opaque bytes and rebuilt exactly', () => {
  const rng = new Rng(96);
  const packets = Array.from({ length: 400 }, (_, i) => makePacket(rng, i, rng.int(60, 400), 0));
  packets[50].writeUInt16BE(0, 10); // checksum left to an offload that never ran
  packets[51].writeUInt16BE(0xbeef, 10);
  assert.is(packetId(packets[50]).ttl, 0, 'classified opaque: no mutable fields');
  const { wire } = encodeStream(packets, { r: 8, interleaves: [1, 10] });
  const o = deliver(packets, wire, (t) => t.kind === 'data' && (t.index === 50 || t.index === 51 || t.index === 52));
  assert.is(o.rebuilt.size, 3);
  assert.is(o.wrong + o.repeated, 0);
});

edges.run();
