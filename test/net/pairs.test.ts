// Two gateway pairs between the same two sites, behind routers that spread flows over them by
// ECMP on the 5-tuple, with a router between each pair's gateways (src/lab/pairs.ts): each pair
// carries and protects its own flows, the storage side takes network-sync feedback from both,
// and a pair that dies leaves the other pair's flows alone while its own move. Needs root.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PairsLab } from '../../src/lab/pairs';
import type { GatewayProcess } from '../../src/lab/gateways';
import { tcpTransfer } from '../../src/lab/runs';
import { until } from '../helpers/until';
import { startRecordClient, startRecordServer } from '../../src/lab/records';
import type { EngineStats } from '../../src/native/addon';

const MB = 1_000_000;
const pairs = suite('several gateway pairs behind ECMP routes');

async function withPairs<T>(fn: (lab: PairsLab, gw: { a: GatewayProcess; b: GatewayProcess }[]) => Promise<T>): Promise<{ a: (EngineStats | undefined)[]; b: (EngineStats | undefined)[] }> {
  const lab = await PairsLab.create({ pairs: 2, delayMs: 5, loss: 0.01 });
  const gw: { a: GatewayProcess; b: GatewayProcess }[] = [];
  try {
    for (let i = 0; i < lab.pairs; i++) gw.push(await lab.startPair(i));
    await fn(lab, gw);
    const a: (EngineStats | undefined)[] = [];
    const b: (EngineStats | undefined)[] = [];
    for (const g of gw) {
      a.push(await g.a.stop());
      b.push(await g.b.stop());
    }
    return { a, b };
  } finally {
    for (const g of gw) {
      await g.a.stop();
      await g.b.stop();
    }
    await lab.destroy();
  }
}

pairs('16 flows at 1% loss over two pairs: all intact, both pairs carry flows and rebuild their own losses; network-sync resolves through both', async () => {
  const { a, b } = await withPairs(async (lab, gw) => {
    lab.exec(lab.ns.hostA, ['ping', '-c', '3', '-i', '0.05', '-q', lab.addresses.hostB], { allowFail: true });
    // A storage-side listener taking feedback from both pairs' site-A gateways: each flow's
    // promises resolve from the pair the router gave it (one flow after another: one listener
    // port per host), until both pairs have carried one (24 flows at most: all on one pair has
    // odds of 1 in 8 million).
    const opened = () => gw.map((g) => g.a.latest()?.netsync.flowsOpened ?? 0);
    const total = () => opened().reduce((x, y) => x + y, 0);
    const before = opened();
    let flows = 0;
    for (; flows < 24 && !opened().every((n, p) => n > before[p]); flows++) {
      const was = total();
      const server = await startRecordServer(lab, 5400 + flows);
      const d = await startRecordClient(lab, { port: 5400 + flows, records: 100, gateways: lab.addresses.gwALan, timeoutMs: 10_000 }).done;
      server.stop();
      assert.is(d.resolved, 100, `flow ${flows}: ${d.failures} promises failed`);
      assert.is(d.listener.foreignSource + d.listener.unauthenticated.badTag + d.listener.beyondWritten, 0);
      assert.ok(await until(() => total() > was, 5000), 'the flow shows in a gateway\'s stats');
    }
    const after = opened();
    assert.ok(after[0] > before[0] && after[1] > before[1], `both pairs carried record flows whose writes resolved (${flows} flows; opened ${before} -> ${after})`);
    const runs = await Promise.all(Array.from({ length: 16 }, (_, i) => tcpTransfer(lab, 2 * MB, 5300 + i)));
    for (const r of runs) {
      assert.is(r.got.bytes, 2 * MB);
      assert.is(r.got.sha256, r.sent.sha256);
    }
  });
  for (let i = 0; i < 2; i++) {
    assert.ok((a[i]?.lanToWanPackets ?? 0) > 1000, `pair ${i + 1} carried flows (gateway A${i + 1} forwarded ${a[i]?.lanToWanPackets})`);
    assert.ok((b[i]?.recovered ?? 0) > 0, `pair ${i + 1} rebuilt its own losses (gateway B${i + 1}: ${b[i]?.recovered})`);
    assert.ok((a[i]?.netsync.feedbackDatagrams ?? 0) > 0, `gateway A${i + 1} sent feedback for its flows`);
    assert.is((a[i]?.verifyFailed ?? 0) + (b[i]?.verifyFailed ?? 0), 0);
  }
});

pairs('a pair killed mid-transfer fails open, and the routers move its flows to the other pair: every transfer completes intact', async () => {
  await withPairs(async (lab, gw) => {
    lab.exec(lab.ns.hostA, ['ping', '-c', '3', '-i', '0.05', '-q', lab.addresses.hostB], { allowFail: true });
    // Sixteen flows: that none takes pair 1 has odds of 1 in 65,536.
    const transfers = Array.from({ length: 16 }, (_, i) => tcpTransfer(lab, 10 * MB, 5500 + i));
    const moving = await until(() => gw.every((g) => (g.a.latest()?.lanToWanPackets ?? 0) > 2000), 20_000);
    assert.ok(moving, 'both pairs carry transfers before one dies');
    const before = gw[1].a.latest()?.lanToWanPackets ?? 0;
    // Pair 1 dies: its engines are killed (their XDP programs pass everything to the kernel:
    // fail-open), then the routers' health check takes its paths out of the ECMP routes.
    gw[0].a.child.kill('SIGKILL');
    gw[0].b.child.kill('SIGKILL');
    lab.takePathDown(0);
    const runs = await Promise.all(transfers);
    for (const r of runs) {
      assert.is(r.got.bytes, 10 * MB);
      assert.is(r.got.sha256, r.sent.sha256);
    }
    assert.ok((gw[1].a.latest()?.lanToWanPackets ?? 0) > before, 'pair 2 carried on');
    // Flows the routers moved reach gateway A2 mid-stream: it follows them without their SYN.
    assert.ok((gw[1].a.latest()?.netsync.flowsIsnGuessed ?? 0) > 0, 'pair 1\'s flows moved to pair 2');
  });
});

pairs.run();
