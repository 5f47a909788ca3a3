// maelstrom stats: the rates between two snapshots (src/gateway/rates.ts), and the command run
// against a control socket served here with made-up counters (no root, no engine).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ControlServer } from '../../src/gateway/control';
import { increase, statsRates } from '../../src/gateway/rates';
import type { EngineStats } from '../../src/native/addon';
import { engineStats } from '../helpers/engine-stats';
import { XDP_STATS } from '../../src/native/constants';

const bin = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const S = 1_000_000_000n;

const rates = suite('stats: rates between two snapshots');

rates('counters become totals and rates per second over the interval; bytes become Gbit/s', () => {
  const a = engineStats({ lanToWanPackets: 1000, lanToWanBytes: 1_500_000, repairsSent: 100, repairBytesSent: 50_000, wanToLanPackets: 10,
    repairsReceived: 7, recovered: 3, unrecoverable: 1, malformed: 2, repairsFlushed: 4, unprotected: 5, txDropped: 6,
    netsync: { flows: 3, feedbackDatagrams: 40 }, xdp: { lanSteered: 1000, wanRepair: 7 } });
  const b = engineStats({ lanToWanPackets: 5000, lanToWanBytes: 7_500_000, repairsSent: 600, repairBytesSent: 350_000, wanToLanPackets: 30,
    wanToLanBytes: 30_000, repairsReceived: 17, recovered: 9, unrecoverable: 2, malformed: 2, repairsFlushed: 8, unprotected: 9, txDropped: 6,
    decoderWindow: 400, decoderPending: 12, netsync: { flows: 2, feedbackDatagrams: 240 }, xdp: { lanSteered: 5000, wanRepair: 17 } });
  const r = statsRates({ stats: a, atNs: 10n * S }, { stats: b, atNs: 12n * S });
  assert.is(r.intervalS, 2);
  assert.is(r.counterResets, 0);
  assert.equal(r.lanToWan, {
    packets: 5000, packetsPerS: 2000, bytes: 7_500_000, gbitPerS: (6_000_000 * 8) / 2 / 1e9,
    repairsSent: 600, repairsSentPerS: 250, repairGbitPerS: (300_000 * 8) / 2 / 1e9,
    repairsFlushed: 8, repairsFlushedPerS: 2, unprotected: 9, unprotectedPerS: 2,
  });
  assert.equal(r.wanToLan, {
    packets: 30, packetsPerS: 10, bytes: 30_000, gbitPerS: (30_000 * 8) / 2 / 1e9,
    repairsReceived: 17, repairsReceivedPerS: 5, recovered: 9, recoveredPerS: 3,
    unrecoverable: 2, unrecoverablePerS: 0.5, malformed: 2, malformedPerS: 0,
  });
  assert.is(r.txDropped, 6);
  assert.is(r.txDroppedPerS, 0);
  assert.equal(r.decoder, { window: 400, windowCapacity: 1600, windowOccupancy: 0.25, pending: 12, pendingCapacity: 1024 });
  assert.equal(r.netsync, { flows: 2, feedbackDatagrams: 240, feedbackDatagramsPerS: 100, safeLatencyUs: null });
  assert.is(r.xdp.lanSteered, 5000);
  assert.is(r.xdp.lanSteeredPerS, 2000);
  assert.is(r.xdp.wanRepairPerS, 5);
  for (const k of XDP_STATS) assert.type(r.xdp[`${k}PerS`], 'number', k);
});

rates('a counter that went back (gateway restarted, or wrapped) counts from zero: no negative rate', () => {
  assert.is(increase(10, 25), 15);
  assert.is(increase(1e9, 300), 300);
  assert.is(increase(2 ** 53, 0), 0);
  const a = engineStats({ lanToWanPackets: 1_000_000, repairsSent: 400_000, recovered: 50, xdp: { lanSteered: 1_000_000 } });
  const b = engineStats({ lanToWanPackets: 3000, repairsSent: 1000, recovered: 60, xdp: { lanSteered: 3000 } });
  const r = statsRates({ stats: a, atNs: 0n }, { stats: b, atNs: S / 2n });
  assert.is(r.lanToWan.packetsPerS, 6000);
  assert.is(r.lanToWan.repairsSentPerS, 2000);
  assert.is(r.wanToLan.recoveredPerS, 20);
  assert.is(r.xdp.lanSteeredPerS, 6000);
  assert.is(r.counterResets, 3);
});

rates('random snapshot pairs, resets included, never give a negative or non-finite rate', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const counters = () => {
    const n = () => Math.floor(rand() * 2 ** 40);
    return engineStats({ lanToWanPackets: n(), lanToWanBytes: n(), wanToLanPackets: n(), wanToLanBytes: n(), repairsSent: n(),
      repairBytesSent: n(), repairsReceived: n(), recovered: n(), unrecoverable: n(), malformed: n(), repairsFlushed: n(), unprotected: n(),
      txDropped: n(), netsync: { feedbackDatagrams: n() }, xdp: Object.fromEntries(XDP_STATS.map((k) => [k, n()])) });
  };
  const numbers = (o: unknown): number[] => (typeof o === 'number' ? [o] : o && typeof o === 'object' ? Object.values(o).flatMap(numbers) : []);
  for (let i = 0; i < 500; i++) {
    const r = statsRates({ stats: counters(), atNs: 0n }, { stats: counters(), atNs: BigInt(1 + Math.floor(rand() * 1e10)) });
    for (const x of numbers(r)) assert.ok(Number.isFinite(x) && x >= 0, `${x} in ${JSON.stringify(r)}`);
  }
});

rates('feedback latency is shown when the engine reports it, null when it does not; capacities likewise', () => {
  const latency = { p50: 180, p99: 950, max: 2100, count: 5000 };
  const withLatency = engineStats({ netsync: { safeLatencyUs: latency } });
  const r = statsRates({ stats: engineStats(), atNs: 0n }, { stats: withLatency, atNs: S });
  assert.equal(r.netsync.safeLatencyUs, latency);
  const garbled = engineStats({ netsync: { safeLatencyUs: { p50: 'soon' } as unknown as EngineStats['netsync']['safeLatencyUs'] } });
  assert.is(statsRates({ stats: engineStats(), atNs: 0n }, { stats: garbled, atNs: S }).netsync.safeLatencyUs, null);
  // A gateway that predates the capacities: no occupancy rather than a made-up one.
  const old = engineStats({ decoderWindow: 10 }) as Partial<EngineStats>;
  delete old.decoderWindowCapacity;
  delete old.decoderPendingCapacity;
  const o = statsRates({ stats: engineStats(), atNs: 0n }, { stats: old as EngineStats, atNs: S });
  assert.equal(o.decoder, { window: 10, windowCapacity: null, windowOccupancy: null, pending: 0, pendingCapacity: null });
});

rates('snapshots out of order are refused', () => {
  assert.throws(() => statsRates({ stats: engineStats(), atNs: S }, { stats: engineStats(), atNs: S }), /later than the first/);
});

rates.run();

const cli = suite('maelstrom stats: against a control socket');

// Serves status and counters that grow by fixed steps at every request.
async function fakeGateway(dir: string, extra: Partial<EngineStats['netsync']> & Record<string, unknown> = {}) {
  let requests = 0;
  const server = await ControlServer.open(path.join(dir, 'gw.sock'), {
    status: () => ({ pid: 4242, lan: 'lan0', wan: 'wan0', r: 8, c: 3 }),
    tune: () => { throw new Error('not in this test'); },
    rekey: () => { throw new Error('not in this test'); },
    stats: () => {
      requests++;
      return engineStats({ lanToWanPackets: 1000 * requests, lanToWanBytes: 1_500_000 * requests, repairsSent: 375 * requests,
        wanToLanPackets: 10 * requests, recovered: 2 * requests, decoderWindow: 800, netsync: { flows: 1, feedbackDatagrams: 50 * requests, ...extra },
        xdp: { lanSteered: 1000 * requests } });
    },
    setTrace: () => undefined,
  });
  return { server, requests: () => requests };
}

// Runs the command without blocking this process, which serves the socket it asks.
function maelstrom(args: string[], onLine?: (line: string, child: ReturnType<typeof spawn>) => void) {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  readline.createInterface({ input: child.stdout! }).on('line', (l) => { lines.push(l); onLine?.(l, child); });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise<{ status: number | null; lines: string[]; stderr: string }>((resolve) => {
    child.once('close', (status) => { clearTimeout(timer); resolve({ status, lines, stderr }); });
  });
}

cli('--json --count 3 prints three intervals whose rates are the counters\' increase over the measured interval', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mstats-'));
  const gw = await fakeGateway(dir);
  try {
    const r = await maelstrom(['stats', '--control', path.join(dir, 'gw.sock'), '--json', '--watch', '0.1', '--count', '3']);
    assert.is(r.status, 0, r.stderr);
    assert.is(r.lines.length, 3);
    assert.is(gw.requests(), 4, 'one snapshot more than intervals: each interval starts where the last ended');
    for (const line of r.lines) {
      const o = JSON.parse(line);
      assert.ok(o.intervalS >= 0.05 && o.intervalS < 2, `interval ${o.intervalS}`);
      assert.ok(Math.abs(o.lanToWan.packetsPerS * o.intervalS - 1000) < 1e-6);
      assert.ok(Math.abs(o.lanToWan.repairsSentPerS * o.intervalS - 375) < 1e-6);
      assert.ok(Math.abs(o.lanToWan.gbitPerS * o.intervalS - 0.012) < 1e-9);
      assert.ok(Math.abs(o.netsync.feedbackDatagramsPerS * o.intervalS - 50) < 1e-6);
      assert.is(o.decoder.windowOccupancy, 0.5);
      assert.is(o.netsync.safeLatencyUs, null);
      assert.ok(!Number.isNaN(Date.parse(o.time)));
    }
  } finally {
    await gw.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

cli('the text view shows each direction, the decoder, network-sync (latency n/a until the engine has it) and XDP', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mstats-'));
  const gw = await fakeGateway(dir);
  try {
    const r = await maelstrom(['stats', '--control', path.join(dir, 'gw.sock'), '--watch', '0.1', '--count', '1']);
    assert.is(r.status, 0, r.stderr);
    const text = r.lines.join('\n');
    assert.match(text, /gateway pid 4242: LAN lan0 <-> WAN wan0, code \(r=8, c=3\)/);
    assert.match(text, /LAN->WAN\s+[\d,.]+ pkt\/s\s+[\d.]+ Gbit\/s\s+repairs sent [\d,.]+\/s/);
    assert.match(text, /WAN->LAN\s+[\d,.]+ pkt\/s/);
    assert.match(text, /window 800 of 1,600 \(50\.0%\)\s+pending repairs 0 of 1,024/);
    assert.match(text, /safe latency n\/a/);
    assert.match(text, /lanSteered [\d,.]+\/s \(2,000\)/);
  } finally {
    await gw.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const dir2 = mkdtempSync(path.join(tmpdir(), 'mstats-'));
  const gw2 = await fakeGateway(dir2, { safeLatencyUs: { p50: 180, p99: 950, max: 2100, count: 5000 } });
  try {
    const r = await maelstrom(['stats', '--control', path.join(dir2, 'gw.sock'), '--watch', '0.1', '--count', '1']);
    assert.match(r.lines.join('\n'), /safe latency p50 180 us\s+p99 950 us\s+max 2,100 us \(5,000\)/);
  } finally {
    await gw2.server.close();
    rmSync(dir2, { recursive: true, force: true });
  }
});

cli('--watch goes on until SIGINT, then exits 0 after the intervals it printed', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mstats-'));
  const gw = await fakeGateway(dir);
  try {
    let interrupted = false;
    const r = await maelstrom(['stats', '--control', path.join(dir, 'gw.sock'), '--json', '--watch', '0.1'], (_line, child) => {
      if (!interrupted) child.kill('SIGINT'); // after the first interval
      interrupted = true;
    });
    assert.is(r.status, 0, r.stderr);
    assert.ok(r.lines.length >= 1);
    for (const line of r.lines) assert.ok(JSON.parse(line).lanToWan.packetsPerS > 0);
  } finally {
    await gw.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

cli('bad intervals and counts exit 2 with MAELSTROM_ERR_CONFIG; no gateway exits 3', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, 'stats', ...args], { encoding: 'utf8', timeout: 20_000 });
  for (const [args, message] of [
    [['--lan', 'lan0', '--watch', '0'], /--watch takes an interval from 0.05 to 3600 seconds/],
    [['--lan', 'lan0', '--watch', 'often'], /--watch takes a number/],
    [['--lan', 'lan0', '--count', '0'], /--count takes a number of intervals, at least 1/],
    [[], /give --lan IF or --control PATH/],
  ] as [string[], RegExp][]) {
    const r = run(...args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /MAELSTROM_ERR_CONFIG/);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'mstats-'));
  try {
    const none = run('--control', path.join(dir, 'none.sock'));
    assert.is(none.status, 3);
    assert.match(none.stderr, /MAELSTROM_ERR_NO_GATEWAY/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

cli('--help teaches with examples', () => {
  const r = spawnSync(process.execPath, [bin, 'stats', '--help'], { encoding: 'utf8' });
  assert.is(r.status, 0);
  for (const opt of ['--lan', '--control', '--watch', '--count', '--json']) assert.ok(r.stdout.includes(opt), opt);
  assert.match(r.stdout, /Examples:/);
});

cli.run();
