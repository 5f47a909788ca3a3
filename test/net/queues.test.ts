// One engine thread per queue pair, in a lab whose veths have two queues each: the hosts steer
// each flow to a queue by its port (bpf/lab_txq.bpf.c), so the two flows reach gateway A on
// different RX queues, each served by its own thread; gateway B's threads rebuild what the WAN lost whichever of its queues the data and the
// repairs covering it arrived on. Needs root and two CPUs.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withGateways, withLab } from '../../src/lab/fixture';
import { steerByPort } from '../../src/lab/topology';
import { tcpTransfer } from '../../src/lab/runs';

const MB = 1_000_000;
// Segments of a 20 MB flow at most: each carries up to 1448 bytes (MTU 1500, timestamps).
const SEGMENTS = Math.floor((20 * MB) / 1448);
const queues = suite('engine threads: one per queue pair, one code across them');

queues('two flows on two LAN queues: each has its engine thread, both arrive intact through 1% loss, the far gateway rebuilds across its queues', async () => {
  await withLab({ delayMs: 5, loss: 0.01, queues: 2 }, async (lab) => {
    steerByPort(lab.ns.hostA, 'eth0');
    steerByPort(lab.ns.hostB, 'eth0');
    const { a, b } = await withGateways(lab, { extra: ['--cpu', '0,1'] }, async (gw) => {
      for (const g of [gw.a, gw.b]) {
        assert.equal(g.up.workers, 2, 'two queue pairs, two engine threads');
        assert.equal(g.up.cpu, [0, 1]);
        assert.is(g.up.decoderGraceUs, 1000, 'two WAN queues reorder: the decoder waits for late packets by default');
      }
      // Ports 5100 and 5101: LAN queues 0 and 1.
      const runs = await Promise.all([tcpTransfer(lab, 20 * MB, 5100), tcpTransfer(lab, 20 * MB, 5101)]);
      for (const r of runs) {
        assert.is(r.got.bytes, 20 * MB);
        assert.is(r.got.sha256, r.sent.sha256);
      }
    });
    assert.ok(a && b, 'both gateways reported their counters');
    assert.equal(a.workers.map((w) => w.lanQueues), [[0], [1]]);
    for (const w of a.workers) {
      // Each thread carried every segment of its queue's flow.
      assert.ok(w.lanToWanPackets >= SEGMENTS, `thread of LAN queue ${w.lanQueues[0]} forwarded ${w.lanToWanPackets} of ${a.lanToWanPackets} frames`);
      assert.ok(w.repairsSent > 0, `thread of LAN queue ${w.lanQueues[0]} sent repairs`);
    }
    for (const g of [a, b]) {
      assert.is(g.workers.reduce((n, w) => n + w.lanToWanPackets, 0), g.lanToWanPackets, 'the totals are the threads\' sums');
      assert.is(g.workers.reduce((n, w) => n + w.repairsReceived, 0), g.repairsReceived);
    }
    // One encoder numbers the frames of both threads, so B's one decoder rebuilds from the data
    // of both, whichever of its queues brought the data and the repairs.
    assert.ok(b.recovered >= 100, `gateway B rebuilt ${b.recovered} packets`);
    assert.is(a.verifyFailed + b.verifyFailed, 0);
    // Repairs that overtook their packets (another queue, another thread) were held for the grace.
    assert.ok(b.held > 0, 'repairs missing one packet waited for it');
    console.log(`  A's threads forwarded ${a.workers.map((w) => w.lanToWanPackets).join(' and ')} frames; B: ${b.recovered} rebuilt, ${b.unrecoverable} unrecoverable; ${b.held} repairs held, ${b.heldArrived} of them saw their packet come; ${b.duplicatesDropped} arrived after their rebuild; loss sample ${(100 * b.wanLoss.missing / b.wanLoss.sampled).toFixed(1)}%`);
  });
});

queues.run();
