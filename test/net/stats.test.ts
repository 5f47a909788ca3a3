// Observing running gateways in the lab: `maelstrom stats --json` while TCP flows through them,
// checked against the fields docs/gateway.md documents; /metrics scraped from inside a gateway's
// namespace; the lifecycle log; and an `up` whose metrics address is taken, which must leave
// nothing behind. Needs root.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Lab } from '../../src/lab/lab';
import { controlPath } from '../../src/lab/gateways';
import { withGateways, withLab } from '../../src/lab/fixture';
import type { GatewayProcess } from '../../src/lab/gateways';
import { AUTH_VERDICTS } from '../../src/native/addon';
import { tcpTransfer } from '../../src/lab/runs';
import { ADDRESSES } from '../../src/lab/topology';
import { until } from '../helpers/until';

const root = path.resolve(__dirname, '..', '..', '..');
const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');
const METRICS = '127.0.0.1:9600';
const observe = suite('observing gateways: stats, metrics and logs in the lab');

// The backticked names in the first column of a table under a heading of docs/gateway.md.
function documented(heading: string): string[] {
  const doc = fs.readFileSync(path.join(root, 'docs', 'gateway.md'), 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith(`${heading}\n`));
  assert.ok(section, `docs/gateway.md has a "${heading}" section`);
  return section!.split('\n')
    .filter((l) => l.startsWith('| `'))
    .flatMap((l) => [...l.split('|')[1].matchAll(/`([^`]+)`/g)].map((m) => m[1]));
}

// Every field of a stats object as a documented path: xdp counters as xdp.<counter>[PerS],
// authentication verdicts as auth.<verdict>[PerS].
const TEMPLATED: Record<string, string> = { 'xdp.': 'xdp.<counter>', 'auth.': 'auth.<verdict>' };

function paths(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) => {
    const p = prefix + k;
    if (TEMPLATED[prefix]) return [TEMPLATED[prefix] + (k.endsWith('PerS') ? 'PerS' : '')];
    if (p === 'netsync.safeLatencyUs' || v === null || typeof v !== 'object') return [p];
    return paths(v as Record<string, unknown>, p + '.');
  });
}

function lookup(o: unknown, p: string): unknown {
  return p.split('.').reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o);
}

function numbers(o: unknown): number[] {
  return typeof o === 'number' ? [o] : o && typeof o === 'object' ? Object.values(o).flatMap(numbers) : [];
}


// `maelstrom stats --json --count 2` on a gateway, without blocking this process.
function stats(gw: GatewayProcess): Promise<Record<string, any>[]> {
  const child = spawn(process.execPath, [cli, 'stats', '--control', gw.control, '--json', '--count', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(out.trim().split('\n').map((l) => JSON.parse(l))) : reject(new Error(`maelstrom stats exited ${code}: ${err}`))));
  });
}

// GET /metrics from inside a namespace, where the gateway's 127.0.0.1 is.
function scrape(lab: Lab, ns: string): string {
  const script = `fetch('http://${METRICS}/metrics').then(async (r) => { if (r.status !== 200) process.exit(1); process.stdout.write(await r.text()); })`;
  return lab.exec(ns, [process.execPath, '-e', script], { timeoutMs: 10_000 });
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function logEvents(file: string, pid: number): Record<string, any>[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.pid === pid);
}

function xdpAttached(lab: Lab, ns: string, ifname: string): boolean {
  return /prog\/xdp|xdp(generic|drv)?\b/.test(lab.exec(ns, ['ip', 'link', 'show', 'dev', ifname]));
}

observe('stats --json --count 2 during a TCP transfer: every documented field, plausible rates; /metrics and the log agree', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mobserve-'));
  const logFile = path.join(dir, 'gateways.log');
  try {
    await withLab({ delayMs: 5, loss: 0.01 }, async (lab) => {
      let a: Record<string, any>[] = [];
      let b: Record<string, any>[] = [];
      let metrics = '';
      let up: { a: Record<string, unknown>; b: Record<string, unknown> } = { a: {}, b: {} };
      await withGateways(lab, { extra: ['--metrics', METRICS, '--log-file', logFile] }, async (gw) => {
        up = { a: gw.a.up, b: gw.b.up };
        assert.ok(xdpAttached(lab, lab.ns.gwA, 'lan0'), 'a running gateway shows its XDP program on lan0');
        let transferring = true;
        const transfer = tcpTransfer(lab, { seconds: 10 }, 5101).finally(() => { transferring = false; });
        assert.ok(await until(() => (gw.a.latest()?.lanToWanPackets ?? 0) > 1000, 10_000), 'the transfer reaches gateway A');
        [a, b] = await Promise.all([stats(gw.a), stats(gw.b)]);
        metrics = scrape(lab, lab.ns.gwA);
        assert.ok(transferring, 'the transfer outlasted the stats (else the rates below say nothing)');
        const done = await transfer;
        assert.is(done.got.sha256, done.sent.sha256);
      });

      // Every documented field is there, and nothing undocumented.
      const fields = documented('Stats');
      assert.ok(fields.length > 30, `${fields.length} fields documented`);
      for (const report of [...a, ...b]) {
        for (const f of fields) {
          if (f.includes('<')) continue; // templated: checked below
          assert.ok(lookup(report, f) !== undefined, `documented field ${f} is in the output`);
        }
        for (const p of paths(report)) assert.ok(fields.includes(p), `${p} is documented in docs/gateway.md, Stats`);
        for (const x of numbers(report)) assert.ok(Number.isFinite(x) && x >= 0, `no negative or non-finite numbers: ${JSON.stringify(report)}`);
        assert.ok(report.intervalS > 0.9 && report.intervalS < 3, `interval ${report.intervalS} s`);
        assert.is(report.counterResets, 0);
        assert.is(report.decoder.windowCapacity, 2 * 8 * 100, 'the window of (8, 3) with interleaves 1,10,100');
        assert.ok(report.decoder.windowOccupancy >= 0 && report.decoder.windowOccupancy <= 1);
        const latency = report.netsync.safeLatencyUs;
        assert.ok(latency === null || ['p50', 'p99', 'max', 'count'].every((k) => typeof latency[k] === 'number'), `safeLatencyUs ${JSON.stringify(latency)}`);
        for (const k of Object.keys(report.xdp).filter((k) => !k.endsWith('PerS'))) assert.type(report.xdp[`${k}PerS`], 'number', k);
        for (const v of [...AUTH_VERDICTS, 'unverifiable']) assert.type(report.auth[`${v}PerS`], 'number', `auth.${v}PerS`);
        const refused = [...AUTH_VERDICTS, 'unverifiable'].filter((v) => v !== 'ok').reduce((n, v) => n + report.auth[v], 0);
        assert.is(refused, 0, `an authenticated pair refuses none of each other's datagrams: ${JSON.stringify(report.auth)}`);
      }
      // Gateway A sends the data onto the WAN with c/r repairs per packet (more when bins flush early).
      for (const r of a) {
        assert.ok(r.lanToWan.packetsPerS > 500, `A: ${r.lanToWan.packetsPerS} packets/s LAN->WAN`);
        assert.ok(r.lanToWan.gbitPerS > 0);
        assert.ok(r.lanToWan.repairsSentPerS >= 0.9 * (3 / 8) * r.lanToWan.packetsPerS, `A: ${r.lanToWan.repairsSentPerS} repairs/s for ${r.lanToWan.packetsPerS} packets/s`);
        assert.ok(r.xdp.lanSteeredPerS > 0);
        assert.ok(r.netsync.flows >= 1, 'the transfer\'s flow is tracked');
      }
      assert.ok(a[1].lanToWan.packets > a[0].lanToWan.packets);
      // Gateway B takes the data and the repairs off the lossy WAN and rebuilds what was lost.
      for (const r of b) {
        assert.ok(r.wanToLan.packetsPerS > 500, `B: ${r.wanToLan.packetsPerS} packets/s WAN->LAN`);
        assert.ok(r.wanToLan.repairsReceivedPerS > 0);
        assert.ok(r.xdp.wanRepairPerS > 0 && r.xdp.wanDataPerS > 0);
        assert.ok(r.auth.ok >= r.wanToLan.repairsReceived, 'every repair opened under the key (the verdicts are read live, the engine counters up to 10 ms late)');
      }
      assert.ok(b[1].wanToLan.recovered > 0, 'B rebuilt packets lost at 1% loss');
      const f = (x: number) => Math.round(x).toLocaleString('en-US');
      console.log(`  A: ${f(a[1].lanToWan.packetsPerS)} packets/s (${a[1].lanToWan.gbitPerS.toFixed(3)} Gbit/s), ${f(a[1].lanToWan.repairsSentPerS)} repairs/s; ` +
        `B: ${f(b[1].wanToLan.packetsPerS)} packets/s, ${f(b[1].wanToLan.recoveredPerS)} recovered/s, window ${(b[1].decoder.windowOccupancy * 100).toFixed(0)}% full`);

      // /metrics, scraped in gateway A's namespace after the stats: the same counters, later.
      const packets = sample(metrics, 'maelstrom_packets_total{direction="lan_to_wan"}');
      assert.ok(packets !== undefined && packets >= a[1].lanToWan.packets, `metrics ${packets} >= stats ${a[1].lanToWan.packets}`);
      assert.ok(sample(metrics, 'maelstrom_repairs_sent_total')! >= a[1].lanToWan.repairsSent);
      assert.is(sample(metrics, 'maelstrom_r'), 8);
      assert.is(sample(metrics, 'maelstrom_c'), 3);
      assert.is(sample(metrics, 'maelstrom_decoder_window_capacity_packets'), 1600);
      assert.is(sample(metrics, 'maelstrom_interleave{layer="2"}'), 100);
      assert.match(metrics, /^maelstrom_gateway_info\{lan="lan0",wan="wan0",peer="10\.99\.0\.2",xdp_mode="native",zero_copy="false"\} 1$/m);
      assert.match(metrics, /^process_cpu_user_seconds_total \d/m);
      assert.match(metrics, /^nodejs_eventloop_lag_seconds \d/m);
      for (const name of documented('Metrics')) {
        const base = name.replace(/\{.*$/, '');
        if (base === 'process_*' || base === 'nodejs_*') continue;
        if (base === 'maelstrom_epoch' && !('epoch' in up.a)) continue; // only from a gateway whose status has one
        assert.match(metrics, new RegExp(`^# TYPE ${base} `, 'm'), `documented metric ${base} is served`);
      }

      // The log: gateway A's lifecycle in order, the final counters at least what /metrics saw.
      const events = logEvents(logFile, up.a.pid as number);
      assert.equal(events.map((e) => e.event), ['starting', 'control', 'metrics', 'up', 'stopping', 'stopped']);
      assert.ok(events.every((e) => e.level === 'info' && typeof e.time === 'string' && typeof e.msg === 'string'));
      assert.is(events[2].url, `http://${METRICS}/metrics`);
      assert.is(events[3].xdpMode, 'native');
      assert.is(events[4].signal, 'SIGTERM');
      assert.ok(events[5].counters.lanToWanPackets >= packets!, 'the final counters are the last');
      assert.is(logEvents(logFile, up.b.pid as number).length, 6, 'gateway B logged its own lifecycle');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

observe('up --metrics on an address in use: MAELSTROM_ERR_METRICS, logged, and no XDP program or control socket left', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mobserve-'));
  const logFile = path.join(dir, 'up.log');
  try {
    await withLab({}, async (lab) => {
      const squatter = lab.spawn(lab.ns.gwA, [process.execPath, '-e', `require('net').createServer().listen(9600, '127.0.0.1', () => console.log('listening'))`]);
      await new Promise<void>((resolve, reject) => {
        squatter.once('exit', (code) => reject(new Error(`the listener exited (${code})`)));
        readline.createInterface({ input: squatter.stdout! }).once('line', () => resolve());
      });
      const up = lab.spawn(lab.ns.gwA, [process.execPath, cli, 'up', '--lan', 'lan0', '--wan', 'wan0', '--peer', ADDRESSES.gwBWan,
        '--remote', ADDRESSES.siteB, '--mount-bpffs', '--control', controlPath(lab.ns.gwA), '--metrics', METRICS, '--log-file', logFile, '--key-file', lab.keys.gateway]);
      let stderr = '';
      let stdout = '';
      up.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      up.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
      const code = await new Promise<number | null>((resolve) => up.once('exit', (c) => resolve(c)));
      squatter.kill('SIGTERM');
      assert.is(code, 3, stderr);
      assert.match(stderr, /cannot serve metrics on 127\.0\.0\.1:9600: the address is in use.*\[MAELSTROM_ERR_METRICS\]/);
      assert.is(stdout, '', 'no start report: it never came up');
      for (const ifname of ['lan0', 'wan0']) assert.not.ok(xdpAttached(lab, lab.ns.gwA, ifname), `no XDP program left on ${ifname}`);
      assert.not.ok(fs.existsSync(controlPath(lab.ns.gwA)), 'the control socket is gone');
      const events = fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(events.map((e) => e.event), ['starting', 'control', 'error']);
      assert.is(events[2].code, 'MAELSTROM_ERR_METRICS');
      assert.is(events[2].level, 'error');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

observe.run();
