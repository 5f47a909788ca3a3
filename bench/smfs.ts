// SMFS append throughput and latency in the lab, per acknowledgement level (the paper's Table 2
// workload: appends of 512 KB in 4 KB blocks): a primary in hostA mirroring through both
// gateways ((8,3)) to hostB, from 1 and from 64 clients, per WAN one-way delay and loss. Each
// (delay, loss, clients) gets a fresh pair of servers, so no level inherits another's backlog.
// Prints figures and the paper's targets beside them; never passes or fails on them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab } from '../src/lab/lab';
import { startGateways } from '../src/lab/gateways';
import { labCredential, startLoad, startSmfsPair } from '../src/lab/smfs';
import type { AckLevel } from '../src/smfs/mirror';

export interface SmfsBenchOptions {
  delaysMs?: number[];
  losses?: number[];   // fractions
  clients?: number[];
  levels?: AckLevel[];
  seconds?: number;    // per figure
  appendKiB?: number;
  blockKiB?: number;
  credentials?: string; // the servers' and clients' credential file (default: one made for the run)
}

export interface SmfsBenchRow {
  delay_ms: number;
  loss: number;
  clients: number;
  level: AckLevel;
  appends: number;
  mbytes_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: Record<string, number>;
}

export interface SmfsBenchCheck {
  delay_ms: number;
  loss: number;
  clients: number;
  network_vs_local_throughput: number; // network / local
  network_vs_local_p50: number;
  network_vs_local_p99: number;
  remote_p50_vs_rtt: number;           // remote p50 / (2 x delay), Infinity at delay 0
}

const LEVELS: AckLevel[] = ['local', 'network', 'remote'];

export async function runSmfsBench(o: SmfsBenchOptions = {}): Promise<{ rows: SmfsBenchRow[]; checks: SmfsBenchCheck[]; appendKiB: number; blockKiB: number }> {
  const delays = o.delaysMs ?? [0, 25, 50, 100];
  const losses = o.losses ?? [0, 0.01];
  const clientCounts = o.clients ?? [1, 64];
  const levels = o.levels ?? LEVELS;
  const seconds = o.seconds ?? 4;
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
                for (const level of levels) {
                  const s = await startLoad(lab, credentials, { level, clients, blocks: appendKiB / blockKiB, blockSize: blockKiB * 1024, seconds, logs: 4 }).done;
                  rows.push({
                    delay_ms: delay, loss, clients, level, appends: s.appends, mbytes_per_s: s.bytes / s.seconds / 1e6,
                    p50_ms: s.latencyUs.p50 / 1000, p99_ms: s.latencyUs.p99 / 1000, errors: s.errors,
                  });
                }
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
        const find = (level: AckLevel) => rows.find((r) => r.delay_ms === delay && r.loss === loss && r.clients === clients && r.level === level);
        const [l, n, r] = [find('local'), find('network'), find('remote')];
        if (!l || !n) continue;
        checks.push({
          delay_ms: delay, loss, clients,
          network_vs_local_throughput: n.mbytes_per_s / l.mbytes_per_s,
          network_vs_local_p50: n.p50_ms / l.p50_ms,
          network_vs_local_p99: n.p99_ms / l.p99_ms,
          remote_p50_vs_rtt: r && delay > 0 ? r.p50_ms / (2 * delay) : Infinity,
        });
      }
    }
  }
  return { rows, checks, appendKiB, blockKiB };
}

export function formatSmfsBench(rows: SmfsBenchRow[], checks: SmfsBenchCheck[], appendKiB: number, blockKiB: number): string {
  const lines = [`appends of ${appendKiB} KB in ${blockKiB} KB blocks, primary hostA -> mirror hostB through both gateways, (8,3), fsync always`,
    '  delay   loss  clients  level     appends    MB/s   p50 ms   p99 ms  errors'];
  for (const r of rows) {
    const errors = Object.entries(r.errors).map(([k, v]) => `${k}:${v}`).join(' ');
    lines.push(`  ${String(r.delay_ms).padStart(3)} ms ${(r.loss * 100).toFixed(1).padStart(5)}% ${String(r.clients).padStart(8)}  ${r.level.padEnd(8)} ${String(r.appends).padStart(8)} ${r.mbytes_per_s.toFixed(1).padStart(7)} ${r.p50_ms.toFixed(2).padStart(8)} ${r.p99_ms.toFixed(2).padStart(8)}  ${errors}`);
  }
  lines.push('', '  network vs local (target within 10%: 0.90-1.10 throughput, <= 1.10 latency); remote p50 vs one RTT (target >= 1)');
  for (const c of checks) {
    const within = c.network_vs_local_throughput >= 0.9 && c.network_vs_local_p50 <= 1.1 && c.network_vs_local_p99 <= 1.1 ? 'met' : 'missed';
    const rtt = Number.isFinite(c.remote_p50_vs_rtt) ? `${c.remote_p50_vs_rtt.toFixed(2)} x RTT` : 'no RTT at 0 ms';
    lines.push(`  ${String(c.delay_ms).padStart(3)} ms ${(c.loss * 100).toFixed(1).padStart(5)}% ${String(c.clients).padStart(8)}  throughput ${c.network_vs_local_throughput.toFixed(2)}  p50 ${c.network_vs_local_p50.toFixed(2)}  p99 ${c.network_vs_local_p99.toFixed(2)}  ${within.padEnd(6)}  remote ${rtt}`);
  }
  return lines.join('\n');
}
