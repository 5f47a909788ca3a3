// The gateway's network-sync tracker, driven packet by packet: flows and offsets, safety only
// once the data frame and one repair of every layer have completed, retransmissions, ACKs past
// lost repairs, feedback pacing, and the bounded flow table. A property test feeds it the real
// encoder's repairs in random completion order and holds it against the independent audit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addon } from '../../src/native/addon';
import type { NativeSyncTracker, RepairCoverage } from '../../src/native/addon';
import { safePrefixes, safeSince } from '../../src/feedback/audit';
import { flowId } from '../../src/feedback/format';
import { ipv4Checksum, Rng } from '../helpers/packets';

interface Seg {
  src?: string; dst?: string; sport?: number; dport?: number;
  seq: number; ack?: number; flags?: string; payload?: number;
}

const SYN = 'S', RST = 'R', ACK = 'A';

function tcp(s: Seg): Buffer {
  const payload = s.payload ?? 0;
  const b = Buffer.alloc(40 + payload);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[6] = 0x40;
  b[8] = 64;
  b[9] = 6;
  (s.src ?? '10.1.0.2').split('.').forEach((o, i) => { b[12 + i] = Number(o); });
  (s.dst ?? '10.2.0.2').split('.').forEach((o, i) => { b[16 + i] = Number(o); });
  b.writeUInt16BE(ipv4Checksum(b.subarray(0, 20)), 10);
  b.writeUInt16BE(s.sport ?? 40000, 20);
  b.writeUInt16BE(s.dport ?? 5000, 22);
  b.writeUInt32BE(s.seq >>> 0, 24);
  b.writeUInt32BE((s.ack ?? 0) >>> 0, 28);
  b[32] = 5 << 4;
  const f = s.flags ?? ACK;
  b[33] = (f.includes('F') ? 1 : 0) | (f.includes('S') ? 2 : 0) | (f.includes('R') ? 4 : 0) | (f.includes('A') ? 0x10 : 0);
  for (let i = 0; i < payload; i++) b[40 + i] = i & 0xff;
  return b;
}

// The reverse direction: a segment from the receiver acknowledging `ack`.
function ackFrom(ack: number, flags = ACK): Buffer {
  return tcp({ src: '10.2.0.2', dst: '10.1.0.2', sport: 5000, dport: 40000, seq: 1, ack, flags });
}

const FLOW = flowId({ senderAddress: '10.1.0.2', senderPort: 40000, receiverAddress: '10.2.0.2', receiverPort: 5000 });

// All c layers' repairs for one seq, each covering it alone.
function repairsFor(t: NativeSyncTracker, seq: number, layers: number, now: number, skip = -1): void {
  for (let layer = 0; layer < layers; layer++) if (layer !== skip) t.repairCompleted({ layer, count: 1, interleave: 1, baseSeq: seq }, now);
}

function safeOf(t: NativeSyncTracker, now: number): bigint | undefined {
  const due = t.poll(now).filter((e) => flowId(e) === FLOW);
  return due.length ? due[due.length - 1].safeOffset : undefined;
}

test('a segment is safe only when its frame and one repair of every layer have completed', () => {
  const t = new (addon().SyncTracker)({ layers: 3, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 999, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1000, payload: 1000 }), 1, 2);
  t.dataCompleted(1, 3);
  repairsFor(t, 1, 3, 4, 2);
  assert.is(safeOf(t, 5), undefined, 'two of three repairs are not enough');
  t.repairCompleted({ layer: 2, count: 1, interleave: 1, baseSeq: 1 }, 6);
  const due = t.poll(7);
  assert.is(due.length, 1);
  assert.is(due[0].safeOffset, 1000n);
  assert.is(due[0].sentOffset, 1000n);
  assert.is(due[0].repairsSent, 3);
  assert.is(due[0].repairsPerPacket, 3);
  assert.is(due[0].isnGuessed, false);
  assert.is(due[0].senderAddress, '10.1.0.2');
  assert.is(due[0].receiverPort, 5000);
  // Repairs first, data last: the same.
  t.sent(tcp({ seq: 2000, payload: 500 }), 2, 8);
  repairsFor(t, 2, 3, 9);
  assert.is(safeOf(t, 10), undefined, 'repairs without the data frame are not enough');
  t.dataCompleted(2, 11);
  assert.is(safeOf(t, 12), 1500n);
});

test('out-of-order completions: the safe offset waits for the earlier bytes', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  for (let i = 0; i < 3; i++) t.sent(tcp({ seq: 1 + i * 100, payload: 100 }), 1 + i, 2);
  for (const s of [3, 2]) { t.dataCompleted(s, 3); repairsFor(t, s, 1, 3); }
  assert.is(safeOf(t, 4), undefined);
  t.dataCompleted(1, 5);
  repairsFor(t, 1, 1, 5);
  assert.is(safeOf(t, 6), 300n, 'all three at once when the first completes');
});

test('partial safety: repairs completed for the newest bytes', () => {
  const t = new (addon().SyncTracker)({ layers: 3, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 100 }), 1, 2);
  t.dataCompleted(1, 3);
  repairsFor(t, 1, 3, 3);
  t.sent(tcp({ seq: 101, payload: 100 }), 2, 4);
  t.dataCompleted(2, 5);
  t.repairCompleted({ layer: 0, count: 1, interleave: 1, baseSeq: 2 }, 5);
  const due = t.poll(6);
  assert.is(due[0].safeOffset, 100n);
  assert.is(due[0].sentOffset, 200n);
  assert.is(due[0].repairsSent, 1, 'one of three repairs sent for the newest segment');
});

test('a retransmission that completes makes bytes safe that the original could not', () => {
  const t = new (addon().SyncTracker)({ layers: 2, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 100 }), 1, 2);
  t.sent(tcp({ seq: 101, payload: 100 }), 2, 2);
  t.repairLost({ layer: 1, count: 1, interleave: 1, baseSeq: 1 });
  t.dataCompleted(1, 3);
  t.repairCompleted({ layer: 0, count: 1, interleave: 1, baseSeq: 1 }, 3);
  for (const s of [2]) { t.dataCompleted(s, 3); repairsFor(t, s, 2, 3); }
  assert.is(safeOf(t, 4), undefined, 'the first segment lost a repair');
  t.sent(tcp({ seq: 1, payload: 100 }), 3, 5); // TCP retransmits it
  t.dataCompleted(3, 6);
  repairsFor(t, 3, 2, 6);
  assert.is(safeOf(t, 7), 200n, 'the retransmission covers the first segment, the second was complete');
  assert.is(t.stats().retransmissions, 1);
});

test('the receiver\'s ACK passes records that lost a repair, never ones still waiting', () => {
  const t = new (addon().SyncTracker)({ layers: 2, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 100 }), 1, 2);   // will lose a repair
  t.sent(tcp({ seq: 101, payload: 100 }), 2, 2); // still waiting for its repairs
  t.repairLost({ layer: 0, count: 1, interleave: 1, baseSeq: 1 });
  t.received(ackFrom(201), 3);
  assert.is(safeOf(t, 4), 100n, 'the ACK passes the dead record only');
  assert.is(t.stats().safeByAck, 1);
  t.dataCompleted(2, 5);
  repairsFor(t, 2, 2, 5);
  assert.is(safeOf(t, 6), 200n);
  assert.ok(t.events().some((e) => e.type === 'safe-by-ack'));
});

test('bytes no record covers (a frame the engine could not send) are passed by the ACK only', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 100 }), 1, 2);
  t.uncovered(1); // never sent: no record, a gap
  t.sent(tcp({ seq: 101, payload: 100 }), 1, 3);
  t.dataCompleted(1, 4);
  repairsFor(t, 1, 1, 4);
  assert.is(safeOf(t, 5), undefined, 'the gap holds the safe offset back');
  t.received(ackFrom(51), 6);
  assert.is(safeOf(t, 7), 50n, 'the ACK passes the part of the gap it covers');
  t.received(ackFrom(101), 8);
  assert.is(safeOf(t, 9), 200n, 'then the completed record after it counts');
});

test('offsets are 64-bit across sequence wrap and beyond 4 GiB, retransmissions land below', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0 });
  const isn = 0xffffff00; // the sequence number wraps within the first segment
  t.sent(tcp({ seq: isn, flags: SYN }), 0, 1);
  const size = 65000;
  const pkt = tcp({ seq: 0, payload: size });
  const segments = Math.ceil((2 ** 32 + 200_000) / size);
  let last: bigint | undefined;
  for (let i = 0; i < segments; i++) {
    pkt.writeUInt32BE((isn + 1 + i * size) >>> 0, 24);
    t.sent(pkt, i + 1, 2);
    t.dataCompleted(i + 1, 3);
    t.repairCompleted({ layer: 0, count: 1, interleave: 1, baseSeq: i + 1 }, 3);
    if (i % 5000 === 0 || i === segments - 1) last = safeOf(t, 4) ?? last;
  }
  assert.is(last, BigInt(segments) * BigInt(size));
  assert.ok(last! > 2n ** 32n);
  // A retransmission of the first segment after all that is recognised as one.
  pkt.writeUInt32BE((isn + 1 + (segments - 2) * size) >>> 0, 24);
  t.sent(pkt, segments + 1, 5);
  assert.is(t.stats().retransmissions, 1);
  assert.is(t.stats().segments, segments + 1);
});

test('a flow seen without its SYN counts from the first byte seen and says so', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 5000, payload: 100 }), 0, 1);
  t.dataCompleted(0, 2);
  repairsFor(t, 0, 1, 2);
  const due = t.poll(3);
  assert.is(due.length, 1);
  assert.is(due[0].isnGuessed, true);
  assert.is(due[0].safeOffset, 100n);
  assert.is(t.stats().flowsIsnGuessed, 1);
  assert.ok(t.events().some((e) => e.type === 'flow-open' && e.isnGuessed));
  t.sent(tcp({ seq: 3, flags: ACK }), 1, 4); // a bare ACK of an unknown flow opens nothing
  assert.is(t.stats().flowsOpened, 1);
});

test('feedback: at most one entry per flow per interval, at once after a quiet spell', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 50_000 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1_000_000);
  let seq = 1;
  const step = (i: number, now: number) => {
    t.sent(tcp({ seq, payload: 100 }), i, now);
    seq += 100;
    t.dataCompleted(i, now);
    repairsFor(t, i, 1, now);
  };
  step(1, 1_000_000);
  assert.is(t.poll(1_000_000).length, 1, 'the first advance goes out at once');
  step(2, 1_010_000);
  assert.is(t.poll(1_010_000).length, 0, '10 us later: held back');
  assert.is(t.nextDeadline(), 1_050_000n);
  step(3, 1_020_000);
  assert.is(t.poll(1_049_999).length, 0);
  const due = t.poll(1_050_000);
  assert.is(due.length, 1, 'one entry for both advances');
  assert.is(due[0].safeOffset, 300n);
  assert.is(t.nextDeadline(), null);
  step(4, 2_000_000);
  assert.is(t.poll(2_000_000).length, 1, 'after a quiet spell: at once');
});

test('flow table: FIN after everything is safe, RST, idle, and pressure evict', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0, maxFlows: 2, idleTimeoutNs: 1e9 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 10, flags: 'FA' }), 1, 2);
  t.poll(3);
  assert.is(t.stats().flows, 1, 'FIN: kept until its bytes are safe');
  t.dataCompleted(1, 4);
  repairsFor(t, 1, 1, 4);
  assert.is(t.poll(5).length, 1, 'the last entry goes out...');
  assert.is(t.poll(6).length, 0);
  assert.is(t.stats().evictedFin, 1, '...and the flow is gone');
  t.sent(tcp({ seq: 0, flags: SYN, sport: 1 }), 2, 10);
  t.sent(tcp({ seq: 0, flags: RST, sport: 1 }), 3, 11);
  assert.is(t.stats().evictedRst, 1);
  t.sent(tcp({ seq: 0, flags: SYN, sport: 2 }), 4, 20);
  t.sent(tcp({ seq: 0, flags: SYN, sport: 3 }), 5, 21);
  t.sent(tcp({ seq: 0, flags: SYN, sport: 4 }), 6, 22);
  assert.is(t.stats().evictedPressure, 1, 'a third flow in a table of two');
  assert.is(t.stats().flows, 2);
  t.poll(22 + 2e9);
  assert.is(t.stats().evictedIdle, 2);
  assert.is(t.stats().flows, 0);
  const closes = t.events().filter((e) => e.type === 'flow-close').map((e) => (e as { reason: string }).reason);
  assert.equal(closes, ['fin', 'rst', 'pressure', 'idle', 'idle']);
});

test('a retransmission after the FIN does not open the flow again', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0, idleTimeoutNs: 1e9 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 10, flags: 'FA' }), 1, 2);
  t.dataCompleted(1, 3);
  repairsFor(t, 1, 1, 3);
  t.poll(4);
  assert.is(t.stats().evictedFin, 1);
  t.sent(tcp({ seq: 1, payload: 10, flags: 'FA' }), 2, 5);
  assert.is(t.stats().afterClose, 1, 'the late copy is counted...');
  assert.is(t.stats().flows, 0, '...and opens nothing');
  assert.is(t.stats().flowsIsnGuessed, 0);
  t.sent(tcp({ seq: 500, flags: SYN }), 3, 6);
  assert.is(t.stats().flows, 1, 'a new connection on the same ports opens with its SYN');
  t.sent(tcp({ seq: 1, payload: 10, sport: 9 }), 4, 7);
  assert.is(t.stats().flowsIsnGuessed, 1, 'a flow never closed here still opens mid-stream');
  t.sent(tcp({ seq: 501, flags: RST }), 5, 8);
  t.sent(tcp({ seq: 501, payload: 10 }), 6, 9);
  assert.is(t.stats().afterClose, 2, 'after a RST too');
  t.sent(tcp({ seq: 501, payload: 10 }), 7, 9 + 61e9);
  assert.is(t.stats().afterClose, 2, 'a minute on, the memory of the close is gone');
  assert.is(t.stats().flowsIsnGuessed, 2);
});

test('waiting: the records still short of repairs, of flows whose ISN is known, from hosts not quiet, within the span', () => {
  const t = new (addon().SyncTracker)({ layers: 2, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 100 }), 1, 2);
  t.sent(tcp({ seq: 101, payload: 100 }), 2, 3);
  t.sent(tcp({ seq: 201, payload: 0 }), 3, 4);            // a bare ACK: nothing to wait for
  t.sent(tcp({ seq: 7, payload: 50, sport: 9 }), 4, 5);    // mid-stream, ISN guessed: its host ignores feedback
  assert.equal(t.waiting(4, 100, 6), [2, 1], 'newest first; the guessed flow left out');
  assert.equal(t.waiting(4, 3, 6), [2], 'only within the span');
  t.dataCompleted(1, 7);
  repairsFor(t, 1, 1, 7);
  assert.equal(t.waiting(4, 100, 8), [2, 1], 'one repair of two: record 1 still waits');
  repairsFor(t, 1, 2, 8, 0);
  assert.equal(t.waiting(4, 100, 9), [2], 'all its repairs: it waits no more');
  t.setQuiet('10.1.0.2', 20);
  assert.equal(t.waiting(4, 100, 10), [], 'its host said nobody listens there');
  assert.equal(t.waiting(4, 100, 20), [2], 'for a while');
});

test('a SYN with a new ISN restarts the flow\'s offsets', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 100, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 101, payload: 50 }), 1, 2);
  t.sent(tcp({ seq: 9000, flags: SYN }), 2, 3);
  t.sent(tcp({ seq: 9001, payload: 20 }), 3, 4);
  t.dataCompleted(3, 5);
  repairsFor(t, 3, 1, 5);
  assert.is(safeOf(t, 6), 20n);
  t.dataCompleted(1, 7);
  repairsFor(t, 1, 1, 7);
  assert.is(safeOf(t, 8), undefined, 'completions of the old connection do not count');
});

test('uncovered: a packet the encoder refused takes back its record', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 0, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1, payload: 100 }), 1, 2);
  t.uncovered(1);
  t.sent(tcp({ seq: 1, payload: 100 }), 1, 3); // the same seq goes to the next packet
  t.dataCompleted(1, 4);
  repairsFor(t, 1, 1, 4);
  assert.is(safeOf(t, 5), 100n);
  assert.is(t.stats().segments, 2);
});

test('property: with the real encoder and random completion order, feedback equals the audit of the trace', () => {
  const native = addon();
  for (let seed = 1; seed <= 6; seed++) {
    const rng = new Rng(seed);
    const interleaves = [1, 4, 16];
    const r = 4;
    const enc = new native.Encoder({ r, interleaves, flushTimeoutNs: 0, maxPacketSize: 1500 });
    const t = new native.SyncTracker({ layers: interleaves.length, feedbackIntervalNs: 0 });
    t.setTrace(true);
    const flows = [40001, 40002, 40003];
    const next = new Map<number, number>(flows.map((p) => [p, 1]));
    const completions: (() => void)[] = [];
    let seq = 0;
    let now = 1;
    const send = (pkt: Buffer) => {
      t.sent(pkt, seq, now);
      const s = seq;
      completions.push(() => t.dataCompleted(s, now));
      const out = enc.encode([pkt], now);
      assert.is(out.seqs[0], seq);
      seq++;
      for (const rep of out.repairs) {
        const p = native.parseRepair(rep, 1500);
        if ('error' in p) throw new Error(p.error);
        const cov: RepairCoverage = { layer: p.layer, count: p.count, interleave: p.interleave, baseSeq: p.baseSeq };
        completions.push(() => t.repairCompleted(cov, now));
      }
    };
    for (const p of flows) send(tcp({ sport: p, seq: 0, flags: SYN }));
    for (let i = 0; i < 400; i++) {
      const port = flows[rng.int(0, flows.length - 1)];
      const len = rng.int(1, 1400);
      let at = next.get(port)!;
      let n = len;
      if (rng.next() < 0.1 && at > 1) { // a retransmission of bytes already sent
        at = Math.max(1, at - rng.int(1, 3000));
        n = Math.min(len, next.get(port)! - at);
      } else {
        next.set(port, at + len);
      }
      send(tcp({ sport: port, seq: at, payload: n }));
      if (rng.next() < 0.05) send(Buffer.from('not an ip packet at all, still sequenced'));
    }
    for (const rep of enc.flush()) {
      const p = native.parseRepair(rep, 1500);
      if ('error' in p) throw new Error(p.error);
      const cov: RepairCoverage = { layer: p.layer, count: p.count, interleave: p.interleave, baseSeq: p.baseSeq };
      completions.push(() => t.repairCompleted(cov, now));
    }
    // Complete in random order (each within a window, as a NIC would), polling after each.
    const reported = new Map<string, bigint>();
    while (completions.length) {
      const k = rng.int(0, Math.min(completions.length - 1, 200));
      completions.splice(k, 1)[0]();
      for (const e of t.poll(now)) reported.set(flowId(e), e.safeOffset);
      now++;
    }
    const events = t.events();
    const audit = safePrefixes(events, interleaves.length);
    for (const p of flows) {
      const id = flowId({ senderAddress: '10.1.0.2', senderPort: p, receiverAddress: '10.2.0.2', receiverPort: 5000 });
      const points = audit.get(id) ?? [];
      const final = points.length ? points[points.length - 1].offset : 0n;
      assert.is(reported.get(id) ?? 0n, final, `seed ${seed} flow ${p}: final safe offset`);
      assert.is(final, BigInt(next.get(p)! - 1), `seed ${seed} flow ${p}: everything sent became safe`);
    }
    // Every feedback entry names an offset the audit says was safe by then.
    for (const e of events) {
      if (e.type !== 'feedback') continue;
      const since = safeSince(audit.get(flowId(e)), e.safeOffset);
      assert.ok(since !== undefined && since <= e.tNs, `seed ${seed}: feedback at ${e.tNs} for ${e.safeOffset} before the audit's ${since}`);
    }
  }
});


test('an epoch change: records keep the repair count of the code they were sent under', () => {
  const t = new (addon().SyncTracker)({ layers: 3, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 999, flags: SYN }), 0, 1);
  t.sent(tcp({ seq: 1000, payload: 1000 }), 1, 2); // under c = 3
  t.setLayers(2);
  t.sent(tcp({ seq: 2000, payload: 1000 }), 2, 3); // under c = 2
  t.dataCompleted(1, 4);
  repairsFor(t, 1, 2, 5);
  assert.is(safeOf(t, 6), undefined, 'a record of the old code still needs its third repair');
  t.dataCompleted(2, 7);
  repairsFor(t, 2, 2, 8);
  assert.is(safeOf(t, 9), undefined, 'the new record is complete, but the old one before it is not');
  t.repairCompleted({ layer: 2, count: 1, interleave: 1, baseSeq: 1 }, 10);
  assert.is(safeOf(t, 11), 2000n, 'both safe once the old record has all three');
});

test('safe latency: from sent to the last completion, as quantiles of a histogram', () => {
  const t = new (addon().SyncTracker)({ layers: 1, feedbackIntervalNs: 0 });
  t.sent(tcp({ seq: 999, flags: SYN }), 0, 0);
  const us = 1000;
  for (let i = 1; i <= 100; i++) {
    const sent = i * 1_000_000;
    t.sent(tcp({ seq: 1000 + (i - 1) * 100, payload: 100 }), i, sent);
    t.dataCompleted(i, sent + 10 * us);
    // 99 records take 200 us; one takes 5 ms.
    repairsFor(t, i, 1, sent + (i === 50 ? 5000 : 200) * us);
  }
  const lat = t.stats().safeLatencyUs;
  assert.is(lat.count, 100);
  assert.ok(lat.p50 >= 200 && lat.p50 < 240, `p50 ${lat.p50}`);
  assert.ok(lat.p99 >= 200 && lat.p99 < 240, `p99 ${lat.p99}: the one slow record is the 100th percentile`);
  assert.is(lat.max, 5000);
});

test.run();
