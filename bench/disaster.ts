// Network-sync's rolling disaster (figure 6 of `smfs reproduce`) per gateway flush setting: how
// many acknowledged messages each setting loses, and what its repairs cost the bottleneck
// (repairs per data packet, the share the idle flush fired, the idle flushes its budget cut
// short, the queue's tail drops, and the WAN losses gateway B could not rebuild). Unbudgeted,
// the idle flush and a short flush timeout sent 2.2 repairs per data packet, filled the queue,
// and its tail drops lost acknowledged data (docs/reproduction.md, figure 6); this measures the
// settings side by side in one run. Prints figures; never passes or fails on them.
import { installAbort } from '../src/lab/reproduce/abort';
import { Bed, setupOf } from '../src/lab/reproduce/bed';
import { CONFIGS } from '../src/lab/reproduce/configs';
import { fidelityBetween } from '../src/lab/reproduce/fidelity';
import { disaster } from '../src/lab/reproduce/measure';
import { FLUSH_IDLE_US, PROFILES, TABLE2, WAN } from '../src/lab/reproduce/params';

export interface FlushSetting {
  flushMs: number;      // the gateways' --flush-timeout
  budget: number;       // their --flush-budget (repairs a second)
}

export interface DisasterBenchOptions {
  settings: FlushSetting[];
  losses: number[];     // fractions
  runs: number;
  afterSeconds: number; // load before the disaster
  onProgress?: (line: string) => void;
}

export interface DisasterBenchRun {
  flush_ms: number;
  flush_budget: number;
  loss: number;
  run: number;
  acked: number;
  lost: number;
  repairs_per_packet: number;
  idle_flushed_share: number;
  idle_deferred: number;
  tail_drops: number;
  wan_unrecoverable: number;
}

export async function runDisasterBench(o: DisasterBenchOptions): Promise<{ runs: DisasterBenchRun[]; after_seconds: number; testers: number }> {
  installAbort(() => undefined);
  const config = CONFIGS['network-sync'];
  const testers = PROFILES.full.testers;
  const runs: DisasterBenchRun[] = [];
  for (const setting of o.settings) {
    const bed = await Bed.create({ ...setupOf(config, TABLE2.c, setting.flushMs, FLUSH_IDLE_US.fewInFlight), flushBudget: setting.budget }, WAN.delayMs);
    try {
      for (const loss of o.losses) {
        for (let run = 0; run < o.runs; run++) {
          const before = await bed.lab.wan.status();
          const r = await disaster(bed, config, { loss, afterSeconds: o.afterSeconds, testers });
          const fidelity = fidelityBetween(before, await bed.lab.wan.status());
          const row: DisasterBenchRun = {
            flush_ms: setting.flushMs, flush_budget: setting.budget, loss, run,
            acked: r.acked, lost: r.lost,
            repairs_per_packet: (r.repairs ?? 0) / Math.max(1, r.dataPackets ?? 0),
            idle_flushed_share: (r.repairsIdleFlushed ?? 0) / Math.max(1, r.repairs ?? 0),
            idle_deferred: r.idleFlushDeferred ?? 0,
            tail_drops: fidelity.aToB.tailDrops,
            wan_unrecoverable: r.wanUnrecoverable ?? 0,
          };
          runs.push(row);
          o.onProgress?.(formatRun(row));
        }
      }
    } finally {
      await bed.destroy();
    }
  }
  return { runs, after_seconds: o.afterSeconds, testers };
}

function formatRun(r: DisasterBenchRun): string {
  return `flush ${r.flush_ms} ms, budget ${r.flush_budget}/s, loss ${(r.loss * 100).toFixed(1)}%, run ${r.run + 1}: ${r.acked} acknowledged, ${r.lost} lost; `
    + `${r.repairs_per_packet.toFixed(2)} repairs/packet (${(r.idle_flushed_share * 100).toFixed(0)}% idle-flushed, ${r.idle_deferred} deferred), ${r.tail_drops} tail drops, ${r.wan_unrecoverable} not rebuilt`;
}

export function formatDisasterBench(b: { runs: DisasterBenchRun[]; after_seconds: number; testers: number }): string {
  const lines = [`network-sync rolling disasters, ${b.testers} testers of 4 KB messages, ${b.after_seconds} s of load, 100 Mbit/s and ${WAN.delayMs} ms one way, (8,3)`,
    '  flush    budget/s   loss   runs   acknowledged   lost (runs losing)   repairs/packet   idle-flushed   deferred   tail drops   not rebuilt'];
  const groups = new Map<string, DisasterBenchRun[]>();
  for (const r of b.runs) {
    const k = `${r.flush_ms}|${r.flush_budget}|${r.loss}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  for (const rs of groups.values()) {
    const r0 = rs[0];
    lines.push(`  ${`${r0.flush_ms} ms`.padStart(7)} ${String(r0.flush_budget).padStart(10)} ${`${(r0.loss * 100).toFixed(1)}%`.padStart(6)} ${String(rs.length).padStart(6)}`
      + ` ${mean(rs.map((r) => r.acked)).toFixed(0).padStart(14)} ${`${rs.reduce((a, r) => a + r.lost, 0)} (${rs.filter((r) => r.lost > 0).length})`.padStart(20)}`
      + ` ${mean(rs.map((r) => r.repairs_per_packet)).toFixed(2).padStart(16)} ${`${(mean(rs.map((r) => r.idle_flushed_share)) * 100).toFixed(0)}%`.padStart(14)}`
      + ` ${mean(rs.map((r) => r.idle_deferred)).toFixed(0).padStart(10)} ${mean(rs.map((r) => r.tail_drops)).toFixed(0).padStart(12)} ${mean(rs.map((r) => r.wan_unrecoverable)).toFixed(1).padStart(13)}`);
  }
  lines.push('  lost: acknowledged messages missing at the promoted mirror, summed over the runs; the rest are means a run');
  return lines.join('\n');
}
