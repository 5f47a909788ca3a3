// Network-sync latency in the lab: 4 KB records written from hostA through both gateways to a
// record server in hostB that acknowledges each one. Per WAN one-way delay: how long a write
// waits for its network-sync promise (gateway A's feedback), how long for the remote
// acknowledgement, and the LAN ping RTT hostA -> gateway A measured in the same run; and what
// the repairs cost: gateway A's repairs per data packet, the share the idle flush fired, and how
// often its budget (--flush-budget) held it back. Per interval between records, too: the rate
// decides whether bins fill before anyone waits on them.
// Prints figures; never passes or fails on them.
import { Lab } from '../src/lab/lab';
import { withLabGateways } from '../src/lab/fixture';
import { startRecordClient, startRecordServer } from '../src/lab/records';
import { ADDRESSES } from '../src/lab/topology';
import { DEFAULTS, FLUSH_BUDGET } from '../src/fec/config';
import { NETSYNC_DEFAULTS } from '../src/gateway/gateway';

export interface FeedbackBenchOptions {
  delaysMs?: number[];
  records?: number;     // per delay and interval
  intervalsMs?: number[];  // between records (setTimeout: below 1 ms is 1 ms; 0: back to back)
  flushTimeoutMs?: number;
  flushIdleUs?: number;
  flushBudget?: number;  // the gateways' --flush-budget (default theirs)
}

export interface FeedbackBenchRow {
  delay_ms: number;
  interval_ms: number;
  records: number;
  records_per_s: number;      // as written (a 4 KB record is 3 TCP segments)
  netsync_p50_us: number;
  netsync_p99_us: number;
  lan_rtt_us: number;
  remote_ack_ms: number;      // p50
  remote_ack_p99_ms: number;
  target_us: number;          // 2 x LAN RTT + 0.1 ms
  repairs_per_packet: number; // gateway A, during this delay's records (c / r = 0.375 at (8,3))
  idle_flushed_share: number; // of those repairs, the share the idle flush fired
  idle_deferred: number;      // idle flushes the budget cut short
}

export interface FeedbackBench {
  rows: FeedbackBenchRow[];
  flushTimeoutMs: number;
  flushIdleUs: number;
  flushBudget: number;
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

// Median ping RTT hostA -> gateway A's LAN address, in microseconds.
function lanRttUs(lab: Lab): number {
  const out = lab.exec(lab.ns.hostA, ['ping', '-c', '50', '-i', '0.01', ADDRESSES.gwALan]);
  const times = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  return quantile(times, 0.5);
}

export async function runFeedbackBench(o: FeedbackBenchOptions = {}): Promise<FeedbackBench> {
  const delays = o.delaysMs ?? [0, 25, 50, 100];
  const records = o.records ?? 400;
  const intervals = o.intervalsMs ?? [5];
  const flushTimeoutMs = o.flushTimeoutMs ?? DEFAULTS.flushTimeoutMs;
  const flushIdleUs = o.flushIdleUs ?? NETSYNC_DEFAULTS.flushIdleUs;
  const flushBudget = o.flushBudget ?? FLUSH_BUDGET.perS;
  const warmupBytes = 1 << 20;
  const extra = ['--flush-timeout', String(flushTimeoutMs), '--flush-idle', String(flushIdleUs), '--flush-budget', String(flushBudget)];
  const { result: rows } = await withLabGateways({ delayMs: 0 }, { extra }, async ({ lab, gw }) => {
    // Gateway A's counters now: its next stats line, so the figures are this row's alone.
    const countersNow = async () => {
      const s = (await gw.a.nextStats())!;
      return { packets: s.lanToWanPackets, repairs: s.repairsSent, idle: s.repairsIdleFlushed, deferred: s.idleFlushDeferred };
    };
    const rows: FeedbackBenchRow[] = [];
    let port = 5040;
    for (const delay of delays) {
      await lab.wan.set({ delayMs: delay });
      const lan = lanRttUs(lab);
      for (const intervalMs of intervals) {
        port++;
        const server = await startRecordServer(lab, port, { ack: true, skipBytes: warmupBytes });
        const client = startRecordClient(lab, { port, records, intervalMs, warmupBytes, remoteAcks: true, timeoutMs: 60_000 });
        const before = await countersNow();
        const done = await client.done;
        const after = await countersNow();
        server.stop();
        if (done.resolved !== records) throw new Error(`only ${done.resolved} of ${records} network-sync promises resolved at ${delay} ms, ${intervalMs} ms apart`);
        const lat = (level: string) => client.acks.filter((a) => a.level === level).map((a) => Number(a.ackedNs - a.writtenNs) / 1000).sort((a, b) => a - b);
        const written = client.acks.filter((a) => a.level === 'network').map((a) => a.writtenNs).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        const net = lat('network');
        const remote = lat('remote');
        rows.push({
          delay_ms: delay,
          interval_ms: intervalMs,
          records,
          records_per_s: (records - 1) / Math.max(1e-6, Number(written[written.length - 1] - written[0]) / 1e9),
          netsync_p50_us: quantile(net, 0.5),
          netsync_p99_us: quantile(net, 0.99),
          lan_rtt_us: lan,
          remote_ack_ms: quantile(remote, 0.5) / 1000,
          remote_ack_p99_ms: quantile(remote, 0.99) / 1000,
          target_us: 2 * lan + 100,
          repairs_per_packet: (after.repairs - before.repairs) / Math.max(1, after.packets - before.packets),
          idle_flushed_share: (after.idle - before.idle) / Math.max(1, after.repairs - before.repairs),
          idle_deferred: after.deferred - before.deferred,
        });
      }
    }
    return rows;
  });
  return { rows, flushTimeoutMs, flushIdleUs, flushBudget };
}

export function formatFeedbackBench(b: FeedbackBench): string {
  const lines = [`4 KB records hostA -> hostB through both gateways, (8,3), flush timeout ${b.flushTimeoutMs} ms x interleave, idle flush ${b.flushIdleUs} us, flush budget ${b.flushBudget}/s`,
    '  delay  apart   records/s   network-sync p50 / p99 (us)   LAN RTT (us)   target p99 (us)   remote ack p50 / p99 (ms)   repairs/packet (idle-flushed, deferred)'];
  for (const r of b.rows) {
    const meets = r.netsync_p99_us <= r.target_us ? 'met' : 'missed';
    lines.push(`  ${String(r.delay_ms).padStart(3)} ms ${String(r.interval_ms).padStart(4)} ms ${r.records_per_s.toFixed(0).padStart(9)}   ${r.netsync_p50_us.toFixed(0).padStart(12)} / ${r.netsync_p99_us.toFixed(0).padEnd(12)}   ${r.lan_rtt_us.toFixed(0).padStart(12)}   ${r.target_us.toFixed(0).padStart(9)} ${meets.padEnd(6)}   ${r.remote_ack_ms.toFixed(2).padStart(10)} / ${r.remote_ack_p99_ms.toFixed(2).padEnd(8)}   ${r.repairs_per_packet.toFixed(2)} (${(r.idle_flushed_share * 100).toFixed(0)}%, ${r.idle_deferred})`);
  }
  lines.push('  target: network-sync p99 <= 2 x LAN RTT + 0.1 ms at every delay; remote ack grows with the RTT; repairs/packet <= 1.1 x c/r = 0.41 from 1,000 packets/s up');
  return lines.join('\n');
}
