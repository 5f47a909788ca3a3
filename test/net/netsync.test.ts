// Network-sync end to end, in the lab: records written through gateway A, each with a promise
// that resolves on the gateway's feedback; the gateway's completion trace audited independently;
// a rolling disaster; forged feedback. Needs root.
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withLabGateways } from '../../src/lab/fixture';
import type { GatewayProcess } from '../../src/lab/gateways';
import { ADDRESSES } from '../../src/lab/topology';
import { RECORD_SIZE, startRecordClient, startRecordServer } from '../../src/lab/records';
import { safePrefixes, safeSince } from '../../src/feedback/audit';
import { flowId } from '../../src/feedback/format';
import { keyId, readKeyFile } from '../../src/gateway/keys';
import type { NetsyncEvent } from '../../src/native/addon';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const traffic = path.resolve(__dirname, '..', '..', 'src', 'lab', 'traffic.js');
const netsync = suite('network-sync: flow offsets, feedback and promises through the gateways');

// `maelstrom watch --trace --json` on a gateway: every event, as the gateway reports them.
async function watch(gw: GatewayProcess) {
  const child = spawn(process.execPath, [cli, 'watch', '--control', gw.control, '--trace', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: NetsyncEvent[] = [];
  const waiters = new Set<() => void>();
  const lines = readline.createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`maelstrom watch exited (${code})`)));
    lines.on('line', (text) => {
      const o = JSON.parse(text) as Record<string, unknown>;
      if (o.event === 'watching') return resolve();
      for (const k of ['tNs', 'start', 'end', 'safeOffset', 'sentOffset']) if (o[k] !== undefined) o[k] = BigInt(o[k] as string | number);
      events.push(o as unknown as NetsyncEvent);
      for (const w of waiters) w();
    });
  });
  return {
    events,
    // Resolves once an event matching f has come (false after timeoutMs).
    until: (f: (e: NetsyncEvent) => boolean, timeoutMs: number) => new Promise<boolean>((resolve) => {
      if (events.some(f)) return resolve(true);
      const check = () => {
        if (!f(events[events.length - 1])) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => { waiters.delete(check); resolve(false); }, timeoutMs);
      waiters.add(check);
    }),
    stop: () => child.kill('SIGTERM'),
  };
}

netsync('10,000 records of 4 KB: every promise resolves, in order, never before the trace shows the data and all c repairs complete', async () => {
  await withLabGateways({ delayMs: 5 }, {}, async ({ lab, gw }) => {
    const status = spawnSync(process.execPath, [cli, 'status', '--control', gw.a.control, '--json'], { encoding: 'utf8' });
    assert.is(status.status, 0, status.stderr);
    const s = JSON.parse(status.stdout);
    assert.is(s.lan, 'lan0');
    assert.is(s.xdpMode, 'native');
    assert.is(s.zeroCopy, false, 'veth offers copy mode only');
    assert.equal([s.r, s.c, s.interleaves], [8, 3, [1, 10, 100]]);
    assert.equal(s.feedback, { from: ADDRESSES.gwALan, port: 7601 });
    assert.ok(s.uptimeS > 0 && s.pid > 0);
    const trace = await watch(gw.a);
    const records = 10_000;
    const server = await startRecordServer(lab, 5010);
    const client = startRecordClient(lab, { port: 5010, records });
    const flow = flowId(await client.flow);
    const done = await client.done;
    assert.is(done.resolved, records, `${done.failures} promises failed`);
    assert.is(done.listener.beyondWritten + done.listener.regressing + done.listener.foreignSource, 0);
    const total = BigInt(records * RECORD_SIZE);
    assert.ok(await trace.until((e) => e.type === 'feedback' && flowId(e) === flow && e.safeOffset >= total, 10_000), 'the last feedback reached the trace');
    trace.stop();
    assert.ok(await server.reach(records, 10_000), `${server.records()} records at the mirror site`);
    assert.is(server.bad(), 0);

    const order = client.acks.map((a) => a.record);
    assert.equal(order, Array.from({ length: records }, (_, i) => i), 'promises resolve in write order');
    const audit = safePrefixes(trace.events, 3).get(flow);
    assert.ok(audit && audit.length > 0, 'the trace has completions of the flow');
    let early = 0;
    let worstMarginNs = BigInt(Number.MAX_SAFE_INTEGER);
    for (const a of client.acks) {
      const since = safeSince(audit, BigInt((a.record + 1) * RECORD_SIZE));
      if (since === undefined || since > a.ackedNs) early++;
      else if (a.ackedNs - since < worstMarginNs) worstMarginNs = a.ackedNs - since;
    }
    assert.is(early, 0, `${early} records resolved before the trace shows them network-safe`);
    assert.ok(trace.events.every((e) => e.type !== 'safe-by-ack'), 'nothing was passed on an ACK alone');
    const stats = gw.a.latest()!;
    assert.is(stats.netsync.eventsDropped, 0, 'the trace is complete');
    assert.ok(stats.netsync.feedbackDatagrams > 0 && stats.netsync.feedbackSendErrors === 0);
    assert.ok(stats.netsync.flowsOpened >= 1);
    console.log(`  ${records} records acknowledged network-sync; closest promise came ${Number(worstMarginNs) / 1000} us after the trace made it safe`);
  });
});

netsync('with no flush budget (--flush-budget 0), sparse records wait for their bins: the idle flush fires within 1.1 x c/r, every promise still resolves, in order, never early', async () => {
  await withLabGateways({ delayMs: 5 }, { extra: ['--flush-budget', '0'] }, async ({ lab, gw }) => {
    const trace = await watch(gw.a);
    const records = 300;
    const before = (await gw.a.nextStats())!;
    const server = await startRecordServer(lab, 5011);
    // 5 ms apart: each record's three packets leave the LAN quiet, and fill no bin.
    const client = startRecordClient(lab, { port: 5011, records, intervalMs: 5, timeoutMs: 30_000 });
    const flow = flowId(await client.flow);
    const done = await client.done;
    assert.is(done.resolved, records, `${done.failures} promises failed`);
    assert.equal(client.acks.map((a) => a.record), Array.from({ length: records }, (_, i) => i), 'promises resolve in write order');
    const total = BigInt(records * RECORD_SIZE);
    assert.ok(await trace.until((e) => e.type === 'feedback' && flowId(e) === flow && e.safeOffset >= total, 10_000), 'the last feedback reached the trace');
    trace.stop();
    assert.ok(await server.reach(records, 10_000), `${server.records()} records at the mirror site`);
    const audit = safePrefixes(trace.events, 3).get(flow)!;
    const early = client.acks.filter((a) => {
      const since = safeSince(audit, BigInt((a.record + 1) * RECORD_SIZE));
      return since === undefined || since > a.ackedNs;
    }).length;
    assert.is(early, 0, `${early} records resolved before the trace shows their data and all c repairs complete`);
    const after = (await gw.a.nextStats())!;
    const packets = after.lanToWanPackets - before.lanToWanPackets;
    const idle = after.repairsIdleFlushed - before.repairsIdleFlushed;
    assert.ok(after.idleFlushDeferred - before.idleFlushDeferred > 0, 'the budget cut idle flushes short');
    // The bucket starts with 64 repairs and earns 1.1 x 3/8 per data packet; unbudgeted, a lone
    // record's idle flush fires up to 7 repairs for its 3 packets.
    assert.ok(idle <= 64 + 1.1 * 3 / 8 * packets, `${idle} idle-flushed repairs for ${packets} data packets`);
    console.log(`  ${records} sparse records, budget 0: ${idle} idle-flushed repairs for ${packets} data packets, ${after.idleFlushDeferred - before.idleFlushDeferred} flushes deferred`);
  });
});

netsync('rolling disaster x5: WAN delay 50 ms, 1% loss for 0.5 s, then link and client killed at once; every acknowledged record reaches the mirror', async () => {
  await withLabGateways({ delayMs: 50 }, {}, async ({ lab }) => {
    const report: { acked: number; received: number; lost: number }[] = [];
    try {
      for (let run = 0; run < 5; run++) {
        await lab.wan.set({ killed: false, loss: 0 });
        const port = 5020 + run;
        const server = await startRecordServer(lab, port);
        const client = startRecordClient(lab, { port, records: 20_000, intervalMs: 1 });
        const started = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 20_000);
          client.onAck((a) => { if (a.record === 99) { clearTimeout(timer); resolve(true); } });
        });
        assert.ok(started, 'records are being acknowledged');
        await lab.wan.set({ loss: 0.01 });
        await new Promise((r) => setTimeout(r, 500)); // the loss phase of the experiment
        const disaster = process.hrtime.bigint();
        await lab.wan.set({ killed: true });
        client.child.kill('SIGKILL');
        // Acknowledged before the disaster began: these must all be at the mirror site.
        const acked = client.acks.filter((a) => a.ackedNs < disaster).length;
        const arrived = await server.reach(acked, 5_000);
        report.push({ acked, received: server.records(), lost: Math.max(0, acked - server.records()) });
        server.stop();
        assert.ok(arrived, `run ${run + 1}: ${acked} records acknowledged, ${server.records()} at the mirror`);
        assert.is(server.bad(), 0);
      }
    } finally {
      console.log(`  rolling disaster: ${report.map((r) => `acked ${r.acked} received ${r.received} lost ${r.lost}`).join('; ')}`);
      await lab.wan.set({ killed: false }).catch(() => undefined);
    }
  });
});

netsync('forged feedback (another source; from the gateway\'s address unsealed, under another key, with a forged tag, truncated) is counted and resolves nothing', async () => {
  await withLabGateways({ delayMs: 1 }, { extra: ['--no-feedback'] }, async ({ lab }) => {
    // No feedback from the gateway: only forged datagrams reach the client.
    try {
      await startRecordServer(lab, 5030);
      const client = startRecordClient(lab, { port: 5030, records: 20, timeoutMs: 8000 });
      const flow = await client.flow;
      // Nothing the client writes from here on can reach the mirror site.
      await lab.wan.set({ killed: true });
      const keyIdHex = keyId('feedback', readKeyFile(lab.keys.feedback, 'feedback')[0]);
      const forge = (ns: string, kind: string) => new Promise<void>((resolve, reject) => {
        const child = lab.spawn(ns, [process.execPath, traffic, 'feedback-forge', '--to', ADDRESSES.hostA, '--kind', kind, '--records', '20', '--key-id', keyIdHex,
          '--sender-port', String(flow.senderPort), '--receiver', flow.receiverAddress, '--receiver-port', String(flow.receiverPort), '--count', '20']);
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`feedback-forge ${kind} exited ${code}`))));
      });
      // From hostA itself (not a gateway), and from the gateway's own LAN address, as a host
      // on the LAN spoofing it would send: every one says all 20 records are network-safe.
      await Promise.all([forge(lab.ns.hostA, 'foreign'), ...['unsealed', 'wrong-key', 'bad-tag', 'truncated'].map((k) => forge(lab.ns.gwA, k))]);
      const done = await client.done;
      assert.is(done.resolved, 0, 'no promise resolved on forged feedback');
      assert.is(done.failures, 20, 'all timed out instead');
      assert.is(done.listener.foreignSource, 20);
      const u = done.listener.unauthenticated;
      assert.equal([u.notSealed, u.unknownKey, u.badTag, u.truncated], [20, 20, 20, 20], 'unsealed, another key, a forged tag, truncated');
      assert.is(done.listener.entries, 0);
    } finally {
      await lab.wan.set({ killed: false }).catch(() => undefined);
    }
  });
});

netsync.run();
