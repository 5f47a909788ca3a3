// Several gateway pairs between the same two sites, as a site deploys them when one gateway
// machine is not enough (10G links beyond one core, or redundancy): each site's router spreads
// flows over the pairs by ECMP on the 5-tuple, and each pair carries, protects and reports on
// the flows it is given, independently of the others (docs/gateway.md, "Several pairs").
//
//   hostA ── rtA ─┬─ gwA1 ── wr1 ══ wan1 ══ gwB1 ─┬─ rtB ── hostB
//                 └─ gwA2 ── wr2 ══ wan2 ══ gwB2 ─┘
//   site A 10.1.0.0/16: hostA 10.1.0.2, rtA 10.1.0.1 and 10.1.<i>.1, gwA<i> 10.1.<i>.2
//   WAN <i>: gwA<i> 10.98.<i>.1, router wr<i> 10.98.<i>.254 and 10.99.<i>.1, gwB<i> 10.99.<i>.2
//   site B 10.2.0.0/16 alike
//
// A router (wr<i>) stands between each pair's gateways, as on a real WAN: the peer is not on the
// gateway's link, and every packet between them loses a TTL on the way.
//
// Like the two-site lab (topology.ts), everything is in namespaces with a per-run prefix,
// removed on destroy, at exit and on a fatal signal.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { makeKeys } from './lab';
import type { LabKeys } from './lab';
import { startGatewayIn, labRunDir } from './gateways';
import type { GatewayProcess } from './gateways';
import { LabError, nsRun, run, spawnInNs } from './netns';
import { ADDRESSES, HOST_CONGESTION_CONTROL, HOST_TCP_REORDERING, hookExit, live, newLabPrefix, plainEthernet, removeByPrefix } from './topology';
import { Wan } from './wan';
import type { WanSettings } from './wan';

export interface PairsLabOptions extends Partial<WanSettings> {
  pairs?: number; // 2 by default, at most 8
}

export class PairsLab {
  readonly ns: { hostA: string; rtA: string; hostB: string; rtB: string; gwA: string[]; gwB: string[]; wanRouter: string[]; wan: string[] };
  readonly addresses: { hostA: string; hostB: string; gwALan: string[]; gwBLan: string[]; gwAWan: string[]; gwBWan: string[] };
  readonly keys: LabKeys;
  readonly wans: Wan[] = [];
  private readonly children = new Set<ChildProcess>();

  private constructor(readonly prefix: string, readonly pairs: number) {
    const n = (s: string) => `${prefix}-${s}`;
    const each = (f: (i: number) => string) => Array.from({ length: pairs }, (_, i) => f(i + 1));
    this.ns = { hostA: n('hostA'), rtA: n('rtA'), hostB: n('hostB'), rtB: n('rtB'), gwA: each((i) => n(`gwA${i}`)), gwB: each((i) => n(`gwB${i}`)), wanRouter: each((i) => n(`wr${i}`)), wan: each((i) => n(`wan${i}`)) };
    this.addresses = {
      // The hosts have the two-site lab's addresses, so what runs between them (runs.ts,
      // records.ts) runs here unchanged.
      hostA: ADDRESSES.hostA, hostB: ADDRESSES.hostB,
      gwALan: each((i) => `10.1.${i}.2`), gwBLan: each((i) => `10.2.${i}.2`),
      gwAWan: each((i) => `10.98.${i}.1`), gwBWan: each((i) => `10.99.${i}.2`),
    };
    this.keys = makeKeys(pairs);  // a key per pair; the hosts' feedback key file holds them all
  }

  static async create(options: PairsLabOptions = {}): Promise<PairsLab> {
    const pairs = options.pairs ?? 2;
    if (!Number.isInteger(pairs) || pairs < 1 || pairs > 8) throw new LabError(`pairs must be 1 to 8, got ${pairs}`);
    hookExit();
    const lab = new PairsLab(newLabPrefix(), pairs);
    live.add(lab.prefix);
    try {
      lab.build();
      for (let i = 0; i < pairs; i++) {
        lab.wans.push(await Wan.startOn({ ns: lab.ns.wan[i], a: 'a0', b: 'b0' }, { delayMs: 0, loss: 0, burstLength: 1, killed: false, ...options }));
      }
      return lab;
    } catch (err) {
      await lab.destroy();
      throw err;
    }
  }

  private build(): void {
    const { ns, addresses: ad } = this;
    for (const name of [ns.hostA, ns.rtA, ns.hostB, ns.rtB, ...ns.gwA, ...ns.gwB, ...ns.wanRouter, ...ns.wan]) {
      run(['ip', 'netns', 'add', name]);
      nsRun(name, ['ip', 'link', 'set', 'lo', 'up']);
      nsRun(name, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
    const link = (a: string, ifa: string, b: string, ifb: string) => {
      run(['ip', '-n', a, 'link', 'add', ifa, 'type', 'veth', 'peer', 'name', ifb, 'netns', b]);
      for (const [n, i] of [[a, ifa], [b, ifb]]) {
        plainEthernet(n, i);
        nsRun(n, ['ip', 'link', 'set', i, 'up']);
      }
    };
    const addr = (n: string, a: string, dev: string) => nsRun(n, ['ip', 'addr', 'add', `${a}/24`, 'dev', dev]);
    for (const [site, host, rt, gws] of [['1', ns.hostA, ns.rtA, ns.gwA], ['2', ns.hostB, ns.rtB, ns.gwB]] as const) {
      link(host, 'eth0', rt, 'h0');
      addr(host, `10.${site}.0.2`, 'eth0');
      addr(rt, `10.${site}.0.1`, 'h0');
      nsRun(host, ['ip', 'route', 'add', 'default', 'via', `10.${site}.0.1`]);
      nsRun(host, ['sysctl', '-qw', `net.ipv4.tcp_congestion_control=${HOST_CONGESTION_CONTROL}`,
        `net.ipv4.tcp_reordering=${HOST_TCP_REORDERING}`, 'net.ipv4.tcp_no_metrics_save=1', 'net.ipv4.tcp_slow_start_after_idle=0']);
      gws.forEach((gw, k) => {
        const i = k + 1;
        link(rt, `g${i}`, gw, 'lan0');
        addr(rt, `10.${site}.${i}.1`, `g${i}`);
        addr(gw, `10.${site}.${i}.2`, 'lan0');
        // Site A's gateway has the WAN router on its link; site B's has it across the delay line.
        if (site === '1') link(gw, 'wan0', ns.wanRouter[k], 'r0');
        else link(gw, 'wan0', ns.wan[k], 'b0');
        addr(gw, site === '1' ? ad.gwAWan[k] : ad.gwBWan[k], 'wan0');
        nsRun(gw, ['ip', 'route', 'add', `10.${site}.0.0/16`, 'via', `10.${site}.${i}.1`]);
        nsRun(gw, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      });
      // ECMP over the pairs, by the 5-tuple (policy 1); a path whose link is down is left out.
      nsRun(rt, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.fib_multipath_hash_policy=1', 'net.ipv4.conf.all.ignore_routes_with_linkdown=1']);
      const nexthops = gws.flatMap((_, k) => ['nexthop', 'via', `10.${site}.${k + 1}.2`, 'dev', `g${k + 1}`]);
      nsRun(rt, ['ip', 'route', 'add', `10.${site === '1' ? '2' : '1'}.0.0/16`, ...nexthops]);
    }
    ns.wanRouter.forEach((router, k) => {
      const i = k + 1;
      link(router, 'e0', ns.wan[k], 'a0');
      addr(router, `10.98.${i}.254`, 'r0');
      addr(router, `10.99.${i}.1`, 'e0');
      nsRun(router, ['ip', 'route', 'add', '10.1.0.0/16', 'via', ad.gwAWan[k]]);
      nsRun(router, ['ip', 'route', 'add', '10.2.0.0/16', 'via', ad.gwBWan[k]]);
      nsRun(router, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      // Everything across the WAN, the peer gateway included, is behind the router.
      nsRun(ns.gwA[k], ['ip', 'route', 'add', '10.2.0.0/16', 'via', `10.98.${i}.254`]);
      nsRun(ns.gwA[k], ['ip', 'route', 'add', `10.99.${i}.0/24`, 'via', `10.98.${i}.254`]);
      nsRun(ns.gwB[k], ['ip', 'route', 'add', '10.1.0.0/16', 'via', `10.99.${i}.1`]);
      nsRun(ns.gwB[k], ['ip', 'route', 'add', `10.98.${i}.0/24`, 'via', `10.99.${i}.1`]);
    });
    for (const w of ns.wan) nsRun(w, ['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
  }

  exec(ns: string, argv: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): string {
    return nsRun(ns, argv, options);
  }

  spawn(ns: string, argv: string[]): ChildProcess {
    return spawnInNs(ns, argv, this.children);
  }

  // Both gateways of pair i (0-based), with the pair's key.
  async startPair(i: number, extra: string[] = []): Promise<{ a: GatewayProcess; b: GatewayProcess }> {
    const cpus = os.cpus().length;
    const withKey = extra.includes('--insecure-no-auth') ? extra : ['--key-file', this.keys.pairs[i], ...extra];
    const a = await startGatewayIn(this, this.ns.gwA[i], this.addresses.gwBWan[i], '10.2.0.0/16', (2 * i) % cpus, withKey);
    try {
      return { a, b: await startGatewayIn(this, this.ns.gwB[i], this.addresses.gwAWan[i], '10.1.0.0/16', (2 * i + 1) % cpus, withKey) };
    } catch (err) {
      await a.stop();
      throw err;
    }
  }

  // As a router's health check would: the routers stop sending over pair i (its links down).
  takePathDown(i: number): void {
    nsRun(this.ns.rtA, ['ip', 'link', 'set', `g${i + 1}`, 'down']);
    nsRun(this.ns.rtB, ['ip', 'link', 'set', `g${i + 1}`, 'down']);
  }

  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    for (const w of this.wans) await w.stop().catch(() => undefined);
    for (const gw of [...this.ns.gwA, ...this.ns.gwB]) {
      try { fs.rmSync(labRunDir(gw), { recursive: true, force: true }); } catch { /* not there */ }
    }
    removeByPrefix(this.prefix);
    live.delete(this.prefix);
    fs.rmSync(this.keys.dir, { recursive: true, force: true });
  }
}
