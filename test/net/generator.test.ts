// The engine bench's traffic generator (bpf/lab_gen.bpf.c through native/lab/blaster.cc) and the
// engine's sampled stage profile, in the lab: frames made by XDP_TX cross both gateways to a
// host, each one distinct, and gateway A's profile has timed them. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withLabGateways } from '../../src/lab/fixture';
import { udpBlast, udpCount } from '../../src/lab/runs';
import { ADDRESSES } from '../../src/lab/topology';
import { ENGINE_STAGES } from '../../src/native/addon';
import { cpuPlan } from '../../bench/engine';

const generator = suite('engine bench: the XDP generator and the stage profile');

generator('cpuPlan keeps the engine off the generator\'s CPUs when there are enough, and fills every queue', () => {
  assert.equal(cpuPlan(1, 2), { generator: [0], engine: [1] });
  assert.equal(cpuPlan(2, 4), { generator: [0, 1], engine: [2, 3] });
  assert.equal(cpuPlan(2, 2), { generator: [0, 1], engine: [0, 1] });
  assert.equal(cpuPlan(1, 1), { generator: [0], engine: [0] });
});

generator('XDP_TX frames cross both gateways to hostB, each distinct; gateway A\'s sampled profile times every stage', async () => {
  const { result, a } = await withLabGateways({}, {}, async ({ lab, gw }) => {
    lab.exec(lab.ns.hostA, ['ping', '-c', '2', '-i', '0.1', '-q', ADDRESSES.hostB], { allowFail: true });
    const gwMac = JSON.parse(lab.exec(lab.ns.gwA, ['ip', '-j', 'link', 'show', 'lan0']))[0].address as string;
    const port = 5009;
    const counting = await udpCount(lab, port, 1000);
    const sent = await udpBlast(lab, 512, 0.3, gwMac, { cpus: [0] }, port);
    const got = await counting.report;
    return { sent, got, stats: gw.a.latest() };
  });
  const { sent, got } = result;
  console.log(`  generated ${sent.sent} frames in ${sent.seconds.toFixed(2)} s; hostB got ${got.received} distinct, ${got.duplicates} again; gateway A forwarded ${a!.lanToWanPackets}`);
  assert.ok(sent.sent >= 1000, `the generator made frames (${sent.sent})`);
  assert.ok(got.received >= 100, `hostB got them through both gateways (${got.received})`);
  assert.ok(got.received <= sent.sent, 'no more than were made');
  assert.is(got.duplicates, 0, 'each frame distinct (the generator writes a count into each)');
  assert.ok(a!.lanToWanPackets >= got.received, 'gateway A forwarded at least what arrived');
  const st = a!.stagesNs;
  const lanFrames = a!.lanToWanPackets + a!.txDropped;
  assert.ok(st.packets > 0 && st.packets < lanFrames / 4, `one turn in 16 is sampled: ${st.packets} of ${lanFrames} LAN frames`);
  for (const s of ENGINE_STAGES.filter((x) => x !== 'lock')) assert.ok(st[s] > 0, `stage ${s} was timed (${JSON.stringify(st)})`);
});

generator.run();
