#!/usr/bin/env node
// maelstrom: the gateway's command line: up, down, status, watch, tune, rekey, keygen, model, bench.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { runModel } from '../model/redundancy';
import type { ModelReport } from '../model/redundancy';
import { DEFAULTS, FLUSH_BUDGET, LIMITS, defaultInterleaves, defaultWindow } from '../fec/config';
import { FEEDBACK_PORT, NETSYNC_DEFAULTS, REORDER_GRACE_US, REPAIR_PORT, detachGateway, requireRoot } from '../gateway/gateway';
import type { EpochRecord, TuneRequest } from '../gateway/gateway';
import type { AuthState, EngineStats } from '../native/addon';
import { AUTO_DEFAULTS } from '../gateway/auto';
import type { AutoOptions } from '../gateway/auto';
import { control, controlPathState, defaultControlPath, request } from '../gateway/control';
import { feedbackKeyOf, formatKeyFile, newMasterKey, readKeyFile } from '../gateway/keys';
import { parseMetricsAddress } from '../gateway/metrics';
import type { MetricsAddress } from '../gateway/metrics';
import { runGateway } from '../gateway/run';
import { withLogger } from '../log';
import type { Logger } from '../log';
import { readConfigFile, withConfigFile } from './config';
import { announceUp, isDaemonChild, relayFailure, startDaemon, stopDaemon } from './daemon';
import { decimal, decimalList, integer, integerList } from './parse';
import { defaultLogPath, defaultPidPath } from '../gateway/pid-file';
import { run } from './run';
import { STATS_INTERVAL_S, checkStatsOptions, runStats } from './stats';
import { ConfigError } from '../errors';

const { version } = require('../../../package.json') as { version: string };

function formatModel(m: ModelReport): string {
  const e = (x: number) => x.toExponential(2);
  const loss = m.burstLength > 1 ? `${(m.loss * 100).toFixed(3)}% in bursts of ${m.burstLength} (Gilbert-Elliott)` : `${(m.loss * 100).toFixed(3)}% iid`;
  const lines = [
    `layered interleaving (r=${m.r}, c=${m.c}), interleaves ${m.interleaves.join(',')}, overhead ${(m.overhead * 100).toFixed(1)}%`,
    `loss ${loss}`,
    `P(lost packet unrecoverable):`,
    `  closed form (1-(1-p)^r)^c   ${e(m.bound)}${m.burstLength > 1 ? '   (assumes iid loss: not a bound here)' : ''}`,
    `  simulated, real codec       ${e(m.simulated)}   (${m.unrecovered} of ${m.dataLost} lost packets, 95% upper ${e(m.simulatedUpper95)}; ${m.packets} packets)`,
    `risk for a packet in flight if the site fails now, by repairs already sent:`,
    ...m.inFlight.map((f) => `  ${f.repairsSent} of ${m.c} repairs sent     ${e(f.risk)}`),
  ];
  return lines.join('\n');
}

// --r, --c and --interleaves, shared by every command that takes a code.
function withCode(command: Command): Command {
  return command
    .option('--r <n>', 'data packets per repair', integer('--r'), DEFAULTS.r)
    .option('--c <n>', 'repairs per data packet (layers); default: the number of interleaves', integer('--c'))
    .option('--interleaves <list>', 'interleave of each layer, comma-separated (default 1,10,100 or 1,10,...,10^(c-1))', integerList('--interleaves'));
}

const program = new Command('maelstrom')
  .description('Maelstrom network-sync gateway: layered-interleaving FEC between datacenters')
  .version(version);

withCode(program
  .command('model')
  .description('How likely a lost packet stays lost at (r, c): closed form and a Monte Carlo run of the real codec'))
  .requiredOption('--loss <p>', 'packet loss probability, e.g. 0.01 for 1%', decimal('--loss'))
  .option('--burst-length <n>', 'mean loss burst in packets (Gilbert-Elliott); 1 = iid', decimal('--burst-length'), 1)
  .option('--packets <n>', 'data packets to simulate', integer('--packets'), 1_000_000)
  .option('--seed <n>', 'random seed of the simulation', integer('--seed'), 1)
  .option('--json', 'print one JSON object (fields in docs/cli.md)')
  .addHelpText('after', `
Examples:
  maelstrom model --r 8 --c 3 --interleaves 1,10,100 --loss 0.01
  maelstrom model --loss 0.01 --burst-length 20 --json`)
  .action((o: { r: number; c?: number; interleaves?: number[]; loss: number; burstLength: number; packets: number; seed: number; json?: boolean }) => {
    const m = runModel({ r: o.r, c: o.c, interleaves: o.interleaves, loss: o.loss, burstLength: o.burstLength, packets: o.packets, seed: o.seed });
    if (o.json) {
      const { simulation, ...rest } = m;
      process.stdout.write(JSON.stringify({ ...rest, decoder: simulation.decoder }) + '\n');
    } else {
      process.stdout.write(formatModel(m) + '\n');
    }
  });

const bench = program.command('bench').description('Benchmarks that print figures (never pass/fail)');

withCode(bench
  .command('codec')
  .description('Encode and decode throughput on one core beside memcpy of the same stream'))
  .option('--packet-length <bytes>', 'packet length', integer('--packet-length'), 1500)
  .option('--loss <p>', 'loss applied to the decoder\'s stream', decimal('--loss'), 0.01)
  .option('--pool <packets>', 'distinct packets cycled through (default 65536, ~98 MB at 1500 bytes)', integer('--pool'), 65536)
  .option('--seconds <s>', 'minimum time per figure', decimal('--seconds'), 0.5)
  .option('--json', 'print one JSON object: encode_GBps, encode_sealed_GBps, decode_GBps, memcpy_GBps, ... (docs/cli.md)')
  .action(async (o: { r: number; c?: number; interleaves?: number[]; packetLength: number; loss: number; pool: number; seconds: number; json?: boolean }) => {
    // Benchmarks load when asked for, not with every command.
    const { formatCodecBench, runCodecBench } = await import('../../bench/codec');
    const b = runCodecBench({ r: o.r, c: o.c, interleaves: o.interleaves, packetLength: o.packetLength, loss: o.loss, poolPackets: o.pool, seconds: o.seconds, maxPacketSize: Math.max(o.packetLength, DEFAULTS.maxPacketSize) });
    process.stdout.write((o.json ? JSON.stringify(b) : formatCodecBench(b)) + '\n');
  });

bench
  .command('engine')
  .description('Packets/s through gateway A in the lab at 64, 512 and 1500 bytes and 1 and 2 queues, beside kernel forwarding, with the engine\'s CPU ns per packet and where they go (root)')
  .option('--seconds <s>', 'traffic per figure', decimal('--seconds'), 2)
  .option('--sizes <list>', 'IP packet sizes', integerList('--sizes'), [64, 512, 1500])
  .option('--queues <list>', 'queue pairs of the lab\'s veths (one engine thread each)', integerList('--queues'), [1, 2])
  .option('--generator <kind>', 'xdp: XDP_TX frames from BPF_PROG_TEST_RUN on CPUs apart from the engine\'s; socket: one AF_PACKET socket (the old generator, about 0.4 Mpps)', 'xdp')
  .option('--json', 'print one JSON object: engine_mpps_1500_q1, kernel_mpps_1500_q1, engine_ns_per_packet_64_q2, engine_ns_hash_64_q1, ... (docs/cli.md)')
  .addHelpText('after', `
Gateway A forwards UDP from hostA onto a WAN that drops everything past it, first with the
kernel's IP forwarding, then with the engine at (8,3). "in" is what gateway A's LAN port took
in, "out" what left its WAN port. The generator runs on CPUs apart from the engine's where there
are enough (with 2 CPUs and 2 queues they share both), so the engine's cost is also given as CPU
ns per packet (1e9 / ns: packets/s one core would forward),
and split into stages by the engine's sampled profile (docs/results.md has a table).

Examples:
  maelstrom bench engine
  maelstrom bench engine --sizes 1500 --queues 1 --seconds 5 --json`)
  .action(async (o: { seconds: number; sizes: number[]; queues: number[]; generator: string; json?: boolean }) => {
    if (o.sizes.some((s) => s < 32 || s > 1500)) throw new ConfigError('--sizes are IP packet sizes from 32 to 1500');
    if (o.queues.some((q) => q < 1 || q > 16)) throw new ConfigError('--queues are queue pair counts from 1 to 16');
    if (o.generator !== 'xdp' && o.generator !== 'socket') throw new ConfigError(`--generator is xdp or socket, not ${o.generator}`);
    if (!(o.seconds > 0 && o.seconds <= 60)) throw new ConfigError('--seconds is more than 0 and at most 60');
    const { formatEngineBench, runEngineBench } = await import('../../bench/engine');
    const generator = o.generator as 'xdp' | 'socket';
    const onProgress = (line: string) => process.stderr.write(`bench engine: ${line}\n`);
    const { rows, json } = await runEngineBench({ seconds: o.seconds, sizes: o.sizes, queues: o.queues, generator, onProgress });
    process.stdout.write((o.json ? JSON.stringify(json) : formatEngineBench(rows, generator)) + '\n');
  });

bench
  .command('feedback')
  .description('Network-sync latency in the lab: write-to-promise beside LAN ping RTT and remote acknowledgement, per WAN delay (root)')
  .option('--delays <list>', 'WAN one-way delays in ms', integerList('--delays'), [0, 25, 50, 100])
  .option('--records <n>', '4 KB records per delay and interval', integer('--records'), 400)
  .option('--interval-ms <list>', 'between records, comma-separated, one run each (1 ms is the shortest the client waits; 0: back to back)', decimalList('--interval-ms'), [5])
  .option('--flush-timeout <ms>', 'the gateways\' flush timeout', decimal('--flush-timeout'), DEFAULTS.flushTimeoutMs)
  .option('--flush-idle <us>', 'the gateways\' idle flush (0: off)', decimal('--flush-idle'), NETSYNC_DEFAULTS.flushIdleUs)
  .option('--flush-budget <per-s>', 'the gateways\' flush budget: repairs a second the idle flush may add beyond 1.1 x c/r', decimal('--flush-budget'), FLUSH_BUDGET.perS)
  .option('--json', 'print one JSON object: rows of netsync_p50_us, netsync_p99_us, lan_rtt_us, remote_ack_ms, records_per_s, repairs_per_packet, idle_deferred per delay_ms and interval_ms')
  .action(async (o: { delays: number[]; records: number; intervalMs: number[]; flushTimeout: number; flushIdle: number; flushBudget: number; json?: boolean }) => {
    if (o.delays.some((d) => d < 0 || d > 200)) throw new ConfigError('--delays are one-way delays from 0 to 200 ms');
    if (o.records < 10) throw new ConfigError('--records: at least 10 per delay, for a p99');
    if (o.intervalMs.some((t) => t < 0 || t > 1000)) throw new ConfigError('--interval-ms: from 0 to 1000 ms between records');
    if (o.flushBudget < 0) throw new ConfigError(`--flush-budget is 0 or more repairs a second, got ${o.flushBudget}`);
    const { formatFeedbackBench, runFeedbackBench } = await import('../../bench/feedback');
    const b = await runFeedbackBench({ delaysMs: o.delays, records: o.records, intervalsMs: o.intervalMs, flushTimeoutMs: o.flushTimeout, flushIdleUs: o.flushIdle, flushBudget: o.flushBudget });
    process.stdout.write((o.json ? JSON.stringify({ flush_timeout_ms: b.flushTimeoutMs, flush_idle_us: b.flushIdleUs, flush_budget_per_s: b.flushBudget, rows: b.rows }) : formatFeedbackBench(b)) + '\n');
  });

bench
  .command('soak')
  .description('A gateway pair at its ceiling for minutes, 1% loss, TCP flows coming and going: memory, decoder tables and flows sampled (root)')
  .option('--minutes <n>', 'how long', decimal('--minutes'), 10)
  .option('--sample <s>', 'seconds between samples', decimal('--sample'), 30)
  .option('--json', 'print one JSON object: samples (at_s, gateway, rss_mb, decoder_window, decoder_pending, netsync_flows, ...), tcp_flows, summary')
  .action(async (o: { minutes: number; sample: number; json?: boolean }) => {
    if (!(o.minutes > 0 && o.minutes <= 24 * 60)) throw new ConfigError('--minutes is above 0 and at most a day');
    if (!(o.sample >= 1 && o.sample <= 3600)) throw new ConfigError('--sample is 1 to 3600 seconds');
    requireRoot();
    const { formatSoak, runSoak } = await import('../../bench/soak');
    // Progress on stderr as it goes; the figures on stdout at the end.
    const r = await runSoak({ minutes: o.minutes, sampleSeconds: o.sample, onSample: (s) => process.stderr.write(`soak: ${s.at_s} s, gateway ${s.gateway}: ${s.rss_mb.toFixed(1)} MB, ${s.netsync_flows} flows, ${s.decoder_pending} pending\n`) });
    process.stdout.write((o.json ? JSON.stringify({ samples: r.samples, tcp_flows: r.tcpFlows, summary: r.summary }) : formatSoak(r)) + '\n');
  });

bench
  .command('goodput')
  .description('TCP goodput over a rate-limited WAN: plain cubic and BBR beside the same through the gateways, (8,3) and --auto, per loss (root)')
  .option('--losses <list>', 'WAN loss in percent, each way, comma-separated', decimalList('--losses'), [0, 0.1, 1, 3])
  .option('--delay <ms>', 'WAN one-way delay', decimal('--delay'), 25)
  .option('--rate <mbit>', 'WAN rate each way in Mbit/s (its queue: one bandwidth-delay product)', decimal('--rate'), 100)
  .option('--seconds <s>', 'goodput measured over this long, per point', decimal('--seconds'), 15)
  .option('--omit <s>', 'not counted before the window: slow start, and --auto finding its code', decimal('--omit'), 10)
  .option('--flush-idle <us>', 'the gateways\' idle flush (default theirs; 0: off)', decimal('--flush-idle'))
  .option('--auto-target <rate>', 'the --auto gateways\' --target (default theirs)', decimal('--auto-target'))
  .option('--json', 'print one JSON object: delay_ms, rate_mbit, ..., points (path, cc, loss_pct, goodput_mbps, vs_plain_bbr, link_mbps, payload_share, r, c, repairs_per_packet, ...)')
  .addHelpText('after', `
One lab, one run: hosts at the kernel's TCP defaults (the congestion control set per route,
tcp_reordering 3, offloads as the kernel sets them), as users run them, and a WAN of --rate
with --delay each way and a bottleneck queue of one bandwidth-delay product. At every loss, a
TCP transfer hostA -> hostB with cubic and with BBR: over the plain WAN, through both gateways
at their defaults ((8,3)), and through both gateways with --auto (the least c its model
allows). Each point is what the receiver got in --seconds after --omit; six points per loss,
each about omit + seconds + 3 s: some 13 minutes at the defaults.

Each gateway row shows its goodput over plain BBR's at the same loss, the code in effect
(with --auto, every c it went through in the window), gateway A's repairs per data packet
and gateway B's rebuilt packets. 'link' is what the WAN delivered to site B and 'payload'
the share of it that was goodput: BBR hosts lose no more than the gateways' overhead when
their goodput is at least plain BBR's x (payload through the gateways / plain's). 'tail
drops' are the bottleneck queue's (--auto counts them as loss too); 'late' is the share of
frames the emulator delivered over 0.1 ms late (this VM's scheduling, docs/decisions.md 84).

Examples:
  maelstrom bench goodput                                   # 0, 0.1, 1, 3% at 100 Mbit/s, 25 ms
  maelstrom bench goodput --losses 1 --seconds 5 --omit 5   # one loss, quickly
  maelstrom bench goodput --auto-target 1e-5 --json > goodput.json`)
  .action(async (o: { losses: number[]; delay: number; rate: number; seconds: number; omit: number; flushIdle?: number; autoTarget?: number; json?: boolean }) => {
    if (o.losses.some((l) => l < 0 || l >= 50)) throw new ConfigError(`--losses are percentages from 0 to below 50, got ${o.losses.join(',')}`);
    if (!(o.delay >= 0 && o.delay <= 200)) throw new ConfigError(`--delay is a one-way delay from 0 to 200 ms, got ${o.delay}`);
    if (!(o.rate > 0 && o.rate <= 10_000)) throw new ConfigError(`--rate is above 0 and at most 10000 Mbit/s, got ${o.rate}`);
    if (!(o.seconds >= 1 && o.seconds <= 600)) throw new ConfigError(`--seconds is 1 to 600, got ${o.seconds}`);
    if (!(o.omit >= 0 && o.omit <= 600)) throw new ConfigError(`--omit is 0 to 600 seconds, got ${o.omit}`);
    if (o.flushIdle !== undefined && o.flushIdle < 0) throw new ConfigError(`--flush-idle is 0 (off) or more microseconds, got ${o.flushIdle}`);
    if (o.autoTarget !== undefined && !(o.autoTarget > 0 && o.autoTarget < 1)) throw new ConfigError(`--auto-target is a rate between 0 and 1 (e.g. 1e-5), got ${o.autoTarget}`);
    requireRoot();
    const { formatGoodputBench, formatGoodputPoint, goodputHeader, runGoodputBench } = await import('../../bench/goodput');
    const options = { lossesPct: o.losses, delayMs: o.delay, rateMbit: o.rate, seconds: o.seconds, omitSeconds: o.omit, flushIdleUs: o.flushIdle,
      autoArgs: o.autoTarget === undefined ? [] : ['--target', String(o.autoTarget)] };
    // Progress on stderr as it goes; the figures on stdout at the end.
    process.stderr.write(goodputHeader({ rate_mbit: o.rate, delay_ms: o.delay, seconds: o.seconds, omit_seconds: o.omit, flush_idle_us: o.flushIdle, auto_args: options.autoArgs }) + '\n');
    const b = await runGoodputBench(options, (p) => process.stderr.write(formatGoodputPoint(p) + '\n'));
    process.stdout.write((o.json ? JSON.stringify(b) : formatGoodputBench(b)) + '\n');
  });

function formatEpoch(e: EpochRecord): string {
  const why = e.reason === 'auto' ? ` (auto: loss ${(e.loss! * 100).toFixed(3)}%, bursts of ${e.burst!.toFixed(1)}, modelled unrecoverable ${e.modelled!.toExponential(1)})` : ` (${e.reason})`;
  return `epoch ${e.epoch}: (r=${e.r}, c=${e.c}), interleaves ${e.interleaves.join(',')}, flush timeout ${e.flushTimeoutMs} ms${why}`;
}

function autoOptions(o: { r: number; rMax?: number; cMin: number; cMax: number; target: number }): AutoOptions {
  const { min, max } = LIMITS.layers;
  if (!Number.isInteger(o.cMin) || !Number.isInteger(o.cMax) || o.cMin < min || o.cMax > max || o.cMin > o.cMax) {
    throw new ConfigError(`--c-min and --c-max must be integers with ${min} <= c-min <= c-max <= ${max}, got ${o.cMin} and ${o.cMax}`);
  }
  if (!(o.target > 0 && o.target < 1)) throw new ConfigError(`--target is a rate between 0 and 1 (e.g. 1e-6), got ${o.target}`);
  return { r: o.r, cMin: o.cMin, cMax: o.cMax, target: o.target };
}

interface UpOptions {
  lan: string; wan: string; peer: string; remote: string[]; r: number; c?: number; interleaves?: number[];
  flushTimeout: number; mssClamp: boolean; xdpMode: string; copy?: boolean; zeroCopy?: boolean; queues?: number[];
  repairPort: number; cpu?: number[]; mountBpffs?: boolean; statsInterval: number; json?: boolean;
  control?: string; feedback: boolean; feedbackPort: number; maxFlows: number; flowIdle: number; flushIdle: number; flushBudget: number;
  rMax?: number; decoderWindow?: number; reorderGrace?: number; auto?: boolean; cMin: number; cMax: number; target: number;
  metrics?: MetricsAddress; logLevel: string; logFile?: string;
  daemon?: boolean; pidFile?: string; keyFile?: string; insecureNoAuth?: boolean;
}

// How a gateway authenticates, for the start report and status: its keys, or a warning.
function formatAuth(s: Record<string, unknown>): string {
  const a = s.auth as AuthState | null;
  if (!a) return 'authentication OFF (--insecure-no-auth): anyone who can send to the repair port can put packets on this LAN';
  const rotation = a.pendingKey ? `, rekey to ${a.pendingKey} waiting for the peer to accept it` : a.retiringKey ? `, still accepting ${a.retiringKey}` : '';
  const peer = a.peer ? `; peer seals with ${a.peer.sendKey}, accepts ${a.peer.acceptedKeys.join(',')}` : '; no report from the peer yet';
  return `authenticated: key ${a.sendKey}${rotation}${peer}`;
}

function formatUp(r: Record<string, unknown>): string {
  const fb = r.feedback as { from: string; port: number } | null;
  return `gateway up: ${r.lan} <-> ${r.wan}, peer ${r.peer}, XDP ${r.xdpMode}, AF_XDP ${r.zeroCopy ? 'zero-copy' : 'copy'} mode on LAN queue(s) ${(r.queues as number[]).join(',')}, `
    + `code (r=${r.r}, c=${r.c}), MSS clamp ${r.mssClamp || 'off'}, feedback ${fb ? `from ${fb.from} to port ${fb.port}` : 'off'}, control ${r.control}`
    + `\n${formatAuth(r)}`
    + (r.logFile ? `\ndaemon pid ${r.pid}, PID file ${r.pidFile}, log ${r.logFile}` : '');
}

const up = withCode(program
  .command('up')
  .description('Run the gateway on a LAN and a WAN interface: in the foreground until SIGINT/SIGTERM, or as a daemon'))
  .requiredOption('--lan <if>', 'interface towards the local site')
  .requiredOption('--wan <if>', 'interface towards the WAN and the peer gateway')
  .requiredOption('--peer <ip>', 'the peer gateway\'s WAN address (repairs go there)')
  .requiredOption('--remote <prefixes>', 'remote-site IPv4 prefixes, comma-separated (e.g. 10.2.0.0/16)', (t: string) => t.split(',').map((x) => x.trim()).filter(Boolean))
  .option('--key-file <path>', 'the pair\'s key (maelstrom keygen; mode 0600): repairs, reports and feedback are sealed with it and checked')
  .option('--insecure-no-auth', 'run without a key: nothing sealed or checked (anyone who can send to the repair port can inject packets)')
  .option('--flush-timeout <ms>', 'a bin not full after this long x its layer\'s interleave fires anyway (bins fill first above r / ms packets per second)', decimal('--flush-timeout'), DEFAULTS.flushTimeoutMs)
  .option('--flush-idle <us>', 'once the LAN is quiet this long, fire the bins holding packets a network-sync flow waits on (0: only the flush timeout)', decimal('--flush-idle'), NETSYNC_DEFAULTS.flushIdleUs)
  .option('--flush-budget <per-s>', 'repairs a second the idle flush may add beyond 1.1 x c/r; what it cannot pay waits for its bins to fill or time out (0: only the 1.1 x c/r; keep it under a tenth of the WAN\'s packets a second)', decimal('--flush-budget'), FLUSH_BUDGET.perS)
  .option('--no-mss-clamp', 'do not clamp TCP MSS on forwarded SYNs (then the WAN MTU must fit LAN MTU plus the repair overhead)')
  .option('--xdp-mode <mode>', 'native or skb (generic)', 'native')
  .option('--copy', 'AF_XDP copy mode even where the NIC offers zero-copy')
  .option('--zero-copy', 'AF_XDP zero-copy or nothing: refuse to start where the NIC offers only copy mode (veth does)')
  .option('--queues <list>', 'LAN RX queues to bind, comma-separated (default all)', integerList('--queues'))
  .option('--cpu <list>', 'run engine thread w (one per queue pair) on CPU list[w % length] only; keeps what it sends through veth in order', integerList('--cpu'))
  .option('--repair-port <port>', 'UDP port of repair packets, both gateways', integer('--repair-port'), REPAIR_PORT)
  .option('--mount-bpffs', 'mount bpffs at /sys/fs/bpf when it is missing (in a private mount namespace)')
  .option('--stats-interval <s>', 'print counters as a JSON line every s seconds (0: only at exit)', decimal('--stats-interval'), 0)
  .option('--json', 'print the start report as JSON')
  .option('--control <path>', 'control socket for watch/status/stats/tune/rekey (default /run/maelstrom/<lan>.sock; in another network namespace /run/maelstrom/netns-<inode>/<lan>.sock)')
  .option('--no-feedback', 'send no network-sync feedback to LAN senders')
  .option('--feedback-port <port>', 'UDP port of the senders\' network-sync listeners', integer('--feedback-port'), FEEDBACK_PORT)
  .option('--max-flows <n>', 'TCP flows tracked at once; the least recently seen is evicted beyond', integer('--max-flows'), NETSYNC_DEFAULTS.maxFlows)
  .option('--flow-idle <s>', 'forget a TCP flow silent this long', decimal('--flow-idle'), NETSYNC_DEFAULTS.flowIdleS)
  .option('--r-max <n>', 'the largest r maelstrom tune may set later (leaves room for its repair headers; default r)', integer('--r-max'))
  .option('--decoder-window <packets>', 'data packets the decoder keeps for rebuilding (default 2 x r x widest interleave)', integer('--decoder-window'))
  .option('--reorder-grace <us>', `a repair that finds one packet missing waits this long for it before rebuilding it, ${LIMITS.graceUs.min} to ${LIMITS.graceUs.max} (default ${REORDER_GRACE_US} when the WAN has several queues, which reorder, else 0)`, decimal('--reorder-grace'))
  .option('--auto', 'adapt c to the loss the peer gateway reports, within --c-min..--c-max')
  .option('--c-min <n>', 'with --auto: fewest layers', integer('--c-min'), AUTO_DEFAULTS.cMin)
  .option('--c-max <n>', 'with --auto: most layers', integer('--c-max'), AUTO_DEFAULTS.cMax)
  .option('--target <rate>', 'with --auto: modelled unrecoverable packets per packet to stay under', decimal('--target'), AUTO_DEFAULTS.target)
  .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9600)', parseMetricsAddress)
  .option('--log-level <level>', 'lifecycle log, JSON lines on stderr: fatal, error, warn, info, debug, trace or silent', 'info')
  .option('--log-file <path>', 'append the log here instead of stderr (with --daemon, default /run/maelstrom/<lan>.log, which also gets its output)')
  .option('--daemon', 'run in the background: return once the gateway is up (maelstrom down stops it)')
  .option('--pid-file <path>', 'write the gateway\'s PID here (default with --daemon: /run/maelstrom/<lan>.pid)')
  .addHelpText('after', `
Authentication: both gateways of a pair share one key (maelstrom keygen > FILE, mode 0600).
Everything a gateway sends besides the data packets (repairs and reports to the peer, feedback to
the LAN's storage hosts) carries a MAC and a counter; the peer drops what does not verify or was
seen before (docs/security.md). Storage hosts verify feedback with the pair's feedback key
(maelstrom keygen --feedback --key-file FILE). 'maelstrom rekey' changes the key at run time.

Network-sync: for every TCP flow leaving through the LAN, the gateway tells the sending host
(UDP to port 7601, from the LAN address) how many bytes are on the WAN together with all their
repairs. Storage servers wait on that with NetworkSyncListener (docs/protocol.md).

Runtime tuning: 'maelstrom tune' changes r, c, the interleaves or the flush timeout of a running
gateway as a new epoch, without a lost packet. With --auto the gateway picks c itself from the
loss the peer gateway reports (both gateways need the same --c-max for the windows to fit).

Observing it: \`maelstrom stats\` shows its counters as rates; --metrics serves them to Prometheus
(docs/gateway.md, "Metrics"); the log (starting, up, epochs, stopping, stopped, errors) goes to
stderr as JSON lines, stdout keeps the start report, the epochs and the --stats-interval lines.

Examples (gateway A of the lab):
  maelstrom keygen > /etc/maelstrom/pair.key     # once; copy it to the other gateway
  maelstrom up --lan lan0 --wan wan0 --peer 10.99.0.2 --remote 10.2.0.0/24 --key-file /etc/maelstrom/pair.key --r 8 --c 3
  maelstrom up --lan lan0 --wan wan0 --peer 10.99.0.2 --remote 10.2.0.0/24 --key-file /etc/maelstrom/pair.key --auto --c-max 4
  maelstrom watch --lan lan0          # in another shell: the feedback as it goes out
  maelstrom tune --lan lan0 --r 4 --c 2
  maelstrom up --config /etc/maelstrom/lan0.json --daemon   # keys as in docs/gateway.md
  maelstrom down --lan lan0           # stops the daemon, detaches its XDP programs
  maelstrom up ... --metrics 127.0.0.1:9600 && curl -s 127.0.0.1:9600/metrics | grep maelstrom_packets_total`)
  .action(withLogger(async (o: UpOptions, log: Logger) => {
    requireRoot();
    if (o.xdpMode !== 'native' && o.xdpMode !== 'skb') throw new ConfigError(`--xdp-mode is native or skb, got '${o.xdpMode}'`);
    const auto = o.auto ? autoOptions(o) : undefined;
    if (o.daemon && !isDaemonChild()) {
      const logFile = o.logFile ?? defaultLogPath(o.lan);
      const report = { ...await startDaemon(logFile), logFile };
      process.stdout.write((o.json ? JSON.stringify(report) : formatUp(report)) + '\n');
      return;
    }
    const pidFile = o.pidFile ?? (o.daemon ? defaultPidPath(o.lan) : undefined);
    // From here on a signal stops the gateway cleanly, also one that comes while it starts.
    const stopRequested = new Promise<string>((resolve) => {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve(signal));
    });
    log.info({ event: 'starting', lan: o.lan, wan: o.wan, peer: o.peer, remote: o.remote, r: o.r, c: o.c, interleaves: o.interleaves, flushTimeoutMs: o.flushTimeout, auto }, 'starting the gateway');
    const gw = await relayFailure(() => runGateway({
      lan: o.lan, wan: o.wan, peer: o.peer, remote: o.remote, r: o.r, c: o.c, interleaves: o.interleaves,
      flushTimeoutMs: o.flushTimeout, clampMss: o.mssClamp, generic: o.xdpMode === 'skb', forceCopy: o.copy,
      requireZeroCopy: o.zeroCopy, queues: o.queues, cpu: o.cpu, repairPort: o.repairPort, mountBpffs: o.mountBpffs,
      feedback: o.feedback, feedbackPort: o.feedbackPort, maxFlows: o.maxFlows, flowIdleS: o.flowIdle, flushIdleUs: o.flushIdle, flushBudget: o.flushBudget,
      rMax: o.rMax, decoderWindow: o.decoderWindow ?? (auto ? defaultWindow(o.rMax ?? o.r, defaultInterleaves(auto.cMax)) : undefined),
      reorderGraceUs: o.reorderGrace, keyFile: o.keyFile, insecureNoAuth: o.insecureNoAuth,
      control: o.control, pidFile, metrics: o.metrics, auto,
    }, { log, onEpoch: (e) => process.stdout.write((o.json ? JSON.stringify({ event: 'epoch', ...e }) : formatEpoch(e)) + '\n') }));
    const report = { event: 'up', ...gw.status() };
    log.info({ ...report, pid: undefined }, 'gateway up'); // every record has the pid already
    process.stdout.write((o.json ? JSON.stringify(report) : formatUp(report)) + '\n');
    await announceUp(report);
    const print = (stats: EngineStats) => process.stdout.write(JSON.stringify({ event: 'stats', ...stats }) + '\n');
    const timer = o.statsInterval > 0 ? setInterval(() => print(gw.stats()), o.statsInterval * 1000) : undefined;
    const signal = await stopRequested;
    log.info({ event: 'stopping', signal }, 'stopping the gateway');
    if (timer) clearInterval(timer);
    const counters = await gw.stop();
    print(counters);
    log.info({ event: 'stopped', uptimeS: gw.status().uptimeS, counters }, 'gateway stopped');
  }));
withConfigFile(up);

function formatEvent(e: Record<string, unknown>): string {
  const flow = `${e.senderAddress}:${e.senderPort} > ${e.receiverAddress}:${e.receiverPort}`;
  switch (e.type) {
    case 'feedback': return `feedback    ${flow}  safe ${e.safeOffset}  sent ${e.sentOffset}  repairs ${e.repairsSent}/${e.repairsPerPacket}${e.isnGuessed ? '  (SYN not seen)' : ''}`;
    case 'flow-open': return `flow-open   ${flow}  isn ${e.isn}${e.isnGuessed ? ' (guessed: SYN not seen)' : ''}`;
    case 'flow-close': return `flow-close  ${flow}  ${e.reason}  safe ${e.safeOffset}  sent ${e.sentOffset}`;
    case 'safe-by-ack': return `safe-by-ack ${flow}  safe ${e.safeOffset} (the receiver acknowledged past a lost repair)`;
    case 'data-done': return `data-done   ${flow}  seq ${e.seq}  bytes ${e.start}-${e.end}`;
    case 'repair-done': return `repair-done layer ${e.layer}  seq ${e.baseSeq} + k*${e.interleave}, k < ${e.count}`;
    default: return JSON.stringify(e);
  }
}

function findControl(o: { lan?: string; control?: string }): string {
  if (!o.lan && !o.control) throw new ConfigError('give --lan IF or --control PATH to find the gateway');
  return o.control ?? defaultControlPath(o.lan!);
}

program
  .command('status')
  .description('A running gateway: interfaces, XDP mode, zero-copy or copy, queues, code, feedback, uptime')
  .option('--lan <if>', 'the gateway\'s LAN interface (finds its control socket)')
  .option('--control <path>', 'the gateway\'s control socket (instead of --lan)')
  .option('--json', 'one JSON object (fields in docs/gateway.md, "Status")')
  .action(async (o: { lan?: string; control?: string; json?: boolean }) => {
    const s = await request(findControl(o), { cmd: 'status' });
    if (o.json) {
      process.stdout.write(JSON.stringify(s) + '\n');
      return;
    }
    const fb = s.feedback as { from: string; port: number } | null;
    process.stdout.write([
      `gateway pid ${s.pid}, up ${(s.uptimeS as number).toFixed(0)} s, control ${s.control}`,
      `  LAN ${s.lan} <-> WAN ${s.wan}, peer ${s.peer}, remote ${(s.remote as string[]).join(',')}`,
      `  XDP ${s.xdpMode}, AF_XDP ${s.zeroCopy ? 'zero-copy' : 'copy'} mode, LAN queue(s) ${(s.queues as number[]).join(',')}, WAN queue(s) ${(s.wanQueues as number[]).join(',')}, MSS clamp ${s.mssClamp || 'off'}`,
      `  code (r=${s.r}, c=${s.c}), interleaves ${(s.interleaves as number[]).join(',')}, flush timeout ${s.flushTimeoutMs} ms`,
      `  network-sync feedback ${fb ? `from ${fb.from} to UDP ${fb.port}` : 'off'}`,
      `  ${formatAuth(s)}`,
      `  epoch ${s.epoch}${s.auto ? `, auto c in ${(s.auto as AutoOptions).cMin}..${(s.auto as AutoOptions).cMax} for unrecoverable <= ${(s.auto as AutoOptions).target}` : ''}; epochs:`,
      ...(s.epochs as EpochRecord[]).map((e) => `    ${e.at}  ${formatEpoch(e)}`),
    ].join('\n') + '\n');
  });

program
  .command('tune')
  .description('Change r, c, the interleaves or the flush timeout of a running gateway: a new epoch, no packet lost')
  .option('--lan <if>', 'the gateway\'s LAN interface (finds its control socket)')
  .option('--control <path>', 'the gateway\'s control socket (instead of --lan)')
  .option('--r <n>', 'data packets per repair', integer('--r'))
  .option('--c <n>', 'layers (repairs per data packet); interleaves 1,10,... unless given', integer('--c'))
  .option('--interleaves <list>', 'interleave of each layer, comma-separated', integerList('--interleaves'))
  .option('--flush-timeout <ms>', 'a bin not full after this long x its layer\'s interleave fires anyway', decimal('--flush-timeout'))
  .option('--json', 'print the new epoch as one JSON object (fields in docs/gateway.md, "Status")')
  .addHelpText('after', `
The gateway fires every bin of the current code, then sends under the new one with the next
epoch number; the peer gateway decodes repairs of both epochs across the change. Change the
other gateway too if its direction should use the same code. What is not given stays.

Examples:
  maelstrom tune --lan lan0 --r 4 --c 2
  maelstrom tune --lan lan0 --interleaves 1,20,400 --flush-timeout 2 --json`)
  .action(async (o: { lan?: string; control?: string; r?: number; c?: number; interleaves?: number[]; flushTimeout?: number; json?: boolean }) => {
    const req: TuneRequest = {};
    if (o.r !== undefined) req.r = o.r;
    if (o.c !== undefined) req.c = o.c;
    if (o.interleaves !== undefined) req.interleaves = o.interleaves;
    if (o.flushTimeout !== undefined) req.flushTimeoutMs = o.flushTimeout;
    if (Object.keys(req).length === 0) throw new ConfigError('give at least one of --r, --c, --interleaves, --flush-timeout');
    const answer = await request(findControl(o), { cmd: 'tune', ...req });
    process.stdout.write((o.json ? JSON.stringify(answer) : formatEpoch(answer as unknown as EpochRecord)) + '\n');
  });

program
  .command('rekey')
  .description('Change a running gateway\'s key: the new one is accepted at once and sealed with once the peer accepts it too')
  .option('--lan <if>', 'the gateway\'s LAN interface (finds its control socket)')
  .option('--control <path>', 'the gateway\'s control socket (instead of --lan)')
  .requiredOption('--key-file <path>', 'the new key (maelstrom keygen; mode 0600)')
  .option('--json', 'print the new key\'s id and the gateway\'s keys as one JSON object')
  .addHelpText('after', `
Rekey both gateways of the pair, in either order, with the same new key file. Each accepts
both keys meanwhile; each starts sealing with the new one once the other's report says it
accepts it, and drops the old one 2 s after the other's first datagram under the new key.
Give the storage hosts the new feedback key first (a second line in their feedback key file):
the gateway's feedback switches with its key. 'maelstrom status' shows where a rotation is.

Examples:
  maelstrom keygen > /etc/maelstrom/pair-2.key
  maelstrom rekey --lan lan0 --key-file /etc/maelstrom/pair-2.key      # on both gateways
  maelstrom status --lan lan0 | grep authenticated`)
  .action(async (o: { lan?: string; control?: string; keyFile: string; json?: boolean }) => {
    const file = path.resolve(o.keyFile);
    readKeyFile(file, 'gateway'); // refused here, with the reason, before the gateway is asked
    const answer = await request(findControl(o), { cmd: 'rekey', keyFile: file });
    process.stdout.write((o.json ? JSON.stringify(answer) : `rekey to ${answer.keyId}: ${formatAuth(answer)}`) + '\n');
  });

program
  .command('keygen')
  .description('Make a key for a gateway pair (to stdout: maelstrom keygen > FILE), or the feedback key of one for its storage hosts')
  .option('--feedback', 'the feedback key of the pair key in --key-file, for the storage hosts (smfs storage --feedback-key)')
  .option('--key-file <path>', 'with --feedback: the pair\'s key')
  .addHelpText('after', `
A key file written through a redirection is made readable by its owner only (mode 0600);
gateways and storage hosts refuse key files that others may read.

Examples:
  maelstrom keygen > /etc/maelstrom/pair.key                                          # both gateways
  maelstrom keygen --feedback --key-file /etc/maelstrom/pair.key > /etc/smfs/feedback.key  # storage hosts of both sites`)
  .action((o: { feedback?: boolean; keyFile?: string }) => {
    if (o.feedback && !o.keyFile) throw new ConfigError('--feedback needs --key-file: the pair key whose feedback key to give');
    if (!o.feedback && o.keyFile) throw new ConfigError('--key-file goes with --feedback (keygen alone makes a new key)');
    const text = o.feedback ? formatKeyFile('feedback', feedbackKeyOf(readKeyFile(o.keyFile!, 'gateway')[0])) : formatKeyFile('gateway', newMasterKey());
    // Redirected into a file: make it the owner's alone before the key is in it.
    if (fs.fstatSync(1).isFile()) fs.fchmodSync(1, 0o600);
    fs.writeSync(1, text);
  });

program
  .command('stats')
  .description('A running gateway\'s counters as rates: packets and Gbit/s each way, repairs, recoveries, decoder, network-sync, XDP')
  .option('--lan <if>', 'the gateway\'s LAN interface (finds its control socket)')
  .option('--control <path>', 'the gateway\'s control socket (instead of --lan)')
  .option('--watch [seconds]', `go on every interval until Ctrl-C (default interval ${STATS_INTERVAL_S} s)`, decimal('--watch'))
  .option('--count <n>', 'stop after n intervals (without --watch: one)', integer('--count'))
  .option('--json', 'one JSON object per interval (fields in docs/gateway.md, "Stats")')
  .addHelpText('after', `
Each figure is what happened between two snapshots of the gateway's counters, one interval
apart: LAN->WAN is what the engine sends onto the WAN (with its repairs), WAN->LAN what it
delivers to the site (with the packets it rebuilt).

Examples:
  maelstrom stats --lan lan0                       # one interval of 1 s
  maelstrom stats --lan lan0 --watch               # every second until Ctrl-C
  maelstrom stats --lan lan0 --watch 5 --count 12  # a minute in 5 s steps
  maelstrom stats --control /run/maelstrom/lan0.sock --json --count 2 | jq .lanToWan.packetsPerS`)
  .action(async (o: { lan?: string; control?: string; watch?: boolean | number; count?: number; json?: boolean }) => {
    const path = findControl(o);
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once('SIGINT', interrupt);
    try {
      await runStats({ control: path, ...checkStatsOptions(o), json: o.json === true, write: (t) => process.stdout.write(t), stop: stop.signal });
    } finally {
      process.off('SIGINT', interrupt);
    }
  });

program
  .command('watch')
  .description('Print a running gateway\'s network-sync events: feedback sent, flows opened and closed')
  .option('--lan <if>', 'the gateway\'s LAN interface (finds its control socket)')
  .option('--control <path>', 'the gateway\'s control socket (instead of --lan)')
  .option('--trace', 'also every data frame and repair completion (heavy: for audits and tests)')
  .option('--count <n>', 'stop after n events', integer('--count'))
  .option('--json', 'one JSON object per line (fields in docs/protocol.md, "Gateway events")')
  .addHelpText('after', `
Examples:
  maelstrom watch --lan lan0
  maelstrom watch --control /run/maelstrom/lan0.sock --json | jq 'select(.type=="feedback")'`)
  .action(async (o: { lan?: string; control?: string; trace?: boolean; count?: number; json?: boolean }) => {
    const path = findControl(o);
    let seen = 0;
    for await (const msg of control(path, { cmd: 'watch', trace: o.trace === true })) {
      if (msg.event === 'watching') {
        if (o.json) process.stdout.write(JSON.stringify(msg) + '\n');
        continue;
      }
      process.stdout.write((o.json ? JSON.stringify(msg) : formatEvent(msg)) + '\n');
      if (o.count !== undefined && ++seen >= o.count) break;
    }
  });

// What `down` needs of a gateway's config file: its interfaces and where its PID file and control
// socket are (a crashed gateway cannot say which WAN it used; its config file can).
function downFromConfig(file: string | undefined): { lan?: string; wan?: string; pidFile?: string; control?: string } {
  if (file === undefined) return {};
  const c = readConfigFile(file);
  const text = (key: string) => {
    const v = c[key];
    if (v !== undefined && typeof v !== 'string') throw new ConfigError(`${file}: "${key}" must be a string`);
    return v as string | undefined;
  };
  return { lan: text('lan'), wan: text('wan'), pidFile: text('pid-file'), control: text('control') };
}

program
  .command('down')
  .description('Stop a gateway daemon (up --daemon), then detach gateway XDP programs left on its interfaces')
  .option('--lan <if>', 'LAN interface (or from --config)')
  .option('--wan <if>', 'WAN interface (default: the one the running daemon reports; needed after a crash, or from --config)')
  .option('--pid-file <path>', 'the daemon\'s PID file (default /run/maelstrom/<lan>.pid, or the namespace\'s directory as for up)')
  .option('--control <path>', 'the daemon\'s control socket (default /run/maelstrom/<lan>.sock, or the namespace\'s directory as for up)')
  .option('--timeout <s>', 'how long the daemon has to exit after SIGTERM', decimal('--timeout'), 10)
  .option('--config <file>', 'take the LAN and WAN interfaces, the PID file and the control socket from the gateway\'s config file (the other keys are up\'s); the command line wins')
  .addHelpText('after', `
The daemon is signalled only when the gateway on the control socket confirms the PID file's
process as its own; a stale PID file is removed and its process left alone.

Examples:
  maelstrom down --lan lan0               # stop the daemon started by up --daemon --lan lan0
  maelstrom down --lan lan0 --wan wan0    # after a crash: detach what the gateway left attached
  maelstrom down --config /etc/maelstrom/lan0.json   # the same, the interfaces from the gateway's config`)
  .action(async (given: { lan?: string; wan?: string; pidFile?: string; control?: string; timeout: number; config?: string }) => {
    requireRoot();
    const o = { ...downFromConfig(given.config), ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as typeof given & { lan: string };
    if (!o.lan) throw new ConfigError('give --lan IF, or --config FILE naming "lan"');
    const controlPath = o.control ?? defaultControlPath(o.lan);
    const { stopped, notes } = await stopDaemon(o.pidFile ?? defaultPidPath(o.lan), controlPath, o.timeout * 1000);
    for (const note of notes) process.stdout.write(note + '\n');
    if (stopped) process.stdout.write(`stopped the gateway daemon, pid ${stopped.pid}\n`);
    const wan = o.wan ?? (stopped?.status.wan as string | undefined);
    if (!wan) throw new ConfigError(`give --wan IF: no gateway daemon of ${o.lan} runs to say which WAN interface it used`);
    const n = detachGateway([o.lan, wan]);
    process.stdout.write(`detached ${n} gateway program${n === 1 ? '' : 's'}\n`);
    if (await controlPathState(controlPath).catch(() => 'free') === 'stale') {
      fs.rmSync(controlPath, { force: true });
      process.stdout.write(`removed ${controlPath}, left by a gateway that is gone\n`);
    }
  });

export { program };
if (require.main === module) void run(program, process.argv);
