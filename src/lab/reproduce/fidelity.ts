// How faithfully the lab's WAN behaved during an experiment: the delay line's lateness (p99, max,
// share of frames more than 0.1 ms after their deadline) and every frame it or the kernel
// dropped that the experiment did not ask for, from two snapshots of its counters.
import type { DelayDirectionStats } from '../../native/addon';
import type { WanStatus } from '../wan';

export interface LinkFidelity {
  frames: number;
  lateP99Us: number;       // the lateness bucket holding the 99th percentile (its lower edge)
  lateMaxUs: number;       // over the whole lab so far (the line keeps only one maximum)
  lateOver100usShare: number;
  // Frames lost that the experiment did not ask for: the bottleneck queue full (tail drops, part
  // of the emulated link), the line's own queue full, a send refused, the kernel's socket full.
  tailDrops: number;
  otherDrops: number;
  queueMaxBytes: number;
}

export interface Fidelity {
  aToB: LinkFidelity;
  bToA: LinkFidelity;
  realtime: boolean;
  rateMbit: number;
  queueBytes: number;
  lossDropped: number;     // frames the loss program dropped (asked for: loss and kill)
  lossPassed: number;
}

export const LATE_SPEC_US = 100;

function percentile(hist: number[], floors: number[], p: number): number {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const want = Math.ceil(p * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= want) return floors[i];
  }
  return floors[floors.length - 1];
}

function direction(before: DelayDirectionStats | undefined, after: DelayDirectionStats, floors: number[]): LinkFidelity {
  const d = (k: 'packets' | 'tailDrops' | 'queueDrops' | 'sendErrors' | 'socketDrops' | 'lateOver100us') => after[k] - (before?.[k] ?? 0);
  const hist = after.lateHist.map((n, i) => n - (before?.lateHist[i] ?? 0));
  const frames = d('packets');
  return {
    frames,
    lateP99Us: percentile(hist, floors, 0.99) / 1000,
    lateMaxUs: after.lateMaxNs / 1000,
    lateOver100usShare: frames > 0 ? d('lateOver100us') / frames : 0,
    tailDrops: d('tailDrops'),
    otherDrops: d('queueDrops') + d('sendErrors') + d('socketDrops'),
    queueMaxBytes: after.queueMaxBytes,
  };
}

// What changed between two statuses of one lab's WAN (before: undefined for since the start).
export function fidelityBetween(before: WanStatus | undefined, after: WanStatus): Fidelity {
  const floors = after.delay.lateBucketFloorsNs;
  return {
    aToB: direction(before?.delay.aToB, after.delay.aToB, floors),
    bToA: direction(before?.delay.bToA, after.delay.bToA, floors),
    realtime: after.delay.realtime,
    rateMbit: after.delay.rateBps / 1e6,
    queueBytes: after.delay.queueBytes,
    lossDropped: after.loss.dropped - (before?.loss.dropped ?? 0),
    lossPassed: after.loss.passed - (before?.loss.passed ?? 0),
  };
}

// Several experiments' fidelity as one: the worst lateness, the drops added up.
export function mergeFidelity(all: Fidelity[]): Fidelity | undefined {
  if (all.length === 0) return undefined;
  const link = (pick: (f: Fidelity) => LinkFidelity): LinkFidelity => {
    const xs = all.map(pick);
    const frames = xs.reduce((n, x) => n + x.frames, 0);
    return {
      frames,
      lateP99Us: Math.max(...xs.map((x) => x.lateP99Us)),
      lateMaxUs: Math.max(...xs.map((x) => x.lateMaxUs)),
      lateOver100usShare: frames > 0 ? xs.reduce((n, x) => n + x.lateOver100usShare * x.frames, 0) / frames : 0,
      tailDrops: xs.reduce((n, x) => n + x.tailDrops, 0),
      otherDrops: xs.reduce((n, x) => n + x.otherDrops, 0),
      queueMaxBytes: Math.max(...xs.map((x) => x.queueMaxBytes)),
    };
  };
  return {
    aToB: link((f) => f.aToB), bToA: link((f) => f.bToA),
    realtime: all.every((f) => f.realtime),
    rateMbit: all[0].rateMbit, queueBytes: Math.max(...all.map((f) => f.queueBytes)),
    lossDropped: all.reduce((n, f) => n + f.lossDropped, 0), lossPassed: all.reduce((n, f) => n + f.lossPassed, 0),
  };
}

export function formatFidelity(f: Fidelity): string {
  const one = (name: string, l: LinkFidelity) => `${name} ${l.frames} frames, late p99 ${l.lateP99Us.toFixed(0)} us, max ${(l.lateMaxUs / 1000).toFixed(1)} ms, ${(l.lateOver100usShare * 100).toFixed(2)}% over 0.1 ms, `
    + `${l.tailDrops} tail drops (queue ${(l.queueMaxBytes / 1024).toFixed(0)} of ${(f.queueBytes / 1024).toFixed(0)} KiB at most), ${l.otherDrops} other drops`;
  return `${one('A->B', f.aToB)}; ${one('B->A', f.bToA)}; delay line ${f.realtime ? 'SCHED_FIFO' : 'SCHED_OTHER'}`;
}
