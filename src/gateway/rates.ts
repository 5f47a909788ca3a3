// What a gateway did between two snapshots of its counters: totals, rates per second and the
// gauges, as `maelstrom stats` shows them (fields in docs/gateway.md, "Stats"). Pure: no I/O.
//
// A counter lower in the second snapshot than in the first has been reset (the gateway restarted
// between them, or a counter wrapped): its increase is taken to be its new value, counted from
// zero, as Prometheus' rate() does. A rate is never negative.
import { AUTH_VERDICTS } from '../native/addon';
import type { AuthVerdict, EngineStats, GatewayXdpStats } from '../native/addon';

export interface StatsSample {
  stats: EngineStats;
  atNs: bigint; // when the answer came, on a monotonic clock
}

// Feedback latency from the engine, when it reports it (netsync.safeLatencyUs).
export interface SafeLatency {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

type XdpName = keyof GatewayXdpStats;
type AuthName = AuthVerdict | 'unverifiable';
const AUTH_NAMES: AuthName[] = [...AUTH_VERDICTS, 'unverifiable'];

export interface StatsReport {
  intervalS: number;
  counterResets: number;
  lanToWan: {
    packets: number; packetsPerS: number; bytes: number; gbitPerS: number;
    repairsSent: number; repairsSentPerS: number; repairGbitPerS: number;
    repairsFlushed: number; repairsFlushedPerS: number;
    unprotected: number; unprotectedPerS: number;
  };
  wanToLan: {
    packets: number; packetsPerS: number; bytes: number; gbitPerS: number;
    repairsReceived: number; repairsReceivedPerS: number;
    recovered: number; recoveredPerS: number;
    unrecoverable: number; unrecoverablePerS: number;
    malformed: number; malformedPerS: number;
  };
  txDropped: number;
  txDroppedPerS: number;
  decoder: {
    window: number; windowCapacity: number | null; windowOccupancy: number | null;
    pending: number; pendingCapacity: number | null;
  };
  netsync: {
    flows: number;
    feedbackDatagrams: number; feedbackDatagramsPerS: number;
    safeLatencyUs: SafeLatency | null;
  };
  xdp: Record<XdpName | `${XdpName}PerS`, number>;
  // The peer's datagrams by the authentication envelope's verdict (all 0 from a gateway without a key).
  auth: Record<AuthName | `${AuthName}PerS`, number>;
}

// The increase of a counter between two readings; a reset counts from zero.
export function increase(before: number, after: number): number {
  return after >= before ? after - before : after;
}

function optional(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function safeLatency(v: unknown): SafeLatency | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  const p50 = optional(o.p50);
  const p99 = optional(o.p99);
  const max = optional(o.max);
  const count = optional(o.count);
  // No record safe yet: no latency to show.
  return p50 === null || p99 === null || max === null || !count ? null : { p50, p99, max, count };
}

export function statsRates(first: StatsSample, second: StatsSample): StatsReport {
  const intervalS = Number(second.atNs - first.atNs) / 1e9;
  if (!(intervalS > 0)) throw new RangeError(`the second snapshot must be later than the first (${intervalS} s apart)`);
  let counterResets = 0;
  const delta = (before: number, after: number) => {
    if (after < before) counterResets++;
    return increase(before, after);
  };
  const perS = (before: number, after: number) => delta(before, after) / intervalS;
  const gbitPerS = (before: number, after: number) => (delta(before, after) * 8) / intervalS / 1e9;
  const a = first.stats;
  const b = second.stats;

  const xdp = {} as StatsReport['xdp'];
  for (const name of Object.keys(b.xdp) as XdpName[]) {
    xdp[name] = b.xdp[name];
    xdp[`${name}PerS`] = perS(a.xdp[name] ?? 0, b.xdp[name]);
  }
  const auth = {} as StatsReport['auth'];
  for (const name of AUTH_NAMES) {
    auth[name] = b.auth?.[name] ?? 0;
    auth[`${name}PerS`] = perS(a.auth?.[name] ?? 0, auth[name]);
  }
  const windowCapacity = optional(b.decoderWindowCapacity);
  const report: StatsReport = {
    intervalS,
    counterResets: 0, // set below, once every counter has been compared
    lanToWan: {
      packets: b.lanToWanPackets,
      packetsPerS: perS(a.lanToWanPackets, b.lanToWanPackets),
      bytes: b.lanToWanBytes,
      gbitPerS: gbitPerS(a.lanToWanBytes, b.lanToWanBytes),
      repairsSent: b.repairsSent,
      repairsSentPerS: perS(a.repairsSent, b.repairsSent),
      repairGbitPerS: gbitPerS(a.repairBytesSent, b.repairBytesSent),
      repairsFlushed: b.repairsFlushed,
      repairsFlushedPerS: perS(a.repairsFlushed, b.repairsFlushed),
      unprotected: b.unprotected,
      unprotectedPerS: perS(a.unprotected, b.unprotected),
    },
    wanToLan: {
      packets: b.wanToLanPackets,
      packetsPerS: perS(a.wanToLanPackets, b.wanToLanPackets),
      bytes: b.wanToLanBytes,
      gbitPerS: gbitPerS(a.wanToLanBytes, b.wanToLanBytes),
      repairsReceived: b.repairsReceived,
      repairsReceivedPerS: perS(a.repairsReceived, b.repairsReceived),
      recovered: b.recovered,
      recoveredPerS: perS(a.recovered, b.recovered),
      unrecoverable: b.unrecoverable,
      unrecoverablePerS: perS(a.unrecoverable, b.unrecoverable),
      malformed: b.malformed,
      malformedPerS: perS(a.malformed, b.malformed),
    },
    txDropped: b.txDropped,
    txDroppedPerS: perS(a.txDropped, b.txDropped),
    decoder: {
      window: b.decoderWindow,
      windowCapacity,
      windowOccupancy: windowCapacity ? b.decoderWindow / windowCapacity : null,
      pending: b.decoderPending,
      pendingCapacity: optional(b.decoderPendingCapacity),
    },
    netsync: {
      flows: b.netsync.flows,
      feedbackDatagrams: b.netsync.feedbackDatagrams,
      feedbackDatagramsPerS: perS(a.netsync.feedbackDatagrams, b.netsync.feedbackDatagrams),
      safeLatencyUs: safeLatency((b.netsync as unknown as Record<string, unknown>).safeLatencyUs),
    },
    xdp,
    auth,
  };
  report.counterResets = counterResets;
  return report;
}
