#!/usr/bin/env node
// maelstrom: the gateway's command line. Subcommands so far: model, bench.
import { Command } from 'commander';
import { runModel } from '../model/redundancy';
import type { ModelReport } from '../model/redundancy';
import { formatCodecBench, runCodecBench } from '../../bench/codec';
import { formatEngineBench, runEngineBench } from '../../bench/engine';
import { DEFAULTS } from '../fec/config';
import { REPAIR_PORT, detachGateway, startGateway } from '../gateway/gateway';
import { decimal, integer, integerList } from './parse';
import { run } from './run';
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
  .option('--json', 'print one JSON object: encode_GBps, decode_GBps, memcpy_GBps, ...')
  .action((o: { r: number; c?: number; interleaves?: number[]; packetLength: number; loss: number; pool: number; seconds: number; json?: boolean }) => {
    const b = runCodecBench({ r: o.r, c: o.c, interleaves: o.interleaves, packetLength: o.packetLength, loss: o.loss, poolPackets: o.pool, seconds: o.seconds, maxPacketSize: Math.max(o.packetLength, DEFAULTS.maxPacketSize) });
    process.stdout.write((o.json ? JSON.stringify(b) : formatCodecBench(b)) + '\n');
  });

bench
  .command('engine')
  .description('Packets/s through gateway A in the lab at 64, 512 and 1500 bytes, beside kernel forwarding (root)')
  .option('--seconds <s>', 'traffic per figure', decimal('--seconds'), 2)
  .option('--sizes <list>', 'IP packet sizes', integerList('--sizes'), [64, 512, 1500])
  .option('--json', 'print one JSON object: engine_mpps_1500, kernel_mpps_1500, ...')
  .action(async (o: { seconds: number; sizes: number[]; json?: boolean }) => {
    if (o.sizes.some((s) => s < 32 || s > 1500)) throw new ConfigError('--sizes are IP packet sizes from 32 to 1500');
    const { rows, json } = await runEngineBench({ seconds: o.seconds, sizes: o.sizes });
    process.stdout.write((o.json ? JSON.stringify(json) : formatEngineBench(rows)) + '\n');
  });

interface UpOptions {
  lan: string; wan: string; peer: string; remote: string[]; r: number; c?: number; interleaves?: number[];
  flushTimeout: number; mssClamp: boolean; xdpMode: string; copy?: boolean; repairPort: number;
  mountBpffs?: boolean; statsInterval: number; json?: boolean;
}

withCode(program
  .command('up')
  .description('Run the gateway on a LAN and a WAN interface, in the foreground until SIGINT/SIGTERM'))
  .requiredOption('--lan <if>', 'interface towards the local site')
  .requiredOption('--wan <if>', 'interface towards the WAN and the peer gateway')
  .requiredOption('--peer <ip>', 'the peer gateway\'s WAN address (repairs go there)')
  .requiredOption('--remote <prefixes>', 'remote-site IPv4 prefixes, comma-separated (e.g. 10.2.0.0/16)', (t: string) => t.split(',').map((x) => x.trim()).filter(Boolean))
  .option('--flush-timeout <ms>', 'a bin not full after this long fires anyway', decimal('--flush-timeout'), DEFAULTS.flushTimeoutMs)
  .option('--no-mss-clamp', 'do not clamp TCP MSS on forwarded SYNs (then the WAN MTU must fit LAN MTU plus the repair overhead)')
  .option('--xdp-mode <mode>', 'native or skb (generic)', 'native')
  .option('--copy', 'AF_XDP copy mode even where the NIC offers zero-copy')
  .option('--repair-port <port>', 'UDP port of repair packets, both gateways', integer('--repair-port'), REPAIR_PORT)
  .option('--mount-bpffs', 'mount bpffs at /sys/fs/bpf when it is missing (in a private mount namespace)')
  .option('--stats-interval <s>', 'print counters as a JSON line every s seconds (0: only at exit)', decimal('--stats-interval'), 0)
  .option('--json', 'print the start report as JSON')
  .addHelpText('after', `
Example (gateway A of the lab):
  maelstrom up --lan lan0 --wan wan0 --peer 10.99.0.2 --remote 10.2.0.0/24 --r 8 --c 3`)
  .action(async (o: UpOptions) => {
    if (o.xdpMode !== 'native' && o.xdpMode !== 'skb') throw new ConfigError(`--xdp-mode is native or skb, got '${o.xdpMode}'`);
    const gw = await startGateway({
      lan: o.lan, wan: o.wan, peer: o.peer, remote: o.remote, r: o.r, c: o.c, interleaves: o.interleaves,
      flushTimeoutMs: o.flushTimeout, clampMss: o.mssClamp, generic: o.xdpMode === 'skb', forceCopy: o.copy,
      repairPort: o.repairPort, mountBpffs: o.mountBpffs,
    });
    const report = { event: 'up', lan: o.lan, wan: o.wan, peer: o.peer, remote: o.remote, ...gw.info };
    process.stdout.write((o.json ? JSON.stringify(report) : `gateway up: ${o.lan} <-> ${o.wan}, peer ${o.peer}, XDP ${gw.info.xdpMode}, AF_XDP ${gw.info.zeroCopy ? 'zero-copy' : 'copy'} mode, MSS clamp ${gw.info.mssClamp || 'off'}`) + '\n');
    const print = () => process.stdout.write(JSON.stringify({ event: 'stats', ...gw.stats() }) + '\n');
    const timer = o.statsInterval > 0 ? setInterval(print, o.statsInterval * 1000) : undefined;
    await new Promise<void>((resolve) => {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
    });
    if (timer) clearInterval(timer);
    print();
    gw.stop();
  });

program
  .command('down')
  .description('Detach gateway XDP programs left behind on interfaces (after a crash)')
  .requiredOption('--lan <if>', 'LAN interface')
  .requiredOption('--wan <if>', 'WAN interface')
  .action((o: { lan: string; wan: string }) => {
    const n = detachGateway([o.lan, o.wan]);
    process.stdout.write(`detached ${n} gateway program${n === 1 ? '' : 's'}\n`);
  });

void run(program, process.argv);
