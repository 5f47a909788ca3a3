import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Encoder, packetId, parseRepair } from '../../src/fec/codec';
import type { ParsedRepair } from '../../src/native/addon';
import { makeStream } from '../helpers/packets';

const encoder = suite('layered-interleaving encoder');

function parsed(b: Buffer): ParsedRepair {
  const r = parseRepair(b);
  if ('error' in r) throw new Error(`repair does not parse: ${r.error}`);
  return r;
}

encoder('each packet is covered once per layer, by the bin x mod i, in repairs that name it by content', () => {
  const packets = makeStream(1, 2000);
  const e = new Encoder({ r: 8, interleaves: [1, 10, 100], flushTimeoutMs: 0, epoch: 5 });
  const repairs = [...e.encode(packets, 0).repairs, ...e.flush()].map(parsed);
  const cover = packets.map(() => [0, 0, 0]);
  for (const r of repairs) {
    assert.is(r.epoch, 5);
    assert.ok(r.bin < r.interleave);
    assert.is(r.interleave, [1, 10, 100][r.layer]);
    assert.ok(r.count >= 1 && r.count <= 8);
    assert.is(r.xorLength, Math.max(...r.entries.map((x) => x.length)));
    r.entries.forEach((entry, k) => {
      const seq = r.baseSeq + k * r.interleave;
      assert.is(seq % r.interleave, r.bin, 'packet x goes into bin x mod i');
      const id = packetId(packets[seq]);
      assert.is(entry.hash, id.hash);
      assert.is(entry.length, packets[seq].length);
      assert.is(entry.ttl, id.ttl);
      cover[seq][r.layer]++;
    });
  }
  cover.forEach((c, seq) => assert.equal(c, [1, 1, 1], `packet ${seq}`));
  // c repairs per r packets in the long run: (8,3) sends 3 repairs per 8 data packets.
  assert.ok(Math.abs(repairs.length - (2000 * 3) / 8) <= 111, `${repairs.length} repairs`);
});

encoder('staggered start spreads a layer\'s repairs evenly instead of firing all its bins together', () => {
  const r = 8;
  for (const interleave of [10, 100]) {
    const e = new Encoder({ r, interleaves: [interleave], flushTimeoutMs: 0 });
    const firedAt: number[] = [];
    makeStream(2, 30 * r * interleave, 40, 60).forEach((p, seq) => {
      if (e.encode([p], 0).repairs.length) firedAt.push(seq);
    });
    const bins = new Map<number, number>();
    const firstFire: number[] = [];
    // Bin b's first repair covers (b mod r) packets (r when that is 0).
    for (const seq of firedAt) {
      const b = seq % interleave;
      if (!bins.has(b)) {
        bins.set(b, seq);
        firstFire.push(seq);
        const count = Math.floor((seq - b) / interleave) + 1;
        assert.is(count, b % r || r, `layer ${interleave} bin ${b} first fires at ${count} packets`);
      }
    }
    assert.is(bins.size, interleave);
    // In steady state no window of r packets holds more than a few of the layer's repairs;
    // without staggering all `interleave` bins fire within `interleave` consecutive packets.
    const steady = firedAt.filter((s) => s >= 2 * r * interleave);
    let worst = 0;
    for (let i = 0, j = 0; i < steady.length; i++) {
      while (steady[i] - steady[j] >= r) j++;
      worst = Math.max(worst, i - j + 1);
    }
    assert.ok(worst <= 3, `layer ${interleave}: ${worst} repairs within ${r} packets`);
  }
});

encoder('the flush timeout, times the layer\'s interleave, fires partly filled bins, and not before it has passed', () => {
  const e = new Encoder({ r: 8, interleaves: [1, 10], flushTimeoutMs: 2 });
  const packets = makeStream(3, 3);
  const t0 = 1_000_000_000;
  // Staggered start: bin 1 of layer 10 fires at its first packet; the others wait.
  const fired = e.encode(packets, t0).repairs.map(parsed);
  assert.equal(fired.map((r) => [r.layer, r.bin, r.count]), [[1, 1, 1]]);
  assert.is(e.stats().nextDeadlineNs, t0 + 2e6);
  assert.is(e.poll(t0 + 1e6).length, 0, 'not yet due');
  // Layer 1 holds all three packets in one bin, due at 2 ms...
  assert.equal(e.poll(t0 + 2e6).map(parsed).map((r) => [r.layer, r.bin, r.count]), [[0, 0, 3]]);
  assert.is(e.stats().nextDeadlineNs, t0 + 20e6, '...layer 10\'s bins at 10 x 2 ms');
  assert.is(e.poll(t0 + 19e6).length, 0);
  // Layer 10: packets 0 and 2 in bins 0 and 2.
  assert.equal(e.poll(t0 + 20e6).map(parsed).map((r) => [r.layer, r.bin, r.count]).sort(), [[1, 0, 1], [1, 2, 1]]);
  assert.is(e.stats().repairsFlushed, 3);
  assert.is(e.stats().nextDeadlineNs, null);
  assert.is(e.poll(t0 + 100e6).length, 0, 'nothing left to flush');
});

encoder('with the default flush timeout, the overhead stays c / r at any steady rate from 1,000 packets/s up', () => {
  for (const pps of [1000, 5000, 50_000, 500_000]) {
    const e = new Encoder();
    const packets = makeStream(7, 8000);
    let repairs = 0;
    packets.forEach((p, k) => {
      const t = 1e9 + Math.round((k * 1e9) / pps);
      repairs += e.poll(t).length + e.encode([p], t).repairs.length;
    });
    const perPacket = repairs / packets.length;
    assert.ok(perPacket <= 1.1 * 3 / 8, `${pps} packets/s: ${perPacket.toFixed(3)} repairs per packet, c/r = 0.375`);
  }
});

encoder('flushCovering fires, in every layer, the bins that hold the packets named, and nothing else', () => {
  const e = new Encoder({ r: 8, interleaves: [1, 10, 100], flushTimeoutMs: 0 });
  const t0 = 1e9;
  // 38 packets: layer 1's one bin fired at 8, 16, 24 and 32 and holds 32..37; layer 10's bins
  // 6 and 7 hold 36 and 37 (among others); layer 100's bins 36 and 37 hold one each.
  const { seqs } = e.encode(makeStream(11, 38), t0);
  const before = e.stats().repairs;
  const flushed = e.flushCovering([seqs[37], seqs[36]]).map(parsed);
  const covers = (r: ParsedRepair, q: number) => (q - r.baseSeq) % r.interleave === 0 && (q - r.baseSeq) / r.interleave < r.count && q >= r.baseSeq;
  for (const q of [36, 37]) {
    for (const layer of [0, 1, 2]) {
      assert.is(flushed.filter((r) => r.layer === layer && covers(r, q)).length, 1, `packet ${q}: one repair of layer ${layer}`);
    }
  }
  // Layer 1's bin holds both; layers 10 and 100 each hold them in two bins: five repairs.
  assert.is(flushed.length, 5);
  assert.is(e.stats().repairs, before + 5);
  assert.is(e.stats().repairsCovering, 5);
  assert.is(e.flushCovering([seqs[37], seqs[36]]).length, 0, 'their bins are empty now');
  assert.is(e.flushCovering([seqs[37] + 1, 4_000_000_000]).length, 0, 'a packet not yet added, or long covered, names no bin');
  // Packet 0 left layer 1 long ago, but waits in layer 10's bin 0 (with 10, 20, 30) and layer
  // 100's bin 0: named, those two fire.
  const old = e.flushCovering([seqs[0]]).map(parsed);
  assert.equal(old.map((r) => [r.layer, r.bin, r.count]).sort(), [[1, 0, 4], [2, 0, 1]]);
  assert.throws(() => e.flushCovering([-1]), /sequence number/);
});

// Network-sync's idle flush, as the engine runs it: writes of `size` packets every `gapNs`; once
// each is on the wire, flushCovering() names every packet still short of a repair of some
// layer (the tracker's waiting list), and the flush timeout fires what is due. Returns the
// repairs per data packet while the writes went on, the share of writes covered by the flush that followed them, and the
// longest wait (ns) for the last repair of a write.
function idleFlushRun(o: { budgetPerS?: number; writes: number; size: number; gapNs: number }) {
  const e = new Encoder({ budgetPerS: o.budgetPerS });
  const packets = makeStream(13, o.writes * o.size);
  const layers = [0, 1, 2];
  const covered = new Map<number, Set<number>>(); // seq -> layers whose repair holds it
  const sentAt = new Map<number, number>();       // seq -> when its write went out
  let repairs = 0;
  let atOnce = 0;
  let longest = 0;
  const take = (list: Buffer[], t: number) => {
    repairs += list.length;
    for (const r of list.map(parsed)) {
      for (let k = 0; k < r.count; k++) {
        const q = r.baseSeq + k * r.interleave;
        const set = covered.get(q);
        if (!set) continue;
        set.add(r.layer);
        if (set.size === layers.length) {
          longest = Math.max(longest, t - sentAt.get(q)!);
          covered.delete(q);
        }
      }
    }
  };
  let t = 1e9;
  for (let w = 0; w < o.writes; w++) {
    take(e.poll(t), t);
    const { seqs, repairs: fired } = e.encode(packets.slice(w * o.size, (w + 1) * o.size), t);
    for (const q of seqs) { covered.set(q, new Set()); sentAt.set(q, t); }
    take(fired, t);
    const quiet = t + 50_000;
    take(e.poll(quiet), quiet);
    take(e.flushCovering([...covered.keys()], quiet), quiet);
    if (seqs.every((q) => !covered.has(q))) atOnce++;
    t += o.gapNs;
  }
  const steady = { repairs, longest };
  take(e.poll(t + 2e9), t + 2e9); // the widest layer's timeout (1 s) covers what is left
  assert.is(covered.size, 0, 'every packet got a repair of every layer in the end');
  return { perPacket: steady.repairs / packets.length, atOnce: atOnce / o.writes, longestNs: steady.longest, deferred: e.stats().coveringDeferred };
}

encoder('the idle flush stays within its budget: 1.1 x c / r per data packet plus the repairs a second it may add', () => {
  // The bucket starts full (64, native/fec/encoder.cc), and filling and timeouts may leave it in
  // debt at the end (at most one repair per bin: 111).
  const slack = 64 + 111;
  for (const writesPerS of [333, 1000, 3333, 10_000]) {
    const writes = 3000;
    const pps = writesPerS * 3;
    for (const budgetPerS of [0, 2000]) {
      const r = idleFlushRun({ budgetPerS, writes, size: 3, gapNs: 1e9 / writesPerS });
      const bound = 1.1 * 3 / 8 + budgetPerS / pps + slack / (writes * 3);
      assert.ok(r.perPacket <= bound, `${pps} packets/s, budget ${budgetPerS}/s: ${r.perPacket.toFixed(3)} repairs per packet, bound ${bound.toFixed(3)}`);
      if (budgetPerS === 0) assert.ok(r.deferred > 0, `${pps} packets/s: the budget held some flushes back`);
    }
  }
  // Unlimited, the same writes cost several times c / r: what the budget is for.
  const free = idleFlushRun({ budgetPerS: 1e7, writes: 3000, size: 3, gapNs: 1e9 / 1000 });
  assert.ok(free.perPacket > 1, `unbudgeted: ${free.perPacket.toFixed(3)} repairs per packet`);
  assert.is(free.atOnce, 1, 'unbudgeted, every write is covered by the flush that follows it');
});

encoder('sparse writes within the budget are covered by the flush that follows them', () => {
  // 200 writes of 4 KB a second (maelstrom bench feedback's load): 600 packets/s.
  const r = idleFlushRun({ writes: 2000, size: 3, gapNs: 5e6 });
  assert.ok(r.atOnce >= 0.99, `${(r.atOnce * 100).toFixed(1)}% of writes covered at once`);
  // With no budget beyond 1.1 x c / r they wait for their bins to fill or time out, but not
  // forever: the widest layer's timeout (100 x 10 ms) bounds it.
  const tight = idleFlushRun({ budgetPerS: 0, writes: 2000, size: 3, gapNs: 5e6 });
  assert.ok(tight.atOnce < 0.5, `budget 0: ${(tight.atOnce * 100).toFixed(1)}% covered at once`);
  assert.ok(tight.longestNs <= 1e9 + 5e6, `budget 0: the longest wait ${(tight.longestNs / 1e6).toFixed(1)} ms`);
});

encoder('the flush budget is checked', () => {
  assert.throws(() => new Encoder({ budgetPerS: -1 }), /flush budget/);
  assert.throws(() => new Encoder({ budgetRatio: 0.5 }), /flush budget ratio/);
});

encoder('packets longer than the maximum or empty are refused and counted, not covered', () => {
  const e = new Encoder({ maxPacketSize: 100, flushTimeoutMs: 0 });
  const { seqs } = e.encode([Buffer.alloc(50, 1), Buffer.alloc(101, 2), Buffer.alloc(0), Buffer.alloc(100, 3)], 0);
  assert.equal(seqs, [0, -1, -1, 1]);
  assert.is(e.stats().oversize, 2);
  assert.is(e.stats().packets, 2);
});

encoder('bad configuration is refused with a message that names the limit', () => {
  assert.throws(() => new Encoder({ r: 0 }), /r must be an integer from 1 to 255/);
  assert.throws(() => new Encoder({ r: 256 }), /r must be an integer from 1 to 255/);
  assert.throws(() => new Encoder({ c: 2, interleaves: [1, 10, 100] }), /--c 2 needs 2 interleaves/);
  assert.throws(() => new Encoder({ interleaves: [1, 10, 10] }), /interleaves must differ/);
  assert.throws(() => new Encoder({ interleaves: [0] }), /interleave 1 must be an integer/);
  assert.throws(() => new Encoder({ interleaves: [] }), /give 1 to 16 interleaves/);
  assert.throws(() => new Encoder({ maxPacketSize: 20000 }), /max packet size/);
  assert.throws(() => new Encoder({ flushTimeoutMs: -1 }), /flush timeout/);
  assert.throws(() => new Encoder().encode(['x' as unknown as Buffer]), /array of Buffers/);
});

encoder.run();
