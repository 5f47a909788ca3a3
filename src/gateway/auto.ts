// Adaptive redundancy (`maelstrom up --auto`): the receiving gateway reports the loss it sees on
// our direction of the WAN (receiver reports, docs/protocol.md), and the sending gateway picks the
// smallest c in [cMin, cMax] whose modelled unrecoverable rate stays under the target.
//
// The model, per lost packet: layer k (interleave i_k) fails to rebuild it when another packet
// of its bin is lost too, q_k = 1 - (1-p)^(r-1) for independent losses. A loss burst of mean
// length b longer than the interleave puts the packet's bin neighbours in the same burst, so
// such a layer fails with probability at least 1 - i_k/b. Layers fail independently (each
// interleaves differently), and the unrecoverable rate is p * prod_k q_k. It ignores the
// cascade between layers, so it overestimates: it errs towards more repairs.
import { defaultInterleaves } from '../fec/config';
import type { PeerReport } from '../native/addon';

export const AUTO_DEFAULTS = { cMin: 1, cMax: 4, target: 1e-6 } as const;

export interface AutoOptions {
  r: number;
  cMin: number;
  cMax: number;
  target: number;        // unrecoverable packets per packet sent, e.g. 1e-6
  windowMs?: number;     // loss is estimated over the reports of this long (default 2000)
  minSamples?: number;   // packets the estimate needs before c moves (default 2000)
  lowerAfterMs?: number; // c goes down only after the lower code has fit this long (default 1000)
}

export interface AutoDecision {
  c: number;
  interleaves: number[];
  loss: number;       // estimated p
  burst: number;      // estimated mean burst length
  modelled: number;   // modelled unrecoverable rate at the new c
  samples: number;
}

export function modelledUnrecoverable(p: number, burst: number, r: number, interleaves: number[]): number {
  if (p <= 0) return 0;
  const iid = 1 - (1 - p) ** (r - 1);
  let u = p;
  for (const i of interleaves) u *= burst > i ? Math.max(iid, 1 - i / burst) : iid;
  return u;
}

// The smallest c in [cMin, cMax] that meets the target, or cMax when none does.
export function smallestC(p: number, burst: number, o: AutoOptions): number {
  for (let c = o.cMin; c <= o.cMax; c++) {
    if (modelledUnrecoverable(p, burst, o.r, defaultInterleaves(c)) <= o.target) return c;
  }
  return o.cMax;
}

interface Sample { t: number; sampled: number; missing: number; bursts: number }

export class AutoRedundancy {
  private readonly samples: Sample[] = [];
  private lowerSince: number | undefined;

  constructor(private readonly o: AutoOptions, private c: number) {
    this.o = { ...o };
  }

  get current(): number {
    return this.c;
  }

  // The code was set by hand (maelstrom tune) or a change failed: go on from this one.
  reset(c: number, r = this.o.r): void {
    this.c = c;
    this.o.r = r;
    this.lowerSince = undefined;
  }

  // Feeds the peer's latest report (cumulative counters) at time nowMs; returns a decision when
  // c should change. Counters that went backwards (the peer restarted) start the window again.
  observe(report: PeerReport, nowMs: number): AutoDecision | undefined {
    const last = this.samples[this.samples.length - 1];
    if (last && (report.sampled < last.sampled || report.missing < last.missing)) this.samples.length = 0;
    if (!last || report.sampled !== last.sampled) {
      this.samples.push({ t: nowMs, sampled: report.sampled, missing: report.missing, bursts: report.bursts });
    }
    const windowMs = this.o.windowMs ?? 2000;
    while (this.samples.length > 2 && nowMs - this.samples[1].t >= windowMs) this.samples.shift();
    const first = this.samples[0];
    const newest = this.samples[this.samples.length - 1];
    const sampled = newest.sampled - first.sampled;
    if (sampled < (this.o.minSamples ?? 2000)) return undefined;
    const missing = newest.missing - first.missing;
    const bursts = newest.bursts - first.bursts;
    // (missing + 1) / (sampled + 1): a window without a loss does not claim a perfect link.
    const p = (missing + 1) / (sampled + 1);
    const burst = bursts > 0 ? Math.max(1, missing / bursts) : 1;
    const want = smallestC(p, burst, this.o);
    if (want === this.c) {
      this.lowerSince = undefined;
      return undefined;
    }
    if (want < this.c) {
      // Down only when the lower code has fitted for a while: losses come and go in spells.
      this.lowerSince ??= nowMs;
      if (nowMs - this.lowerSince < (this.o.lowerAfterMs ?? 1000)) return undefined;
    }
    this.lowerSince = undefined;
    this.c = want;
    const interleaves = defaultInterleaves(want);
    return { c: want, interleaves, loss: p, burst, modelled: modelledUnrecoverable(p, burst, this.o.r, interleaves), samples: sampled };
  }
}
