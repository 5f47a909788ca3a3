// `maelstrom stats`: a running gateway's counters as rates, like xdp-bench. Asks the control
// socket for two snapshots an interval apart, prints what happened between them (src/gateway/rates.ts),
// and with --watch or --count goes on doing so.
import { ConfigError } from '../errors';
import { request } from '../gateway/control';
import { statsRates } from '../gateway/rates';
import type { StatsReport, StatsSample } from '../gateway/rates';
import type { EngineStats } from '../native/addon';

export const STATS_INTERVAL_S = 1;

export interface StatsOptions {
  control: string;
  intervalS: number;
  count: number; // intervals to print; Infinity: until stopped
  json: boolean;
  write(text: string): void;
  stop: AbortSignal; // SIGINT: finish quietly after the interval in hand
}

async function sample(path: string): Promise<StatsSample> {
  const stats = (await request(path, { cmd: 'stats' })) as unknown as EngineStats;
  return { stats, atNs: process.hrtime.bigint() };
}

// Resolves after ms, or at once when stop fires.
function pause(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (stop.aborted) return resolve();
    const done = () => { clearTimeout(timer); stop.removeEventListener('abort', done); resolve(); };
    const timer = setTimeout(done, Math.max(0, ms));
    stop.addEventListener('abort', done);
  });
}

export function checkStatsOptions(o: { watch?: boolean | number; count?: number }): { intervalS: number; count: number } {
  const intervalS = typeof o.watch === 'number' ? o.watch : STATS_INTERVAL_S;
  if (!(intervalS >= 0.05 && intervalS <= 3600)) throw new ConfigError(`--watch takes an interval from 0.05 to 3600 seconds, got ${intervalS}`);
  if (o.count !== undefined && o.count < 1) throw new ConfigError(`--count takes a number of intervals, at least 1, got ${o.count}`);
  return { intervalS, count: o.count ?? (o.watch === undefined ? 1 : Infinity) };
}

export async function runStats(o: StatsOptions): Promise<void> {
  if (!o.json) {
    const s = await request(o.control, { cmd: 'status' });
    o.write(`gateway pid ${s.pid}: LAN ${s.lan} <-> WAN ${s.wan}, code (r=${s.r}, c=${s.c}), every ${o.intervalS} s${o.count === Infinity ? ' until Ctrl-C' : ''}\n`);
  }
  let previous = await sample(o.control);
  const startNs = previous.atNs;
  for (let n = 1; n <= o.count; n++) {
    // Steady cadence: the next snapshot is due n intervals after the first, whatever the requests took.
    await pause(Number(startNs + BigInt(Math.round(n * o.intervalS * 1e9)) - process.hrtime.bigint()) / 1e6, o.stop);
    if (o.stop.aborted) return;
    const current = await sample(o.control);
    const report = { time: new Date().toISOString(), ...statsRates(previous, current) };
    o.write(o.json ? JSON.stringify(report) + '\n' : formatStats(report));
    previous = current;
  }
}

const count = (x: number) => Math.round(x).toLocaleString('en-US');
const rate = (x: number) => (x >= 100 || x === 0 ? count(x) : x.toFixed(1));
const gbit = (x: number) => x.toFixed(3);
const col = (text: string, width: number) => text.padStart(width);

export function formatStats(r: StatsReport & { time: string }): string {
  const l = r.lanToWan;
  const w = r.wanToLan;
  const d = r.decoder;
  const ns = r.netsync;
  const of = (x: number, cap: number | null) => (cap === null ? count(x) : `${count(x)} of ${count(cap)}`);
  const latency = ns.safeLatencyUs
    ? `p50 ${count(ns.safeLatencyUs.p50)} us  p99 ${count(ns.safeLatencyUs.p99)} us  max ${count(ns.safeLatencyUs.max)} us (${count(ns.safeLatencyUs.count)})`
    : 'n/a';
  const xdp = Object.keys(r.xdp)
    .filter((k) => !k.endsWith('PerS'))
    .filter((k) => r.xdp[k as keyof StatsReport['xdp']] > 0)
    .map((k) => `${k} ${rate(r.xdp[`${k}PerS` as keyof StatsReport['xdp']])}/s (${count(r.xdp[k as keyof StatsReport['xdp']])})`);
  const lines = [
    `${r.time.slice(11, 23)}  over ${r.intervalS.toFixed(3)} s${r.counterResets ? `  (${r.counterResets} counters went back: the gateway restarted)` : ''}`,
    `  LAN->WAN  ${col(rate(l.packetsPerS), 12)} pkt/s ${col(gbit(l.gbitPerS), 8)} Gbit/s   repairs sent ${rate(l.repairsSentPerS)}/s (${gbit(l.repairGbitPerS)} Gbit/s, flushed ${rate(l.repairsFlushedPerS)}/s)   unprotected ${rate(l.unprotectedPerS)}/s`,
    `  WAN->LAN  ${col(rate(w.packetsPerS), 12)} pkt/s ${col(gbit(w.gbitPerS), 8)} Gbit/s   repairs received ${rate(w.repairsReceivedPerS)}/s   recovered ${rate(w.recoveredPerS)}/s (${count(w.recovered)})`,
    `            unrecoverable ${rate(w.unrecoverablePerS)}/s (${count(w.unrecoverable)})   malformed ${rate(w.malformedPerS)}/s (${count(w.malformed)})   TX dropped ${rate(r.txDroppedPerS)}/s (${count(r.txDropped)})`,
    `  decoder   window ${of(d.window, d.windowCapacity)}${d.windowOccupancy === null ? '' : ` (${(d.windowOccupancy * 100).toFixed(1)}%)`}   pending repairs ${of(d.pending, d.pendingCapacity)}`,
    `  netsync   flows ${count(ns.flows)}   feedback ${rate(ns.feedbackDatagramsPerS)} datagrams/s   safe latency ${latency}`,
  ];
  const refused = Object.keys(r.auth)
    .filter((k) => !k.endsWith('PerS') && k !== 'ok' && r.auth[k as keyof StatsReport['auth']] > 0)
    .map((k) => `${k} ${rate(r.auth[`${k}PerS` as keyof StatsReport['auth']])}/s (${count(r.auth[k as keyof StatsReport['auth']])})`);
  lines.push(`  auth      peer datagrams opened ${rate(r.auth.okPerS)}/s (${count(r.auth.ok)})   ${refused.length ? `REFUSED ${refused.join('   ')}` : 'refused 0'}`);
  if (!xdp.length) lines.push('  XDP       all counters 0');
  for (let i = 0; i < xdp.length; i += 3) lines.push(`  ${i ? '         ' : 'XDP      '} ${xdp.slice(i, i + 3).join('   ')}`);
  return lines.join('\n') + '\n';
}
