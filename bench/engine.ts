// Engine forwarding rate in the lab: UDP from hostA through gateway A at 64, 512 and 1500
// bytes, with 1 and 2 queue pairs, the engine with (8,3) beside the kernel's own IP forwarding
// in the same topology, offload settings and run. Packets per second out of gateway A's WAN
// interface; the WAN emulator drops everything there (link killed), so nothing downstream
// limits the figure.
//
// The generator is bpf/lab_gen.bpf.c run with BPF_F_TEST_XDP_LIVE_FRAMES (native/lab/blaster.cc)
// on CPUs apart from the engine's where there are enough (cpuPlan). Its own ceiling is measured
// first, into a port that drops every frame (lab_drop); over veth the receiver's work runs in
// the sender's softirq, so with a real receiver it makes what the receiver's CPU can take. Over veth, gateway A's XDP program runs in the sender's softirq, on the
// generator's CPU. The engine's own cost is given as CPU time per packet (its threads' CPU time
// over the packets they forwarded), whatever the generator takes: 1e9 / ns is what one core
// would forward. The kernel's run has an XDP_PASS program on gateway A's LAN port (veth takes
// XDP frames only into a peer with a program), so both runs receive the same way.
//
// Where a packet's time goes: the engine's sampled stage profile (engine.h, enum Stage), per
// packet; `other` is the rest of the CPU time per packet (the loop, polls, housekeeping, the
// WAN side, the kernel's part of the TX kicks not caught in a stage).
//
// Prints figures; never passes or fails on them.
import os from 'node:os';
import path from 'node:path';
import { withGateways, withLab } from '../src/lab/fixture';
import type { Lab } from '../src/lab/lab';
import { udpBlast } from '../src/lab/runs';
import { ADDRESSES } from '../src/lab/topology';
import { ENGINE_STAGES } from '../src/native/addon';
import type { EngineStage, EngineStats } from '../src/native/addon';

const WAN_MTU = 1700; // so a 1500-byte packet and its repair header fit: every size is protected
const GENERATOR = path.resolve(__dirname, '..', '..', 'out', 'bpf', 'lab_gen.bpf.o');

export type Generator = 'xdp' | 'socket';

export interface EngineBenchOptions {
  seconds?: number;
  sizes?: number[];
  queues?: number[];
  generator?: Generator;
  onProgress?: (line: string) => void;
}

export interface EngineBenchRow {
  queues: number;
  generator_cpus: number[];     // xdp: where the generator's threads ran (and the kernel forwarded)
  engine_cpus: number[];        // where gateway A's engine threads ran
  size: number;
  generator_ceiling_mpps: number; // xdp: frames the generator made into a port that drops them
  generated_mpps: number;       // frames the generator made (the engine's run)
  kernel_offered_mpps: number;  // frames gateway A's LAN port took in, kernel run
  kernel_mpps: number;          // forwarded out of its WAN port
  engine_offered_mpps: number;
  engine_mpps: number;
  kernel_gbps: number;
  engine_gbps: number;
  engine_ns_per_packet: number; // engine threads' CPU time per forwarded packet
  stages_ns: Record<EngineStage | 'other', number>; // per packet, from the sampled profile
}

interface PortCounts { rx: number; rxDropped: number }

function link(lab: Lab, ns: string, dev: string): { rx: { packets: number; dropped: number }; tx: { packets: number } } {
  return JSON.parse(lab.exec(ns, ['ip', '-s', '-j', 'link', 'show', dev]))[0].stats64;
}

function lanPort(lab: Lab): PortCounts {
  const s = link(lab, lab.ns.gwA, 'lan0');
  return { rx: s.rx.packets, rxDropped: s.rx.dropped };
}

function wanTx(lab: Lab): number {
  return link(lab, lab.ns.gwA, 'wan0').tx.packets;
}

function cpuCount(): number {
  return Math.max(1, os.availableParallelism());
}

// Where the generator and gateway A's engine threads run. veth hands a frame sent on CPU k to
// its peer's RX queue k mod `queues`, so the generator needs `queues` CPUs to fill every queue;
// the engine gets CPUs of its own where that leaves any (the last `queues`), else all of them.
// The kernel's forwarding runs in the generator's softirq, on the generator's CPUs.
export function cpuPlan(queues: number, cpus: number): { generator: number[]; engine: number[] } {
  const all = Array.from({ length: cpus }, (_, i) => i);
  if (cpus - queues >= queues) return { generator: all.slice(0, cpus - queues), engine: all.slice(cpus - queues) };
  return { generator: all, engine: all.slice(0, Math.min(queues, cpus)) };
}

export async function runEngineBench(options: EngineBenchOptions = {}): Promise<{ rows: EngineBenchRow[]; json: Record<string, number> }> {
  const seconds = options.seconds ?? 2;
  const sizes = options.sizes ?? [64, 512, 1500];
  const queueCounts = options.queues ?? [1, 2];
  const generator = options.generator ?? 'xdp';
  const progress = options.onProgress ?? (() => undefined);
  const rows: EngineBenchRow[] = [];
  for (const queues of queueCounts) {
    const plan = cpuPlan(queues, cpuCount());
    const xdp = generator === 'xdp' ? { cpus: plan.generator } : undefined;
    await withLab({ queues }, async (lab) => {
      for (const [ns, dev] of [[lab.ns.gwA, 'wan0'], [lab.ns.wan, 'a0'], [lab.ns.wan, 'b0'], [lab.ns.gwB, 'wan0']]) {
        lab.exec(ns, ['ip', 'link', 'set', 'dev', dev, 'mtu', String(WAN_MTU)]);
      }
      lab.exec(lab.ns.hostA, ['ping', '-c', '2', '-i', '0.1', '-q', ADDRESSES.hostB], { allowFail: true });
      const gwMac = JSON.parse(lab.exec(lab.ns.gwA, ['ip', '-j', 'link', 'show', 'lan0']))[0].address as string;
      await lab.wan.set({ killed: true });
      const kernel = new Map<number, { offered: number; pps: number }>();
      const ceiling = new Map<number, number>();
      const peer = (program: string) => lab.exec(lab.ns.gwA, ['ip', 'link', 'set', 'dev', 'lan0', 'xdpdrv', ...(program === 'off' ? ['off'] : ['object', GENERATOR, 'program', program])]);
      if (xdp) {
        // The generator alone: gateway A's LAN port drops every frame as it comes (lab_drop).
        peer('lab_drop');
        for (const size of sizes) {
          progress(`generator alone, ${queues} queue(s), ${size} B`);
          const b = await udpBlast(lab, size, Math.min(seconds, 1), gwMac, xdp);
          ceiling.set(size, b.sent / b.seconds);
        }
        peer('off');
        peer('lab_pass');
      }
      for (const size of sizes) {
        progress(`kernel, ${queues} queue(s), ${size} B`);
        const port = lanPort(lab);
        const tx = wanTx(lab);
        const b = await udpBlast(lab, size, seconds, gwMac, xdp);
        const offered = xdp ? lanPort(lab).rx - port.rx : b.sent;
        kernel.set(size, { offered: offered / b.seconds, pps: (wanTx(lab) - tx) / b.seconds });
      }
      if (xdp) peer('off');
      await lab.wan.set({ killed: false });
      await withGateways(lab, { only: { a: ['--cpu', plan.engine.join(',')] } }, async (gw) => {
        await lab.wan.set({ killed: true });
        // Gateway A's counters from its next stats line (every 0.2 s), after the engine has had
        // 10 ms to publish what it did.
        const fresh = async (): Promise<EngineStats> => (await gw.a.nextStats())!;
        for (const size of sizes) {
          progress(`engine, ${queues} queue(s), ${size} B`);
          const before = await fresh();
          const port = lanPort(lab);
          const b = await udpBlast(lab, size, seconds, gwMac, xdp);
          const offered = xdp ? lanPort(lab).rx - port.rx : b.sent;
          await fresh();
          const after = await fresh();
          const packets = after.lanToWanPackets - before.lanToWanPackets;
          const engine = packets / b.seconds;
          const k = kernel.get(size)!;
          const nsPerPacket = (after.cpuNs - before.cpuNs) / Math.max(1, packets);
          const sampled = Math.max(1, after.stagesNs.packets - before.stagesNs.packets);
          const stages = {} as Record<EngineStage | 'other', number>;
          let staged = 0;
          for (const s of ENGINE_STAGES) {
            stages[s] = (after.stagesNs[s] - before.stagesNs[s]) / sampled;
            staged += stages[s];
          }
          stages.other = Math.max(0, nsPerPacket - staged);
          rows.push({
            queues,
            generator_cpus: xdp ? plan.generator : [],
            engine_cpus: plan.engine,
            size,
            generator_ceiling_mpps: (ceiling.get(size) ?? 0) / 1e6,
            generated_mpps: b.sent / b.seconds / 1e6,
            kernel_offered_mpps: k.offered / 1e6,
            kernel_mpps: k.pps / 1e6,
            engine_offered_mpps: offered / b.seconds / 1e6,
            engine_mpps: engine / 1e6,
            kernel_gbps: (k.pps * size * 8) / 1e9,
            engine_gbps: (engine * size * 8) / 1e9,
            engine_ns_per_packet: nsPerPacket,
            stages_ns: stages,
          });
        }
      });
    });
  }
  const json: Record<string, number> = {};
  for (const r of rows) {
    const at = `${r.size}_q${r.queues}`;
    json[`generator_ceiling_mpps_${at}`] = r.generator_ceiling_mpps;
    json[`generated_mpps_${at}`] = r.generated_mpps;
    json[`kernel_offered_mpps_${at}`] = r.kernel_offered_mpps;
    json[`kernel_mpps_${at}`] = r.kernel_mpps;
    json[`engine_offered_mpps_${at}`] = r.engine_offered_mpps;
    json[`engine_mpps_${at}`] = r.engine_mpps;
    json[`engine_gbps_${at}`] = r.engine_gbps;
    json[`kernel_gbps_${at}`] = r.kernel_gbps;
    json[`engine_ns_per_packet_${at}`] = r.engine_ns_per_packet;
    for (const [s, ns] of Object.entries(r.stages_ns)) json[`engine_ns_${s}_${at}`] = ns;
  }
  return { rows, json };
}

export function formatEngineBench(rows: EngineBenchRow[], generator: Generator = 'xdp'): string {
  const f = (x: number) => x.toFixed(3);
  const plans = [...new Map(rows.map((r) => [r.queues, `${r.queues} queue(s): engine on CPU ${r.engine_cpus.join(',')}${r.generator_cpus.length ? `, generator on CPU ${r.generator_cpus.join(',')}` : ''}`])).values()];
  const lines = [`UDP through gateway A, (8,3), veth in the lab (AF_XDP copy mode), packets/s out of its WAN port; generator: ${generator === 'xdp' ? 'XDP_TX (BPF_PROG_TEST_RUN live frames)' : 'one packet socket'}`,
    `  ${plans.join('; ')}`,
    '  queues  size  generator alone / made Mpps   kernel: in -> out Mpps (Gbit/s)   engine: in -> out Mpps (Gbit/s)   engine/kernel   engine CPU ns/packet (1 core: Mpps)'];
  for (const r of rows) {
    lines.push(`  ${String(r.queues).padStart(6)}  ${String(r.size).padStart(4)}  ${`${r.generator_ceiling_mpps ? f(r.generator_ceiling_mpps) : '-'} / ${f(r.generated_mpps)}`.padStart(27)}   ${f(r.kernel_offered_mpps).padStart(8)} -> ${f(r.kernel_mpps).padStart(6)} (${r.kernel_gbps.toFixed(2).padStart(5)})     ${f(r.engine_offered_mpps).padStart(10)} -> ${f(r.engine_mpps).padStart(6)} (${r.engine_gbps.toFixed(2).padStart(5)})   ${(r.engine_mpps / r.kernel_mpps).toFixed(2).padStart(13)}   ${r.engine_ns_per_packet.toFixed(0).padStart(8)} (${(1e3 / r.engine_ns_per_packet).toFixed(2)})`);
  }
  lines.push('', 'Where an engine packet\'s CPU time goes, ns per packet (sampled: one turn of the loop in 16)',
    `  queues  size  ${[...ENGINE_STAGES, 'other'].map((s) => s.padStart(8)).join('')}`);
  for (const r of rows) {
    lines.push(`  ${String(r.queues).padStart(6)}  ${String(r.size).padStart(4)}  ${[...ENGINE_STAGES, 'other' as const].map((s) => r.stages_ns[s].toFixed(0).padStart(8)).join('')}`);
  }
  lines.push('  targets: engine >= 1.0 x kernel at 1500 bytes; under 900 ns per packet, all in (10GbE at 1500 bytes with (8,3) on one core)');
  return lines.join('\n');
}
