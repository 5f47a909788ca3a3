// What the gateway needs to know about the host it runs on, read through iproute2 in the
// current network namespace: interface MTUs, MACs, addresses, routes and neighbours.
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { MaelstromError } from '../errors';

function ipJson<T>(args: string[]): T {
  try {
    return JSON.parse(execFileSync('ip', ['-j', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || '[]') as T;
  } catch (cause) {
    throw new MaelstromError('MAELSTROM_ERR_INTERFACE', `'ip ${args.join(' ')}' failed: ${(cause as { stderr?: string }).stderr?.trim() ?? String(cause)}`, { cause });
  }
}

export interface InterfaceInfo {
  name: string;
  mtu: number;
  mac: Buffer;
  up: boolean;
  ipv4: string[];
}

export function interfaceInfo(name: string): InterfaceInfo {
  let links: { ifname: string; mtu: number; address: string; flags: string[] }[];
  try {
    links = ipJson(['link', 'show', 'dev', name]);
  } catch {
    throw new MaelstromError('MAELSTROM_ERR_INTERFACE', `no interface named ${name}: check 'ip link' (and the network namespace you run in)`);
  }
  const link = links[0];
  const addrs = ipJson<{ addr_info: { family: string; local: string }[] }[]>(['-4', 'addr', 'show', 'dev', name]);
  return {
    name,
    mtu: link.mtu,
    mac: Buffer.from(link.address.split(':').map((h) => parseInt(h, 16))),
    up: link.flags.includes('UP') && link.flags.includes('LOWER_UP'),
    ipv4: addrs.flatMap((a) => a.addr_info.filter((i) => i.family === 'inet').map((i) => i.local)),
  };
}

// The next hop towards addr and its MAC. A missing neighbour entry is resolved by sending one
// datagram to the discard port of addr itself (the peer gateway), then waiting for the kernel.
export async function nextHop(addr: string, expectDev: string, timeoutMs = 2000): Promise<{ via: string; mac: Buffer }> {
  const routes = ipJson<{ dev: string; gateway?: string }[]>(['route', 'get', addr]);
  const route = routes[0];
  if (!route || route.dev !== expectDev) {
    throw new MaelstromError('MAELSTROM_ERR_PEER_UNREACHABLE',
      `the peer ${addr} is reached through ${route?.dev ?? 'no interface'}, not the WAN interface ${expectDev}: add a route to it via ${expectDev}`);
  }
  const via = route.gateway ?? addr;
  const deadline = Date.now() + timeoutMs;
  let poked = false;
  for (;;) {
    const neigh = ipJson<{ lladdr?: string; state?: string[] }[]>(['neigh', 'show', 'to', via, 'dev', expectDev]);
    const entry = neigh.find((n) => n.lladdr && !(n.state ?? []).includes('FAILED'));
    if (entry?.lladdr) return { via, mac: Buffer.from(entry.lladdr.split(':').map((h) => parseInt(h, 16))) };
    if (Date.now() > deadline) {
      throw new MaelstromError('MAELSTROM_ERR_PEER_UNREACHABLE', `no link-layer address for ${via} on ${expectDev} (ARP got no answer): is the peer gateway up?`);
    }
    if (!poked) {
      poked = true;
      await new Promise<void>((resolve) => {
        const s = dgram.createSocket('udp4');
        s.send(Buffer.alloc(0), 9, addr, () => { s.close(); resolve(); });
      });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function bpffsMounted(path = '/sys/fs/bpf'): boolean {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() === 'bpf_fs';
  } catch {
    return false;
  }
}

export function mountBpffs(path = '/sys/fs/bpf'): void {
  execFileSync('mount', ['-t', 'bpf', 'bpf', path], { stdio: 'ignore' });
}

export function rxQueues(name: string): number {
  try {
    return execFileSync('ls', [`/sys/class/net/${name}/queues`], { encoding: 'utf8' }).split('\n').filter((q) => q.startsWith('rx-')).length || 1;
  } catch {
    return 1;
  }
}
