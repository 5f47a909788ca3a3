// One measurement of each kind in a test bed: a rolling disaster (figures 6, 7), the latency
// from primary to mirror (figure 8), and throughput (figures 9, 10, 11).
import fs from 'node:fs';
import { verifyAcked } from '../smfs';
import type { LoadAck } from '../smfs';
import type { Bed } from './bed';
import type { Configuration } from './configs';
import { TABLE2, WAN } from './params';

export interface DisasterResult {
  acked: number;   // appends acknowledged before the disaster began (tagged: every append completed)
  lost: number;    // of those, missing at the promoted mirror
  bad: number;     // of those, read back different (never expected)
  ackedAfter: number; // acknowledged between the start of the disaster and the primary's death
  recovered?: number; // tagged: groups the testers' caches gave back
  // With gateways, gateway B's decoder over the run (the primary's direction): packets the WAN
  // lost that it rebuilt, and those it named missing and could not rebuild (TCP had to resend
  // them; acknowledged data among them is lost if the disaster comes first).
  wanRecovered?: number;
  wanUnrecoverable?: number;
  // And gateway A's encoder: data packets and repairs sent over the run, the repairs the idle
  // flush fired, and the idle flushes its budget cut short.
  dataPackets?: number;
  repairs?: number;
  repairsIdleFlushed?: number;
  idleFlushDeferred?: number;
}

// The gateways' counters from their next stats lines (0.2 s apart), or undefined without
// gateways.
async function gatewayCounts(bed: Bed) {
  if (!bed.gw) return undefined;
  const [a, b] = await Promise.all([bed.gw.a.nextStats(1000), bed.gw.b.nextStats(1000)]);
  return a && b && {
    wanRecovered: b.recovered, wanUnrecoverable: b.unrecoverable,
    dataPackets: a.lanToWanPackets, repairs: a.repairsSent, repairsIdleFlushed: a.repairsIdleFlushed, idleFlushDeferred: a.idleFlushDeferred,
  };
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Section 5.3: testers append 4 KB messages over a loss-free WAN, loss is raised for 0.5 s,
// then the WAN link is cut and the primary killed at once; the mirror is read (for up to 3 s, as
// what was on the wire arrives), promoted, and read again.
export async function disaster(bed: Bed, config: Configuration, o: { loss: number; afterSeconds: number; testers: number }): Promise<DisasterResult> {
  await bed.setWan({ loss: 0, killed: false });
  const pair = await bed.startPair({ feedback: config.feedback, ackTimeoutMs: 60_000 });
  try {
    const before = await gatewayCounts(bed);
    const decoder = async () => {
      const after = await gatewayCounts(bed);
      if (!before || !after) return {};
      const delta = {} as Record<keyof typeof after, number>;
      for (const k of Object.keys(after) as (keyof typeof after)[]) delta[k] = after[k] - before[k];
      return delta;
    };
    const load = bed.spawnLoad({ level: config.level, testers: o.testers, blocks: 1, blockSize: TABLE2.messageBytes, seconds: 3600, clientSite: config.clientSite });
    const first = await untilAcked(load.acks, 1, 20_000);
    if (!first) throw new Error(`${config.name}: no append was acknowledged in 20 s`);
    await wait(o.afterSeconds * 1000);
    await bed.setWan({ loss: o.loss });
    await wait(WAN.lossPhaseMs);
    const start = process.hrtime.bigint();
    await bed.setWan({ killed: true });
    await pair.primary.stop('SIGKILL');
    if (config.level === 'tagged') {
      // The testers outlive the disaster: every append they completed counts, and they hand
      // what they kept to the promoted mirror.
      const [promoted] = await Promise.all([bed.promote(1), load.handover]);
      // Handed over and replayed: what the testers append to the new primary after that is
      // not part of the disaster.
      load.child.kill('SIGKILL');
      const acked = load.acks.map((a): LoadAck => ({ i: a.i, a: a.a, t: a.t }));
      const check = await verifyAcked(bed.lab, bed.credentials, acked, undefined, TABLE2.messageBytes);
      const handover = promoted.handover as { applied?: number } | undefined;
      return { acked: acked.length, lost: check.missing, bad: check.bad, ackedAfter: 0, recovered: handover?.applied ?? 0, ...await decoder() };
    }
    load.child.kill('SIGKILL');
    const acked = load.acks.filter((a) => a.t < start);
    const deadline = Date.now() + 3000;
    let check = await verifyAcked(bed.lab, bed.credentials, acked, undefined, TABLE2.messageBytes);
    while (check.missing > 0 && Date.now() < deadline) check = await verifyAcked(bed.lab, bed.credentials, acked, undefined, TABLE2.messageBytes);
    await bed.promote();
    check = await verifyAcked(bed.lab, bed.credentials, acked, undefined, TABLE2.messageBytes);
    return { acked: acked.length, lost: check.missing, bad: check.bad, ackedAfter: load.acks.length - acked.length, ...await decoder() };
  } finally {
    await pair.stop('SIGKILL');
    await bed.setWan({ killed: false, loss: 0 });
  }
}

async function untilAcked(acks: unknown[], n: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (acks.length < n) {
    if (Date.now() > deadline) return false;
    await wait(10);
  }
  return true;
}

export interface ThroughputResult {
  mbit: number;        // goodput: appended bytes acknowledged per second, in Mbit/s
  appends: number;     // acknowledged in the measured window
}

// Testers appending 512 KB groups of 4 KB blocks as fast as they are answered; measured over
// `seconds` after `warmUpSeconds` from the first answer.
export async function throughput(bed: Bed, config: Configuration, o: { loss: number; delayMs?: number; testers: number; seconds: number; warmUpSeconds: number }): Promise<ThroughputResult> {
  await bed.setWan({ loss: o.loss, ...(o.delayMs !== undefined ? { delayMs: o.delayMs } : {}) });
  const pair = await bed.startPair({ feedback: config.feedback, ackTimeoutMs: 120_000 });
  try {
    const blocks = TABLE2.appendBytes / TABLE2.blockBytes;
    const total = o.warmUpSeconds + o.seconds;
    const load = bed.spawnLoad({ level: config.level, testers: o.testers, blocks, blockSize: TABLE2.blockBytes, seconds: 3600, clientSite: config.clientSite });
    const spawned = process.hrtime.bigint();
    // Timed from the first answer, or from the start if none comes in the whole window (a link
    // too lossy for even one append).
    await untilAcked(load.acks, 1, total * 1000);
    const t0 = (load.acks[0]?.t ?? spawned) + BigInt(Math.round(o.warmUpSeconds * 1e9));
    const t1 = t0 + BigInt(Math.round(o.seconds * 1e9));
    while (process.hrtime.bigint() < t1) await wait(50);
    load.child.kill('SIGKILL');
    const inWindow = load.acks.filter((a) => a.t >= t0 && a.t < t1);
    return {
      mbit: inWindow.length * TABLE2.appendBytes * 8 / o.seconds / 1e6,
      appends: inWindow.length,
    };
  } finally {
    await pair.stop('SIGKILL');
  }
}

export interface LatencyResult {
  groups: number;
  quantilesMs: number[];   // at QUANTILES
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export const QUANTILES = [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1];

// Figure 8: from the primary handing each group to its connection to the mirror taking it in
// (both servers' --trace-mirror), for the disaster's workload over a WAN with `loss`.
export async function latency(bed: Bed, config: Configuration, o: { loss: number; testers: number; seconds: number; warmUpSeconds: number }): Promise<LatencyResult> {
  await bed.setWan({ loss: o.loss });
  const pair = await bed.startPair({ feedback: config.feedback, trace: true, ackTimeoutMs: 120_000 });
  try {
    const load = bed.spawnLoad({ level: config.level, testers: o.testers, blocks: 1, blockSize: TABLE2.messageBytes, seconds: o.warmUpSeconds + o.seconds, clientSite: config.clientSite });
    await load.done;
    // Then the WAN without loss, until the mirror has every group (a last remote-sync append).
    await bed.setWan({ loss: 0 });
    await bed.spawnLoad({ level: 'remote', testers: 1, blocks: 1, blockSize: TABLE2.messageBytes, seconds: 0.001, clientSite: config.clientSite }).done;
    await pair.stop('SIGTERM');
    const sent = readTrace(pair.traces!.primary, 'send');
    const received = readTrace(pair.traces!.mirror, 'recv');
    const firstSend = Math.min(...sent.values());
    const warm = firstSend + o.warmUpSeconds * 1e9;
    const ms: number[] = [];
    for (const [seq, t] of sent) {
      const r = received.get(seq);
      if (r !== undefined && t >= warm) ms.push((r - t) / 1e6);
    }
    ms.sort((a, b) => a - b);
    const q = (p: number) => (ms.length ? ms[Math.min(ms.length - 1, Math.max(0, Math.ceil(p * ms.length) - 1))] : 0);
    return { groups: ms.length, quantilesMs: QUANTILES.map(q), p50Ms: q(0.5), p99Ms: q(0.99), maxMs: q(1) };
  } finally {
    await pair.stop('SIGKILL');
    bed.removePairDir(pair);
  }
}

// seq -> ns of its first line of `kind` (a group sent again after a reconnection counts once).
function readTrace(file: string, kind: 'send' | 'recv'): Map<number, number> {
  const out = new Map<number, number>();
  if (!fs.existsSync(file)) return out;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [k, seq, ns] = line.split(' ');
    if (k !== kind) continue;
    const s = Number(seq);
    if (!out.has(s)) out.set(s, Number(ns));
  }
  return out;
}
