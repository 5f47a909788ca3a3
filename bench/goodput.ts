// Goodput against what users run today: one lab (a rate-limited WAN, hosts at the kernel's TCP
// defaults with their offloads as the kernel sets them), and in it, at every loss, a TCP transfer
// hostA -> hostB over the plain WAN with cubic and with BBR, then the same through both gateways
// at their defaults ((8,3)), then through both gateways with --auto. Goodput is what the receiver
// got in a window after slow start; each gateway row beside plain BBR at the same loss, with the
// repairs per data packet and the code (r,c) in effect, and what the WAN delivered to site B (the
// link's use, and the share of it that was the hosts' payload). Prints figures; never passes or
// fails on them.
import type { EngineStats } from '../src/native/addon';
import type { EpochRecord } from '../src/gateway/gateway';
import { request } from '../src/gateway/control';
import { withGateways, withLab } from '../src/lab/fixture';
import type { GatewayProcess } from '../src/lab/gateways';
import type { Lab } from '../src/lab/lab';
import { tcpTransfer } from '../src/lab/runs';
import { ADDRESSES, kernelDefaultTcp } from '../src/lab/topology';
import { defaultQueueBytes } from '../src/lab/wan';

export const GOODPUT_DEFAULTS = { lossesPct: [0, 0.1, 1, 3], delayMs: 25, rateMbit: 100, seconds: 15, omitSeconds: 10 } as const;

export type HostCc = 'cubic' | 'bbr';
export type Path = 'plain' | 'gateways' | 'auto';
export const ROWS: { path: Path; cc: HostCc; name: string }[] = [
  { path: 'plain', cc: 'cubic', name: 'plain TCP, cubic' },
  { path: 'plain', cc: 'bbr', name: 'plain TCP, BBR' },
  { path: 'gateways', cc: 'cubic', name: 'gateways (8,3), cubic hosts' },
  { path: 'gateways', cc: 'bbr', name: 'gateways (8,3), BBR hosts' },
  { path: 'auto', cc: 'cubic', name: 'gateways --auto, cubic hosts' },
  { path: 'auto', cc: 'bbr', name: 'gateways --auto, BBR hosts' },
];

export interface GoodputBenchOptions {
  lossesPct?: number[];  // percent, both directions
  delayMs?: number;      // one way
  rateMbit?: number;
  seconds?: number;      // the measured window, per point
  omitSeconds?: number;  // before it: slow start, and --auto finding its code
  flushIdleUs?: number;  // the gateways' idle flush (default theirs)
  autoArgs?: string[];   // more for the --auto gateways (e.g. --target 1e-5)
}

export interface GoodputPoint {
  path: Path;
  cc: HostCc;
  loss_pct: number;
  goodput_mbps: number;       // what hostB's receiver got in the window
  intact: boolean;            // the whole transfer's sha256 matched
  retrans_per_1000: number;   // hostA's TCP retransmissions per 1000 segments sent, whole transfer
  link_mbps: number;          // what the WAN delivered towards site B in the window: frames, every header and repair
  payload_share: number;      // goodput / link
  tail_drops: number;         // frames towards B the bottleneck queue dropped in the window (besides the loss)
  late_share: number;         // of the frames it delivered, those more than 0.1 ms late (the delay line's fidelity)
  vs_plain_bbr?: number;      // goodput / plain BBR's at this loss
  // The gateway rows:
  r?: number;
  c?: string;                 // c in effect in the window: one value, or first..last with --auto's changes
  repairs_per_packet?: number; // gateway A, in the window
  idle_flushed_share?: number; // of those repairs, the share the idle flush fired
  recovered_per_1000?: number; // packets gateway B rebuilt per 1000 data packets gateway A forwarded
  // BBR through the gateways beside plain BBR scaled by the payload share: at or above 1, the
  // gateways cost a BBR host no more than their overhead.
  bbr_vs_overhead?: number;
}

export interface GoodputBench {
  delay_ms: number;
  rate_mbit: number;
  seconds: number;
  omit_seconds: number;
  flush_idle_us?: number;
  auto_args: string[];
  points: GoodputPoint[];
}

interface Counters { link: { bytes: number; packets: number; tailDrops: number; late: number }; stats?: EngineStats; b?: EngineStats; code?: { r: number; c: number; epochs: EpochRecord[] } }

function tcpSnmp(lab: Lab): { out: number; retrans: number } {
  const lines = lab.exec(lab.ns.hostA, ['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/).map(Number);
  return { out: values[names.indexOf('OutSegs')], retrans: values[names.indexOf('RetransSegs')] };
}

async function snapshot(lab: Lab, gw?: { a: GatewayProcess; b: GatewayProcess }): Promise<Counters> {
  const d = (await lab.wan.status()).delay.aToB;
  const link = { bytes: d.bytes, packets: d.packets, tailDrops: d.tailDrops, late: d.lateOver100us };
  if (!gw) return { link };
  const status = await request(gw.a.control, { cmd: 'status' });
  return { link, stats: gw.a.latest(), b: gw.b.latest(), code: { r: status.r as number, c: status.c as number, epochs: status.epochs as EpochRecord[] } };
}

// One transfer of omit + window + 1 seconds; the counters around the window are taken when the
// receiver opens and closes it (within a few milliseconds, and the stats lines' 0.2 s).
async function measure(lab: Lab, o: Required<Pick<GoodputBenchOptions, 'seconds' | 'omitSeconds'>>, port: number, gw?: { a: GatewayProcess; b: GatewayProcess }) {
  const before = tcpSnmp(lab);
  const marks: Promise<Counters>[] = [];
  const onMark = () => {
    const mark = snapshot(lab, gw);
    mark.catch(() => undefined); // awaited below; a failure meanwhile is not an unhandled rejection
    marks.push(mark);
  };
  const { sent, got } = await tcpTransfer(lab, { omit: o.omitSeconds, window: o.seconds, onMark }, port, (o.omitSeconds + o.seconds) * 1000 + 60_000);
  const after = tcpSnmp(lab);
  if (marks.length !== 2 || got.windowBytes === undefined) throw new Error(`the receiver on port ${port} did not measure its window: ${JSON.stringify(got)}`);
  const [start, end] = await Promise.all(marks);
  const seconds = Number(got.windowSeconds);
  const goodput = Number(got.windowBytes) * 8 / seconds / 1e6;
  const link = (end.link.bytes - start.link.bytes) * 8 / seconds / 1e6;
  const frames = end.link.packets - start.link.packets;
  const out = after.out - before.out;
  return { goodput, intact: got.sha256 === sent.sha256 && Number(got.bytes) === Number(sent.bytes), retransPer1000: out > 0 ? (after.retrans - before.retrans) * 1000 / out : 0,
    link, tailDrops: end.link.tailDrops - start.link.tailDrops, lateShare: (end.link.late - start.link.late) / Math.max(1, frames), start, end };
}

function codeIn(start: Counters, end: Counters): { r: number; c: string } {
  const at = start.code!;
  const changes = end.code!.epochs.filter((e) => e.epoch > at.epochs[at.epochs.length - 1].epoch);
  const cs = [at.c, ...changes.map((e) => e.c)];
  return { r: end.code!.r, c: cs.length === 1 ? String(cs[0]) : cs.join('>') };
}

export async function runGoodputBench(options: GoodputBenchOptions = {}, progress: (p: GoodputPoint) => void = () => undefined): Promise<GoodputBench> {
  const o = { ...GOODPUT_DEFAULTS, autoArgs: [] as string[], ...options };
  const points: GoodputPoint[] = [];
  const settings = { delayMs: o.delayMs, rateMbit: o.rateMbit, queueBytes: defaultQueueBytes(o.rateMbit, o.delayMs), realtime: true, hostOffloads: true };
  await withLab(settings, async (lab) => {
    lab.exec(lab.ns.hostA, ['ping', '-c', '2', '-i', '0.1', '-q', ADDRESSES.hostB], { allowFail: true });
    let port = 5400;
    const runPath = async (path: Path, gw?: { a: GatewayProcess; b: GatewayProcess }) => {
      for (const lossPct of o.lossesPct) {
        await lab.wan.set({ loss: lossPct / 100 });
        for (const row of ROWS.filter((r) => r.path === path)) {
          kernelDefaultTcp(lab.topology, row.cc);
          // The kernel's default saves each connection's metrics (ssthresh, RTT) for the next to
          // the same host; every point starts as a fresh host's first connection instead.
          for (const ns of [lab.ns.hostA, lab.ns.hostB]) lab.exec(ns, ['ip', 'tcp_metrics', 'flush', 'all'], { allowFail: true });
          const m = await measure(lab, o, port++, gw);
          const point: GoodputPoint = {
            path, cc: row.cc, loss_pct: lossPct, goodput_mbps: m.goodput, intact: m.intact, retrans_per_1000: m.retransPer1000,
            link_mbps: m.link, payload_share: m.goodput / m.link, tail_drops: m.tailDrops, late_share: m.lateShare,
          };
          if (gw) {
            const a0 = m.start.stats!, a1 = m.end.stats!, b0 = m.start.b!, b1 = m.end.b!;
            const packets = a1.lanToWanPackets - a0.lanToWanPackets;
            const repairs = a1.repairsSent - a0.repairsSent;
            Object.assign(point, codeIn(m.start, m.end), {
              repairs_per_packet: repairs / Math.max(1, packets),
              idle_flushed_share: (a1.repairsIdleFlushed - a0.repairsIdleFlushed) / Math.max(1, repairs),
              recovered_per_1000: (b1.recovered - b0.recovered) * 1000 / Math.max(1, packets),
            });
          }
          points.push(point);
          progress(point);
        }
      }
    };
    const flush = o.flushIdleUs === undefined ? [] : ['--flush-idle', String(o.flushIdleUs)];
    await runPath('plain');
    await withGateways(lab, { extra: flush }, (gw) => runPath('gateways', gw));
    await withGateways(lab, { extra: [...flush, '--auto', ...o.autoArgs] }, (gw) => runPath('auto', gw));
  });
  for (const p of points) {
    const bbr = points.find((q) => q.path === 'plain' && q.cc === 'bbr' && q.loss_pct === p.loss_pct)!;
    p.vs_plain_bbr = p.goodput_mbps / bbr.goodput_mbps;
    if (p.path !== 'plain' && p.cc === 'bbr') p.bbr_vs_overhead = p.goodput_mbps / (bbr.goodput_mbps * p.payload_share / bbr.payload_share);
  }
  return { delay_ms: o.delayMs, rate_mbit: o.rateMbit, seconds: o.seconds, omit_seconds: o.omitSeconds, flush_idle_us: o.flushIdleUs, auto_args: o.autoArgs, points };
}

export function formatGoodputPoint(p: GoodputPoint): string {
  const name = ROWS.find((r) => r.path === p.path && r.cc === p.cc)!.name;
  const gw = p.c === undefined ? '' : `   (${p.r},${p.c}) ${p.repairs_per_packet!.toFixed(3)} repairs/pkt (${(p.idle_flushed_share! * 100).toFixed(0)}% idle-flushed), ${p.recovered_per_1000!.toFixed(1)} rebuilt/1000`;
  return `  ${String(p.loss_pct).padStart(4)}%  ${name.padEnd(30)} ${p.goodput_mbps.toFixed(1).padStart(6)}  ${p.vs_plain_bbr === undefined ? '' : p.vs_plain_bbr.toFixed(2).padStart(5)}  ${p.link_mbps.toFixed(1).padStart(6)}  ${p.payload_share.toFixed(3)}  ${p.retrans_per_1000.toFixed(2).padStart(7)}  ${String(p.tail_drops).padStart(6)}  ${(p.late_share * 100).toFixed(1).padStart(5)}%${p.intact ? '' : '  NOT INTACT'}${gw}`;
}

export function goodputHeader(b: Pick<GoodputBench, 'rate_mbit' | 'delay_ms' | 'seconds' | 'omit_seconds' | 'flush_idle_us' | 'auto_args'>): string {
  return [
    `TCP hostA -> hostB, ${b.rate_mbit} Mbit/s WAN, ${b.delay_ms} ms one way, hosts at kernel defaults (cubic or BBR, tcp_reordering 3, offloads on); goodput over ${b.seconds} s after ${b.omit_seconds} s`,
    `  gateways at their defaults${b.flush_idle_us === undefined ? '' : `, --flush-idle ${b.flush_idle_us}`}; --auto${b.auto_args.length ? ' ' + b.auto_args.join(' ') : ''} as maelstrom up takes it`,
    '   loss  path                           Mbit/s  /BBR   link  payload  retrans/1000  tail drops  late   gateway A: (r,c) in the window, repairs per data packet; B: rebuilt per 1000',
  ].join('\n');
}

export function formatGoodputBench(b: GoodputBench): string {
  const lines = [goodputHeader(b)];
  for (const p of b.points) lines.push(formatGoodputPoint(p));
  lines.push('  /BBR: goodput over plain BBR at the same loss. link: Mbit/s the WAN delivered to site B (frames, repairs included); payload: goodput / link;');
  lines.push('  tail drops: frames to B the bottleneck queue dropped; late: frames delivered over 0.1 ms late (the emulator\'s fidelity).');
  const bbrOver = b.points.filter((p) => p.bbr_vs_overhead !== undefined).map((p) => `${p.path === 'auto' ? '--auto' : '(8,3)'} ${p.loss_pct}% ${p.bbr_vs_overhead!.toFixed(2)}`);
  lines.push(`  BBR through the gateways over plain BBR x (their payload share / plain's), 1 = costs exactly the overhead: ${bbrOver.join(', ')}`);
  lines.push('  target (issue 17): --auto with cubic hosts >= 0.9 x plain BBR at 0-1% loss; BBR hosts lose no more than the overhead');
  return lines.join('\n');
}
