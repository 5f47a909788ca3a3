// The two-site test network of DESIGN.md, as network namespaces joined by veth pairs:
//
//   hostA ── gwA ══ wan ══ gwB ── hostB
//   10.1.0.2  10.1.0.1 | 10.99.0.1   10.99.0.2 | 10.2.0.1  10.2.0.2
//
// With a client site (optional), a third site's host joined to each site's host by a link of
// its own, which the WAN's kill does not touch (docs/lab.md):
//
//   hostA ─siteC── toA─ hostC ─toB ──siteC─ hostB
//   10.3.1.1    10.3.1.2   10.3.2.2   10.3.2.1
//
// Every namespace name starts with a per-run prefix; destroy() removes them all, and so does
// process exit or a fatal signal. The WAN namespace forwards nothing by itself: its delay line
// bridges the two links (src/lab/wan.ts), its XDP program drops packets.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { LabError, deleteNamespace, listNamespaces, nsRun, run } from './netns';

export const ADDRESSES = {
  hostA: '10.1.0.2',
  gwALan: '10.1.0.1',
  gwAWan: '10.99.0.1',
  gwBWan: '10.99.0.2',
  gwBLan: '10.2.0.1',
  hostB: '10.2.0.2',
  siteA: '10.1.0.0/24',
  siteB: '10.2.0.0/24',
  // The client site: hostC's ends of its links to hostA and hostB, and theirs.
  hostCToA: '10.3.1.2',
  hostAToC: '10.3.1.1',
  hostCToB: '10.3.2.2',
  hostBToC: '10.3.2.1',
} as const;

export const PREFIX_BASE = 'mlab';

export interface Topology {
  prefix: string;
  ns: { hostA: string; gwA: string; wan: string; gwB: string; hostB: string; hostC?: string };
  // Interface names inside each namespace.
  ifs: { host: 'eth0'; lan: 'lan0'; wan: 'wan0'; wanA: 'a0'; wanB: 'b0'; toClients: 'siteC'; clientToA: 'toA'; clientToB: 'toB' };
}

// Prefixes of labs alive in this process, removed at exit and on a fatal signal.
export const live = new Set<string>();
let hooked = false;

function cleanupAll(): void {
  for (const prefix of live) removeByPrefix(prefix);
  live.clear();
}

export function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      cleanupAll();
      process.kill(process.pid, signal);
    });
  }
}

// A prefix no other lab of this machine has: the process and a random part.
export function newLabPrefix(): string {
  return `${PREFIX_BASE}${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
}

export function removeByPrefix(prefix: string): void {
  for (const ns of listNamespaces()) if (ns.startsWith(`${prefix}-`)) deleteNamespace(ns);
}

// Offloads that would hand the delay line frames larger than the MTU, or with checksums left to
// hardware that is not there, are turned off on every lab interface.
export function plainEthernet(ns: string, dev: string): void {
  nsRun(ns, ['ethtool', '-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off'], { allowFail: true });
}

// TCP congestion control of the hosts: Reno, as in the SMFS paper's experiments. Not inherited
// from the machine, which may run BBR (blind to random loss); a namespace may only pick one of
// net.ipv4.tcp_allowed_congestion_control, which always holds reno.
export const HOST_CONGESTION_CONTROL = 'reno';

// A rebuilt packet reaches its host after the packets that follow it in its bin: up to r - 1 of
// them when the first layer rebuilds it, up to r x 10 when the second does. TCP's default
// duplicate-ACK threshold of 3 takes that for a loss and retransmits for nothing; storage servers
// behind a Maelstrom gateway should tolerate reordering (docs/gateway.md). Both runs of any
// comparison, with and without gateways, use the same hosts.
export const HOST_TCP_REORDERING = 100;

// The TCP settings the lab gives its hosts, which kernelDefaultTcp puts back to what a fresh
// namespace has: the WAN namespace's, which the lab leaves alone.
const HOST_TCP_SYSCTLS = ['net.ipv4.tcp_reordering', 'net.ipv4.tcp_no_metrics_save', 'net.ipv4.tcp_slow_start_after_idle'];

// Hosts as users run them (the reproduction's baselines, bench goodput): the kernel's TCP defaults
// (those of a fresh namespace) and `cc` for every connection, set on the hosts' routes: a
// namespace may only make the default a congestion control of the machine's allowed list, which
// need not hold cubic, while a route's may be any the kernel has (docs/decisions.md 86). Called
// again, it switches the hosts to another congestion control.
export function kernelDefaultTcp(t: Topology, cc: string): void {
  const values = HOST_TCP_SYSCTLS.map((k) => `${k}=${nsRun(t.ns.wan, ['sysctl', '-n', k]).trim()}`);
  const routes: [string, string][] = [[t.ns.hostA, ADDRESSES.gwALan], [t.ns.hostB, ADDRESSES.gwBLan]];
  for (const [ns, via] of routes) {
    nsRun(ns, ['sysctl', '-qw', ...values]);
    nsRun(ns, ['ip', 'route', 'replace', 'default', 'via', via, 'congctl', 'lock', cc]);
  }
}

// `queues`: RX and TX queues of every veth (1 by default). With more, veth delivers a frame on
// the RX queue of the TX queue it was sent on, so hosts can spread flows over the gateways'
// queues (see steerByPort) as a multi-queue NIC's RSS would.
// `hostOffloads`: the hosts keep their interfaces' offloads as the kernel sets them (TX checksum
// offload: TCP and UDP leave with a partial checksum, as from containers and VMs); without it
// every interface sends plain, complete frames.
// `clientSite`: also hostC, the client site, with its own links to hostA and hostB.
export function createTopology(congestionControl = HOST_CONGESTION_CONTROL, queues = 1, options: { clientSite?: boolean; hostOffloads?: boolean } = {}): Topology {
  hookExit();
  const prefix = newLabPrefix();
  const hostOffloads = options.hostOffloads ?? false;
  const ns: Topology['ns'] = {
    hostA: `${prefix}-hostA`,
    gwA: `${prefix}-gwA`,
    wan: `${prefix}-wan`,
    gwB: `${prefix}-gwB`,
    hostB: `${prefix}-hostB`,
    ...(options.clientSite ? { hostC: `${prefix}-hostC` } : {}),
  };
  const t: Topology = { prefix, ns, ifs: { host: 'eth0', lan: 'lan0', wan: 'wan0', wanA: 'a0', wanB: 'b0', toClients: 'siteC', clientToA: 'toA', clientToB: 'toB' } };
  live.add(prefix);
  try {
    for (const name of Object.values(ns) as string[]) {
      run(['ip', 'netns', 'add', name]);
      nsRun(name, ['ip', 'link', 'set', 'lo', 'up']);
      nsRun(name, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    const link = (a: string, ifa: string, b: string, ifb: string) => {
      const q = ['numrxqueues', String(queues), 'numtxqueues', String(queues)];
      run(['ip', '-n', a, 'link', 'add', ifa, ...q, 'type', 'veth', 'peer', 'name', ifb, 'netns', b, ...q]);
      for (const [n, i] of [[a, ifa], [b, ifb]]) {
        if (!(hostOffloads && (n === ns.hostA || n === ns.hostB))) plainEthernet(n, i);
        nsRun(n, ['ip', 'link', 'set', i, 'up']);
      }
    };
    link(ns.hostA, 'eth0', ns.gwA, 'lan0');
    link(ns.gwA, 'wan0', ns.wan, 'a0');
    link(ns.wan, 'b0', ns.gwB, 'wan0');
    link(ns.gwB, 'lan0', ns.hostB, 'eth0');
    const addr = (n: string, a: string, dev: string) => nsRun(n, ['ip', 'addr', 'add', `${a}/24`, 'dev', dev]);
    addr(ns.hostA, ADDRESSES.hostA, 'eth0');
    addr(ns.gwA, ADDRESSES.gwALan, 'lan0');
    addr(ns.gwA, ADDRESSES.gwAWan, 'wan0');
    addr(ns.gwB, ADDRESSES.gwBWan, 'wan0');
    addr(ns.gwB, ADDRESSES.gwBLan, 'lan0');
    addr(ns.hostB, ADDRESSES.hostB, 'eth0');
    for (const host of [ns.hostA, ns.hostB]) {
      // No metrics carried from one connection to the next: runs compared must start alike.
      nsRun(host, ['sysctl', '-qw', `net.ipv4.tcp_congestion_control=${congestionControl}`,
        `net.ipv4.tcp_reordering=${HOST_TCP_REORDERING}`, 'net.ipv4.tcp_no_metrics_save=1',
        // Storage servers mirror over long-lived connections that pause between bursts.
        'net.ipv4.tcp_slow_start_after_idle=0']);
    }
    nsRun(ns.hostA, ['ip', 'route', 'add', 'default', 'via', ADDRESSES.gwALan]);
    nsRun(ns.hostB, ['ip', 'route', 'add', 'default', 'via', ADDRESSES.gwBLan]);
    nsRun(ns.gwA, ['ip', 'route', 'add', ADDRESSES.siteB, 'via', ADDRESSES.gwBWan]);
    nsRun(ns.gwB, ['ip', 'route', 'add', ADDRESSES.siteA, 'via', ADDRESSES.gwAWan]);
    for (const gw of [ns.gwA, ns.gwB]) nsRun(gw, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    nsRun(ns.wan, ['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    if (ns.hostC) {
      // The client site reaches each site's host directly; it forwards nothing between them, so
      // the mirror stream has no way around the WAN.
      link(ns.hostA, 'siteC', ns.hostC, 'toA');
      link(ns.hostB, 'siteC', ns.hostC, 'toB');
      addr(ns.hostA, ADDRESSES.hostAToC, 'siteC');
      addr(ns.hostC, ADDRESSES.hostCToA, 'toA');
      addr(ns.hostB, ADDRESSES.hostBToC, 'siteC');
      addr(ns.hostC, ADDRESSES.hostCToB, 'toB');
      nsRun(ns.hostC, ['ip', 'route', 'add', ADDRESSES.siteA, 'via', ADDRESSES.hostAToC]);
      nsRun(ns.hostC, ['ip', 'route', 'add', ADDRESSES.siteB, 'via', ADDRESSES.hostBToC]);
      nsRun(ns.hostC, ['sysctl', '-qw', 'net.ipv4.ip_forward=0', `net.ipv4.tcp_congestion_control=${congestionControl}`, 'net.ipv4.tcp_no_metrics_save=1']);
    }
  } catch (err) {
    destroyTopology(t);
    throw err instanceof LabError ? err : new LabError(`cannot build the lab: ${String(err)}`);
  }
  return t;
}

// Each TCP or UDP flow leaving `dev` takes TX queue (p mod 64) mod n, p the lower of its ports and
// n the queue count (bpf/lab_txq.bpf.c, tc egress): whatever CPU sends a flow's packets, they
// reach the peer on one RX queue, as a multi-queue NIC's RSS would keep them.
export function steerByPort(ns: string, dev: string): void {
  const program = path.resolve(__dirname, '..', '..', '..', 'out', 'bpf', 'lab_txq.bpf.o');
  if (!existsSync(program)) throw new LabError(`${program} is missing: run make build`);
  nsRun(ns, ['tc', 'qdisc', 'add', 'dev', dev, 'clsact']);
  nsRun(ns, ['tc', 'filter', 'add', 'dev', dev, 'egress', 'bpf', 'direct-action', 'obj', program, 'sec', 'tc']);
}

export function destroyTopology(t: Topology): void {
  removeByPrefix(t.prefix);
  live.delete(t.prefix);
}
