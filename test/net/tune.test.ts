// Runtime tuning in the lab: maelstrom tune changes gateway A's code three times while a TCP
// transfer runs at 1% loss; --auto follows the WAN's loss up and down. Needs root.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withLabGateways } from '../../src/lab/fixture';
import type { GatewayProcess } from '../../src/lab/gateways';
import { tcpTransfer, udpStream } from '../../src/lab/runs';
import type { EpochRecord } from '../../src/gateway/gateway';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const run = promisify(execFile);
const tune = suite('runtime tuning: epochs across a running transfer, and --auto');

// The fields the Status table of docs/gateway.md names (first column, in backticks).
function documentedStatusFields(): string[] {
  const doc = readFileSync(path.resolve(__dirname, '..', '..', '..', 'docs', 'gateway.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Status'), doc.indexOf('\n## ', doc.indexOf('## Status') + 5));
  return section.split('\n').filter((l) => l.startsWith('| `')).flatMap((l) => [...l.split('|')[1].matchAll(/`(\w+)`/g)].map((m) => m[1]));
}

async function maelstrom(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [cli, ...args, '--json'], { encoding: 'utf8' });
  return JSON.parse(stdout) as Record<string, unknown>;
}

// Resolves once gateway A's counters satisfy f (its --stats-interval lines come every 0.2 s).
async function untilCounters(gw: GatewayProcess, f: (s: NonNullable<ReturnType<GatewayProcess['latest']>>) => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const s = gw.latest();
    if (s && f(s)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await gw.nextStats(Math.max(1, end - Date.now()));
  }
}

tune('(8,3) -> (4,2) -> (16,4) -> (8,3) mid-transfer at 1% loss: intact, every epoch in status, nothing lost to a change', async () => {
  await withLabGateways({ delayMs: 5, loss: 0.01 }, { extra: ['--r-max', '16', '--decoder-window', '32000'] }, async ({ lab, gw }) => {
    // Room for r = 16's repair headers, and a far decoder window for (16, 1..1000).
    const transfer = tcpTransfer(lab, { seconds: 12 }, 5030);
    const codes = [{ r: 4, c: 2 }, { r: 16, c: 4 }, { r: 8, c: 3 }];
    const tuned: Record<string, unknown>[] = [];
    for (const code of codes) {
      const from = gw.a.latest()?.lanToWanPackets ?? 0;
      await untilCounters(gw.a, (s) => s.lanToWanPackets >= from + 20_000, 30_000, 'the transfer to move on');
      tuned.push(await maelstrom('tune', '--control', gw.a.control, '--r', String(code.r), '--c', String(code.c)));
    }
    const t = await transfer;
    assert.is(t.got.sha256, t.sent.sha256, 'the transfer arrived intact');
    assert.ok(Number(t.got.bytes) > 50_000_000, `only ${t.got.bytes} bytes moved`);

    assert.equal(tuned.map((e) => [e.r, e.c]), codes.map((c) => [c.r, c.c]));
    assert.equal(tuned.map((e) => e.epoch), [1, 2, 3]);
    const status = await maelstrom('status', '--control', gw.a.control);
    const epochs = status.epochs as EpochRecord[];
    assert.equal(epochs.map((e) => [e.epoch, e.r, e.c, e.reason]), [[0, 8, 3, 'start'], [1, 4, 2, 'tune'], [2, 16, 4, 'tune'], [3, 8, 3, 'tune']]);
    assert.equal(epochs[2].interleaves, [1, 10, 100, 1000]);
    assert.is(status.epoch, 3);
    for (const field of documentedStatusFields()) assert.ok(field in status, `status --json lacks the documented field ${field}`);
    for (const field of Object.keys(status)) assert.ok(documentedStatusFields().includes(field), `status --json has ${field}, which docs/gateway.md does not document`);

    const a = (await gw.a.stop())!;
    const b = (await gw.b.stop())!;
    assert.is(a.epochChanges, 3);
    // Every repair the old codes' bins fired at a change is a flushed repair: the encoder's
    // counters go on across epochs (a counter that restarted would go back in Prometheus).
    assert.ok(a.epochFlushed > 0 && a.repairsFlushed >= a.epochFlushed, `repairsFlushed ${a.repairsFlushed}, epochFlushed ${a.epochFlushed}`);
    assert.is(b.peerEpochChanges, 3, 'the far decoder followed every change');
    assert.is(b.staleEpoch, 0, 'no repair refused for its epoch');
    assert.is(b.outOfWindow, 0, 'no repair came too late for the far window');
    assert.ok(b.recovered > 0);
    assert.is(a.peer?.epoch, 3, 'the far gateway reports decoding the last epoch');
  });
});

tune('a tune the gateway cannot carry is refused with its code, and the code stays', async () => {
  await withLabGateways({ delayMs: 1 }, {}, async ({ gw }) => {
    const refused = await run(process.execPath, [cli, 'tune', '--control', gw.a.control, '--r', '16'], { encoding: 'utf8' }).then(
      () => undefined, (err: { code: number; stderr: string }) => err);
    assert.ok(refused, 'r beyond --r-max was accepted');
    assert.is(refused!.code, 2);
    assert.match(refused!.stderr, /--r-max 16/);
    assert.match(refused!.stderr, /MAELSTROM_ERR_CONFIG/);
    const status = await maelstrom('status', '--control', gw.a.control);
    assert.equal([status.epoch, status.r, status.c], [0, 8, 3]);
  });
});

tune('--auto raises c when the WAN loss goes from 0.1% to 3%, and lowers it again after', async () => {
  await withLabGateways({ delayMs: 2, loss: 0.001 }, { extra: ['--auto', '--c-max', '4'] }, async ({ lab, gw }) => {
    const status = () => maelstrom('status', '--control', gw.a.control);
    const c = async () => (await status()).c as number;
    // Packets enough for the loss estimate: 5000 datagrams/s for up to 40 s (the lab ends the
    // stream when the test is done sooner).
    udpStream(lab, 200_000, 5000, 5031).catch(() => undefined);
    const waitFor = async (f: (c: number) => boolean, what: string) => {
      const end = Date.now() + 15_000;
      while (!f(await c())) {
        if (Date.now() > end) throw new Error(`c stayed ${await c()}: ${what}`);
        await untilCounters(gw.a, () => true, 1000, 'a stats line');
      }
    };
    await waitFor((x) => x === 2, 'at 0.1% loss c should settle at 2');
    await lab.wan.set({ loss: 0.03 });
    await waitFor((x) => x === 4, 'at 3% loss c should rise to 4');
    await lab.wan.set({ loss: 0.001 });
    await waitFor((x) => x === 2, 'back at 0.1% loss c should come down to 2');
    const epochs = (await status()).epochs as EpochRecord[];
    const auto = epochs.filter((e) => e.reason === 'auto');
    assert.ok(auto.length >= 3, `${auto.length} automatic changes`);
    for (const e of auto) assert.ok(e.loss! > 0 && e.modelled! >= 0 && e.burst! >= 1);
    const rise = auto.find((e) => e.c === 4)!;
    assert.ok(rise.loss! > 0.005, `c rose on an estimated loss of ${rise.loss}`);
  });
});

tune.run();
