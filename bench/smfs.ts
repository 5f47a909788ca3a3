// SMFS append throughput and latency in the lab, per acknowledgement level (the paper's Table 2
// workload: appends of 512 KB in 4 KB blocks): a primary in hostA mirroring through both
// gateways ((8,3)) to hostB, from 1 and from 64 clients, per WAN one-way delay and loss. Each
// (delay, loss, clients) gets a fresh pair of servers, so no level inherits another's backlog.
// Level 'tagged' runs as one client (one tag cache) over the connections; its cache's peak is
// reported beside the bandwidth-delay product of what it moved. A second of unmeasured 'local'
// appends warms the mirror stream up first.
// Prints figures and the paper's targets beside them; never passes or fails on them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab } from '../src/lab/lab';
import { startGateways } from '../src/lab/gateways';
import { labCredential, startLoad, startSmfsPair } from '../src/lab/smfs';
import type { AppendLevel } from '../src/smfs/client';

export interface SmfsBenchOptions {
  delaysMs?: number[];
  losses?: number[];   // fractions
  clients?: number[];
  levels?: AppendLevel[];
  seconds?: number;    // per figure
  rounds?: number;     // the levels run this many times in turn; each row is the median of its rounds
  appendKiB?: number;
  blockKiB?: number;
  credentials?: string; // the servers' and clients' credential file (default: one made for the run)
}

export interface SmfsBenchRow {
  delay_ms: number;
  loss: number;
  clients: number;
  level: AppendLevel;
  appends: number;
  mbytes_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: Record<string, number>;
  cache_peak_bytes?: number; // tagged: the client's cache at its fullest
  bdp_bytes?: number;        // tagged: its throughput x one WAN round trip
  cache_waits?: number;      // tagged: appends that waited for room
  rounds: number;            // rounds this row is the median of (appends and errors: their sum)
}

export interface SmfsBenchCheck {
  delay_ms: number;
  loss: number;
  clients: number;
  network_vs_local_throughput?: number; // network / local (when both levels ran)
  network_vs_local_p50?: number;
  network_vs_local_p99?: number;
  remote_p50_vs_rtt?: number;           // remote p50 / (2 x delay), Infinity at delay 0
  tagged_vs_local_throughput?: number; // tagged / local
  tagged_vs_local_p50?: number;
  tagged_vs_local_p99?: number;
  tagged_cache_peak_vs_bdp?: number;   // the cache's peak / (tagged throughput x RTT), Infinity at delay 0
}

const LEVELS: AppendLevel[] = ['local', 'tagged', 'network', 'remote'];
// Unmeasured appends at 'local' before the first level, so that it does not pay alone for the
// mirror stream's slow start.
const WARMUP_S = 1;

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v.length % 2 === 1 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
}

// One row for the rounds of a level: medians of the rates and latencies, sums of the counts,
// the largest cache peak.
function medianRow(runs: SmfsBenchRow[]): SmfsBenchRow {
  if (runs.length === 1) return runs[0];
  const errors: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  const tagged = runs[0].cache_peak_bytes !== undefined;
  return {
    ...runs[0], rounds: runs.length, errors,
    appends: runs.reduce((n, r) => n + r.appends, 0),
    mbytes_per_s: median(runs.map((r) => r.mbytes_per_s)),
    p50_ms: median(runs.map((r) => r.p50_ms)),
    p99_ms: median(runs.map((r) => r.p99_ms)),
    ...(tagged ? {
      cache_peak_bytes: Math.max(...runs.map((r) => r.cache_peak_bytes!)),
      bdp_bytes: median(runs.map((r) => r.bdp_bytes!)),
      cache_waits: runs.reduce((n, r) => n + r.cache_waits!, 0),
    } : {}),
  };
}

export async function runSmfsBench(o: SmfsBenchOptions = {}): Promise<{ rows: SmfsBenchRow[]; checks: SmfsBenchCheck[]; appendKiB: number; blockKiB: number }> {
  const delays = o.delaysMs ?? [0, 25, 50, 100];
  const losses = o.losses ?? [0, 0.01];
  const clientCounts = o.clients ?? [1, 64];
  const levels = o.levels ?? LEVELS;
  const seconds = o.seconds ?? 4;
  const rounds = o.rounds ?? 1;
  const appendKiB = o.appendKiB ?? 512;
  const blockKiB = o.blockKiB ?? 4;
  const rows: SmfsBenchRow[] = [];
  const made = o.credentials === undefined ? labCredential() : undefined;
  const credentials = o.credentials ?? made!.file;
  const lab = await Lab.create({ delayMs: 0 });
  try {
    const gw = await startGateways(lab);
    try {
      for (const delay of delays) {
        for (const loss of losses) {
          await lab.wan.set({ delayMs: delay, loss });
          for (const clients of clientCounts) {
            const root = fs.mkdtempSync(path.join(os.tmpdir(), 'smfs-bench-'));
            try {
              const { primary, mirror } = await startSmfsPair(lab, credentials, { primary: path.join(root, 'p'), mirror: path.join(root, 'm') }, { ackTimeoutMs: 60_000 });
              try {
                await startLoad(lab, credentials, { level: 'local', clients, blocks: appendKiB / blockKiB, blockSize: blockKiB * 1024, seconds: WARMUP_S, logs: 4 }).done;
                const runs = new Map<AppendLevel, SmfsBenchRow[]>(levels.map((l) => [l, []]));
                for (let round = 0; round < rounds; round++) {
                  for (const level of levels) {
                    const s = await startLoad(lab, credentials, { level, clients, blocks: appendKiB / blockKiB, blockSize: blockKiB * 1024, seconds, logs: 4 }).done;
                    const bytesPerS = s.bytes / s.seconds;
                    runs.get(level)!.push({
                      delay_ms: delay, loss, clients, level, appends: s.appends, mbytes_per_s: bytesPerS / 1e6,
                      p50_ms: s.latencyUs.p50 / 1000, p99_ms: s.latencyUs.p99 / 1000, errors: s.errors, rounds: 1,
                      ...(s.cache ? { cache_peak_bytes: s.cache.peakBytes, bdp_bytes: Math.round(bytesPerS * 2 * delay / 1000), cache_waits: s.cache.waits } : {}),
                    });
                  }
                }
                for (const level of levels) rows.push(medianRow(runs.get(level)!));
              } finally {
                await primary.stop('SIGKILL');
                await mirror.stop('SIGKILL');
              }
            } finally {
              fs.rmSync(root, { recursive: true, force: true });
            }
          }
        }
      }
    } finally {
      await gw.a.stop();
      await gw.b.stop();
    }
  } finally {
    await lab.destroy();
    made?.remove();
  }
  const checks: SmfsBenchCheck[] = [];
  for (const delay of delays) {
    for (const loss of losses) {
      for (const clients of clientCounts) {
        const find = (level: AppendLevel) => rows.find((r) => r.delay_ms === delay && r.loss === loss && r.clients === clients && r.level === level);
        const [l, n, r, t] = [find('local'), find('network'), find('remote'), find('tagged')];
        if (!l || (!n && !t)) continue;
        checks.push({
          delay_ms: delay, loss, clients,
          ...(n ? {
            network_vs_local_throughput: n.mbytes_per_s / l.mbytes_per_s,
            network_vs_local_p50: n.p50_ms / l.p50_ms,
            network_vs_local_p99: n.p99_ms / l.p99_ms,
          } : {}),
          ...(r ? { remote_p50_vs_rtt: delay > 0 ? r.p50_ms / (2 * delay) : Infinity } : {}),
          ...(t ? {
            tagged_vs_local_throughput: t.mbytes_per_s / l.mbytes_per_s,
            tagged_vs_local_p50: t.p50_ms / l.p50_ms,
            tagged_vs_local_p99: t.p99_ms / l.p99_ms,
            tagged_cache_peak_vs_bdp: delay > 0 && t.bdp_bytes ? t.cache_peak_bytes! / t.bdp_bytes : Infinity,
          } : {}),
        });
      }
    }
  }
  return { rows, checks, appendKiB, blockKiB };
}

export function formatSmfsBench(rows: SmfsBenchRow[], checks: SmfsBenchCheck[], appendKiB: number, blockKiB: number): string {
  const rounds = rows[0]?.rounds ?? 1;
  const lines = [`appends of ${appendKiB} KB in ${blockKiB} KB blocks, primary hostA -> mirror hostB through both gateways, (8,3), fsync always${rounds > 1 ? `; medians of ${rounds} rounds (appends: their sum)` : ''}`,
    '  delay   loss  clients  level     appends    MB/s   p50 ms   p99 ms  errors'];
  for (const r of rows) {
    const errors = Object.entries(r.errors).map(([k, v]) => `${k}:${v}`).join(' ');
    lines.push(`  ${String(r.delay_ms).padStart(3)} ms ${(r.loss * 100).toFixed(1).padStart(5)}% ${String(r.clients).padStart(8)}  ${r.level.padEnd(8)} ${String(r.appends).padStart(8)} ${r.mbytes_per_s.toFixed(1).padStart(7)} ${r.p50_ms.toFixed(2).padStart(8)} ${r.p99_ms.toFixed(2).padStart(8)}  ${errors}`);
  }
  lines.push('', '  network vs local (target within 10%: 0.90-1.10 throughput, <= 1.10 latency); remote p50 vs one RTT (target >= 1)');
  for (const c of checks) {
    if (c.network_vs_local_throughput === undefined) continue;
    const within = c.network_vs_local_throughput >= 0.9 && c.network_vs_local_p50! <= 1.1 && c.network_vs_local_p99! <= 1.1 ? 'met' : 'missed';
    const rtt = c.remote_p50_vs_rtt === undefined ? 'not run' : Number.isFinite(c.remote_p50_vs_rtt) ? `${c.remote_p50_vs_rtt.toFixed(2)} x RTT` : 'no RTT at 0 ms';
    lines.push(`  ${String(c.delay_ms).padStart(3)} ms ${(c.loss * 100).toFixed(1).padStart(5)}% ${String(c.clients).padStart(8)}  throughput ${c.network_vs_local_throughput.toFixed(2)}  p50 ${c.network_vs_local_p50!.toFixed(2)}  p99 ${c.network_vs_local_p99!.toFixed(2)}  ${within.padEnd(6)}  remote ${rtt}`);
  }
  const tagged = checks.filter((c) => c.tagged_vs_local_throughput !== undefined);
  if (tagged.length > 0) {
    lines.push('', '  tagged vs local (target: throughput and p50 within 10%, p99 within 20%); the client cache\'s peak beside the bandwidth-delay product');
    for (const c of tagged) {
      const t = rows.find((r) => r.delay_ms === c.delay_ms && r.loss === c.loss && r.clients === c.clients && r.level === 'tagged')!;
      const within = c.tagged_vs_local_throughput! >= 0.9 && c.tagged_vs_local_p50! <= 1.1 && c.tagged_vs_local_p99! <= 1.2 ? 'met' : 'missed';
      lines.push(`  ${String(c.delay_ms).padStart(3)} ms ${(c.loss * 100).toFixed(1).padStart(5)}% ${String(c.clients).padStart(8)}  throughput ${c.tagged_vs_local_throughput!.toFixed(2)}  p50 ${c.tagged_vs_local_p50!.toFixed(2)}  p99 ${c.tagged_vs_local_p99!.toFixed(2)}  ${within.padEnd(6)}  `
        + `cache peak ${(t.cache_peak_bytes! / 1e6).toFixed(1)} MB, BDP ${(t.bdp_bytes! / 1e6).toFixed(1)} MB, ${t.cache_waits} waits`);
    }
  }
  return lines.join('\n');
}
