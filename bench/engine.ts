// Engine forwarding rate in the lab: UDP from hostA through gateway A at 64, 512 and 1500
// bytes, the engine with (8,3) beside the kernel's own IP forwarding in the same topology and
// offload settings. Packets per second out of gateway A's WAN interface; the WAN emulator drops
// everything there (link killed), so nothing downstream limits the figure. And the engine's CPU
// time per packet (its threads' CPU time over the packets they forwarded): the cost of a packet
// whatever the generator manages to offer, so 1e9 / ns is what one core would forward. Prints
// figures; never passes or fails on them.
import { Lab } from '../src/lab/lab';
import { withGateways, withLab } from '../src/lab/fixture';
import { udpBlast } from '../src/lab/runs';
import { ADDRESSES } from '../src/lab/topology';

const WAN_MTU = 1700; // so a 1500-byte packet and its repair header fit: every size is protected

export interface EngineBenchOptions {
  seconds?: number;
  sizes?: number[];
}

export interface EngineBenchRow {
  size: number;
  offered_mpps: number;
  kernel_mpps: number;
  engine_mpps: number;
  kernel_gbps: number;
  engine_gbps: number;
  engine_ns_per_packet: number; // engine threads' CPU time per forwarded packet
}

function sh(lab: Lab, ns: string, argv: string[]): string {
  return lab.exec(ns, argv);
}

function txPackets(lab: Lab): number {
  const j = JSON.parse(sh(lab, lab.ns.gwA, ['ip', '-s', '-j', 'link', 'show', 'wan0']));
  return j[0].stats64.tx.packets as number;
}

export async function runEngineBench(options: EngineBenchOptions = {}): Promise<{ rows: EngineBenchRow[]; json: Record<string, number> }> {
  const seconds = options.seconds ?? 2;
  const sizes = options.sizes ?? [64, 512, 1500];
  return withLab({}, async (lab) => {
    for (const [ns, dev] of [[lab.ns.gwA, 'wan0'], [lab.ns.wan, 'a0'], [lab.ns.wan, 'b0'], [lab.ns.gwB, 'wan0']]) {
      sh(lab, ns, ['ip', 'link', 'set', 'dev', dev, 'mtu', String(WAN_MTU)]);
    }
    lab.exec(lab.ns.hostA, ['ping', '-c', '2', '-i', '0.1', '-q', ADDRESSES.hostB], { allowFail: true });
    const gwMac = JSON.parse(sh(lab, lab.ns.gwA, ['ip', '-j', 'link', 'show', 'lan0']))[0].address as string;
    await lab.wan.set({ killed: true });
    const kernel = new Map<number, { pps: number; offered: number }>();
    for (const size of sizes) {
      const before = txPackets(lab);
      const b = await udpBlast(lab, size, seconds, gwMac);
      kernel.set(size, { pps: (txPackets(lab) - before) / b.seconds, offered: b.sent / b.seconds });
    }
    await lab.wan.set({ killed: false });
    const rows: EngineBenchRow[] = [];
    await withGateways(lab, {}, async (gw) => {
      await lab.wan.set({ killed: true });
      // Gateway A's counters from its next stats line (every 0.2 s), after the engine has had
      // 10 ms to publish what it did.
      const fresh = async () => {
        await new Promise((resolve) => gw.a.child.stdout!.once('data', resolve));
        const s = gw.a.latest()!;
        return { packets: s.lanToWanPackets, cpuNs: s.cpuNs };
      };
      for (const size of sizes) {
        const before = await fresh();
        const b = await udpBlast(lab, size, seconds, gwMac);
        await fresh();
        const after = await fresh();
        const engine = (after.packets - before.packets) / b.seconds;
        const k = kernel.get(size)!;
        rows.push({
          size,
          offered_mpps: Math.max(k.offered, b.sent / b.seconds) / 1e6,
          kernel_mpps: k.pps / 1e6,
          engine_mpps: engine / 1e6,
          kernel_gbps: (k.pps * size * 8) / 1e9,
          engine_gbps: (engine * size * 8) / 1e9,
          engine_ns_per_packet: (after.cpuNs - before.cpuNs) / Math.max(1, after.packets - before.packets),
        });
      }
    });
    const json: Record<string, number> = {};
    for (const r of rows) {
      json[`engine_mpps_${r.size}`] = r.engine_mpps;
      json[`kernel_mpps_${r.size}`] = r.kernel_mpps;
      json[`engine_gbps_${r.size}`] = r.engine_gbps;
      json[`kernel_gbps_${r.size}`] = r.kernel_gbps;
      json[`offered_mpps_${r.size}`] = r.offered_mpps;
      json[`engine_ns_per_packet_${r.size}`] = r.engine_ns_per_packet;
    }
    return { rows, json };
  });
}

export function formatEngineBench(rows: EngineBenchRow[]): string {
  const f = (x: number) => x.toFixed(3);
  const lines = ['UDP through gateway A, (8,3), veth in the lab (AF_XDP copy mode), packets/s out of its WAN port',
    '  size   offered Mpps   kernel Mpps (Gbit/s)   engine Mpps (Gbit/s)   engine/kernel   engine CPU ns/packet (1 core: Mpps)'];
  for (const r of rows) {
    lines.push(`  ${String(r.size).padStart(4)}   ${f(r.offered_mpps).padStart(12)}   ${f(r.kernel_mpps).padStart(11)} (${r.kernel_gbps.toFixed(2).padStart(5)})   ${f(r.engine_mpps).padStart(11)} (${r.engine_gbps.toFixed(2).padStart(5)})   ${(r.engine_mpps / r.kernel_mpps).toFixed(2).padStart(13)}   ${r.engine_ns_per_packet.toFixed(0).padStart(8)} (${(1e3 / r.engine_ns_per_packet).toFixed(2)})`);
  }
  lines.push('  targets: engine >= 1.0 x kernel at 1500 bytes; under 900 ns per packet, all in (10GbE at 1500 bytes with (8,3) on one core)');
  return lines.join('\n');
}
