// Prometheus metrics (src/gateway/metrics.ts): the exposition text built from made-up counters,
// the HTTP server on loopback, and --metrics values the CLI refuses.
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GatewayMetrics, parseMetricsAddress, serveMetrics } from '../../src/gateway/metrics';
import type { EngineStats } from '../../src/native/addon';
import { engineStats } from '../helpers/engine-stats';

const bin = path.resolve(__dirname, '..', '..', 'src', 'cli', 'maelstrom.js');

function source(stats: EngineStats, status: Record<string, unknown> = {}) {
  const s: { stats: EngineStats; status: Record<string, unknown>; reads: number } = { stats, status: { lan: 'lan0', wan: 'wan0', peer: '10.99.0.2', xdpMode: 'native', zeroCopy: false, r: 8, c: 3, interleaves: [1, 10, 100], flushTimeoutMs: 1, ...status }, reads: 0 };
  return { s, src: { stats: () => { s.reads++; return s.stats; }, status: () => s.status } };
}

// The value of one sample line, e.g. sample(text, 'maelstrom_packets_total{direction="lan_to_wan"}').
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const exposition = suite('metrics: the exposition text');

exposition('engine counters become counters, gauges and code parameters, read once per scrape', async () => {
  const { s, src } = source(engineStats({
    lanToWanPackets: 5000, wanToLanPackets: 30, lanToWanBytes: 7_500_000, repairsSent: 600, repairsReceived: 17, recovered: 9,
    unrecoverable: 2, malformed: 4, repairsIdleFlushed: 11, idleFlushDeferred: 5, cpuNs: 2_500_000_000, decoderWindow: 400, decoderPending: 12, txDropped: 3,
    stagesNs: { packets: 320, rings: 0, copy: 40_000, lock: 0, tracker: 0, hash: 12_000, xor: 0, tx: 0 },
    netsync: { flows: 2, feedbackDatagrams: 240, flowsOpened: 5, flowsIsnGuessed: 1, afterClose: 7 }, xdp: { lanSteered: 5000, wanForgedRepair: 1 },
    wanSockets: { rxDropped: 6, rxRingFull: 0, fillRingEmpty: 0, txInvalid: 0 },
  }));
  const m = new GatewayMetrics(src);
  const text = await m.exposition();
  assert.is(s.reads, 1, 'one reading of the engine per scrape');
  const expect: [string, number][] = [
    ['maelstrom_packets_total{direction="lan_to_wan"}', 5000],
    ['maelstrom_packets_total{direction="wan_to_lan"}', 30],
    ['maelstrom_bytes_total{direction="lan_to_wan"}', 7_500_000],
    ['maelstrom_repairs_sent_total', 600],
    ['maelstrom_repairs_received_total', 17],
    ['maelstrom_recovered_total', 9],
    ['maelstrom_unrecoverable_total', 2],
    ['maelstrom_malformed_total', 4],
    ['maelstrom_tx_dropped_total', 3],
    ['maelstrom_repairs_idle_flushed_total', 11],
    ['maelstrom_idle_flush_deferred_total', 5],
    ['maelstrom_engine_cpu_seconds_total', 2.5],
    ['maelstrom_engine_sampled_packets_total', 320],
    ['maelstrom_engine_stage_seconds_total{stage="copy"}', 0.00004],
    ['maelstrom_engine_stage_seconds_total{stage="hash"}', 0.000012],
    ['maelstrom_engine_stage_seconds_total{stage="tx"}', 0],
    ['maelstrom_decoder_window_packets', 400],
    ['maelstrom_decoder_window_capacity_packets', 1600],
    ['maelstrom_decoder_pending_repairs', 12],
    ['maelstrom_decoder_pending_capacity_repairs', 1024],
    ['maelstrom_netsync_flows', 2],
    ['maelstrom_netsync_flows_opened_total', 5],
    ['maelstrom_netsync_flows_isn_guessed_total', 1],
    ['maelstrom_netsync_after_close_total', 7],
    ['maelstrom_feedback_datagrams_total', 240],
    ['maelstrom_xdp_packets_total{outcome="lan_steered"}', 5000],
    ['maelstrom_xdp_packets_total{outcome="wan_forged_repair"}', 1],
    ['maelstrom_xdp_packets_total{outcome="non_ipv4"}', 0],
    ['maelstrom_xsk_drops_total{interface="wan",reason="rx_dropped"}', 6],
    ['maelstrom_r', 8],
    ['maelstrom_c', 3],
    ['maelstrom_flush_timeout_seconds', 0.001],
    ['maelstrom_interleave{layer="2"}', 100],
    ['maelstrom_gateway_info{lan="lan0",wan="wan0",peer="10.99.0.2",xdp_mode="native",zero_copy="false"}', 1],
  ];
  for (const [series, value] of expect) assert.is(sample(text, series), value, series);
  assert.match(text, /# TYPE maelstrom_packets_total counter/);
  assert.match(text, /# TYPE maelstrom_decoder_window_packets gauge/);
  assert.match(text, /# HELP maelstrom_recovered_total Packets lost on the WAN that the decoder rebuilt/);
  // No epoch in this status, no feedback latency in these stats: the metrics have no sample.
  assert.not.match(text, /^maelstrom_epoch /m);
  assert.not.match(text, /^maelstrom_netsync_safe_latency_seconds/m);
  // Node's process metrics come along.
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    assert.match(text, new RegExp(`^${name} `, 'm'), name);
  }
});

exposition('counters mirror the engine: a second scrape shows the new values, not their sum', async () => {
  const { s, src } = source(engineStats({ lanToWanPackets: 100, recovered: 1 }), { epoch: 1 });
  const m = new GatewayMetrics(src, { processMetrics: false });
  assert.is(sample(await m.exposition(), 'maelstrom_recovered_total'), 1);
  assert.is(sample(await m.exposition(), 'maelstrom_recovered_total'), 1, 'same counters, same value');
  s.stats = engineStats({ lanToWanPackets: 250, recovered: 4, netsync: { safeLatencyUs: { p50: 180, p99: 950, max: 2100, count: 9 } } });
  s.status.epoch = 2;
  s.status.r = 16;
  const text = await m.exposition();
  assert.is(sample(text, 'maelstrom_packets_total{direction="lan_to_wan"}'), 250);
  assert.is(sample(text, 'maelstrom_recovered_total'), 4);
  assert.is(sample(text, 'maelstrom_epoch'), 2);
  assert.is(sample(text, 'maelstrom_r'), 16);
  assert.is(sample(text, 'maelstrom_netsync_safe_latency_seconds{stat="p99"}'), 0.00095);
  assert.is(sample(text, 'maelstrom_netsync_safe_latency_seconds{stat="max"}'), 0.0021);
  assert.not.match(text, /process_cpu/);
});

exposition.run();

const address = suite('metrics: --metrics addresses and the HTTP server');

address('HOST:PORT and [IPv6]:PORT are read; anything else is a ConfigError naming the option', () => {
  assert.equal(parseMetricsAddress('127.0.0.1:9600'), { host: '127.0.0.1', port: 9600 });
  assert.equal(parseMetricsAddress('localhost:1'), { host: 'localhost', port: 1 });
  assert.equal(parseMetricsAddress('[::1]:65535'), { host: '::1', port: 65535 });
  for (const [text, message] of [
    ['127.0.0.1', /takes HOST:PORT/], ['9600', /takes HOST:PORT/], [':9600', /takes HOST:PORT/], ['127.0.0.1:', /takes HOST:PORT/],
    ['127.0.0.1:0', /port 0 is out of range 1 to 65535/], ['127.0.0.1:65536', /out of range/], ['::1:9600', /takes HOST:PORT/],
    ['[nope]:9600', /takes HOST:PORT/], ['[1.2.3.4]:9600', /not an IPv6 address/], ['127.0.0.1:96x0', /takes HOST:PORT/],
  ] as [string, RegExp][]) {
    assert.throws(() => parseMetricsAddress(text), (e: Error & { code?: string }) => e.code === 'MAELSTROM_ERR_CONFIG' && message.test(e.message), text);
  }
});

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http.request(url, { method, agent: new http.Agent({ keepAlive: true }) }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    }).on('error', reject).end();
  });
}

address('GET /metrics answers with the exposition; other paths 404, other methods 405; close ends kept-alive connections', async () => {
  const { src } = source(engineStats({ lanToWanPackets: 42 }));
  const server = await serveMetrics(new GatewayMetrics(src, { processMetrics: false }), { host: '127.0.0.1', port: 0 });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.not.match(server.url, /:0\//);
    const r = await get(server.url);
    assert.is(r.status, 200);
    assert.match(r.type, /^text\/plain; version=0\.0\.4/);
    assert.is(sample(r.body, 'maelstrom_packets_total{direction="lan_to_wan"}'), 42);
    assert.is((await get(server.url.replace('/metrics', '/'))).status, 404);
    assert.is((await get(server.url, 'POST')).status, 405);
  } finally {
    await server.close();
  }
});

address('an address in use or not of this host is MAELSTROM_ERR_METRICS, saying which', async () => {
  const { src } = source(engineStats());
  const metrics = new GatewayMetrics(src, { processMetrics: false });
  const other = net.createServer();
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  const port = (other.address() as net.AddressInfo).port;
  try {
    const inUse = await serveMetrics(metrics, { host: '127.0.0.1', port }).then(() => undefined, (e: Error & { code: string }) => e);
    assert.ok(inUse, 'refused');
    assert.is(inUse!.code, 'MAELSTROM_ERR_METRICS');
    assert.match(inUse!.message, new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${port}: the address is in use`));
  } finally {
    other.close();
  }
  // 192.0.2.1 (TEST-NET-1) is on no interface here: binding fails without sending anything.
  const foreign = await serveMetrics(metrics, { host: '192.0.2.1', port: 9600 }).then(() => undefined, (e: Error & { code: string }) => e);
  assert.is(foreign?.code, 'MAELSTROM_ERR_METRICS');
  assert.match(foreign!.message, /not an address of this host/);
});

address('maelstrom up refuses a bad --metrics before doing anything: exit 2, MAELSTROM_ERR_CONFIG', () => {
  for (const [value, message] of [['127.0.0.1', /takes HOST:PORT/], ['127.0.0.1:99999', /out of range 1 to 65535/]] as [string, RegExp][]) {
    const r = spawnSync(process.execPath, [bin, 'up', '--lan', 'lan0', '--wan', 'wan0', '--peer', '10.99.0.2', '--remote', '10.2.0.0/24', '--metrics', value], { encoding: 'utf8', timeout: 20_000 });
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /\[MAELSTROM_ERR_CONFIG\]/);
    assert.is(r.stdout, '');
  }
});

address.run();
