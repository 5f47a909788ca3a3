// The gateway's XDP program, table-driven through BPF_PROG_TEST_RUN inside a lab namespace (so
// the ingress interfaces are real): what it passes, drops and counts when no engine socket is
// bound. Steering into sockets is covered by the engine's tests.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ADDRESSES, createTopology, destroyTopology } from '../../src/lab/topology';
import { nsRun } from '../../src/lab/netns';
import { frame, ipv4Bytes } from '../helpers/frames';
import { addon } from '../../src/native/addon';
import { REPAIR_PORT, XDP_STATS } from '../../src/native/constants';
import { runInBpfSandbox, xdpContext } from '../helpers/bpf-sandbox';
import type { Scenario } from '../helpers/bpf-sandbox';

const XDP_DROP = 1;
const XDP_PASS = 2;
// gw_stats is indexed by enum gw_stat, in the order of the addon's names.
const STATS = XDP_STATS;

const gw = suite('gateway XDP program');

gw('passes, drops and counts every kind of frame, and leaves passed frames untouched', () => {
  const t = createTopology();
  try {
    const ifindex = (dev: string) => Number(JSON.parse(nsRun(t.ns.gwA, ['ip', '-j', 'link', 'show', dev]))[0].ifindex);
    const lan = ifindex('lan0');
    const wan = ifindex('wan0');
    const config = addon().packGatewayConfig({ lanIfindex: lan, wanIfindex: wan, peerAddr: ADDRESSES.gwBWan, repairPort: REPAIR_PORT });
    // Remote site 10.2.0.0/24: LPM key { prefixlen u32 LE, addr network order }.
    const remote = { map: 'gw_remote', key: [24, 0, 0, 0, ...ipv4Bytes('10.2.0.0')], value: [1] };
    const hostA = ADDRESSES.hostA;
    const hostB = ADDRESSES.hostB;
    const cases: [string, Buffer, number, number, (typeof STATS)[number]][] = [
      ['remote-bound, no engine socket: fail-open', frame({ src: hostA, dst: hostB }), lan, XDP_PASS, 'lanNoSocket'],
      ['local traffic on the LAN', frame({ src: hostA, dst: ADDRESSES.gwALan }), lan, XDP_PASS, 'lanLocal'],
      ['ARP', frame({ src: hostA, dst: hostB, etherType: 0x0806 }), lan, XDP_PASS, 'nonIpv4'],
      ['runt', frame({ src: hostA, dst: hostB }).subarray(0, 20), lan, XDP_PASS, 'badRunt'],
      ['IHL below 5', (() => { const f = frame({ src: hostA, dst: hostB }); f[14] = 0x44; return f; })(), lan, XDP_PASS, 'badIhl'],
      ['IHL past the frame', (() => { const f = frame({ src: hostA, dst: hostB }).subarray(0, 40); f[14] = 0x4f; return f; })(), lan, XDP_PASS, 'badIhl'],
      ['IP options', frame({ src: hostA, dst: hostB, ihl: 6 }), lan, XDP_PASS, 'ipOptions'],
      ['fragment', frame({ src: hostA, dst: hostB, fragment: true }), lan, XDP_PASS, 'fragment'],
      ['repair from the peer, no engine socket', frame({ src: ADDRESSES.gwBWan, dst: ADDRESSES.gwAWan, dstPort: 7600 }), wan, XDP_DROP, 'wanNoSocket'],
      ['forged repair from another host', frame({ src: '10.99.0.77', dst: ADDRESSES.gwAWan, dstPort: 7600 }), wan, XDP_DROP, 'wanForgedRepair'],
      ['data from the remote site, no engine socket', frame({ src: hostB, dst: hostA }), wan, XDP_PASS, 'wanNoSocket'],
      ['other WAN traffic', frame({ src: '10.99.0.77', dst: ADDRESSES.gwAWan }), wan, XDP_PASS, 'wanOther'],
    ];
    const scenarios: Scenario[] = cases.map(([name, packet, ifi], i) => ({
      name,
      packet,
      repeat: 1,
      ctx: xdpContext(packet.length, ifi),
      ...(i === 0 ? { config: { map: 'gw_config', value: [...config] }, updates: [remote] } : {}),
    }));
    const results = runInBpfSandbox('out/bpf/gateway.bpf.o', ['gw_stats'], scenarios, t.ns.gwA);
    let before = new Array(STATS.length).fill(0);
    results.forEach((r, i) => {
      const [name, packet, , action, stat] = cases[i];
      assert.is(r.retval, action, `${name}: action`);
      assert.ok(r.dataOut.equals(packet), `${name}: frame changed`);
      const now = STATS.map((_, k) => r.counters.gw_stats[k] ?? 0);
      const moved = STATS.filter((_, k) => now[k] !== before[k]);
      assert.equal(moved, [stat], `${name}: counters`);
      before = now;
    });
  } finally {
    destroyTopology(t);
  }
});

gw.run();
