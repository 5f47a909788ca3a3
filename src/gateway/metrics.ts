// Prometheus metrics of a running gateway (maelstrom up --metrics HOST:PORT): the engine's
// counters and gauges, read once per scrape through collect() callbacks (nothing runs per packet),
// the code parameters, and Node's standard process metrics. Names in docs/gateway.md, "Metrics".
import http from 'node:http';
import net from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { ConfigError, MaelstromError } from '../errors';
import { AUTH_VERDICTS, ENGINE_STAGES } from '../native/addon';
import type { EngineStats, GatewayXdpStats, SocketDrops } from '../native/addon';

export interface MetricsSource {
  stats(): EngineStats;
  status(): Record<string, unknown>; // what `maelstrom status --json` shows: r, c, interleaves, epoch when there is one, ...
}

export interface MetricsAddress {
  host: string;
  port: number;
}

// HOST:PORT or [IPv6]:PORT, e.g. 127.0.0.1:9600.
export function parseMetricsAddress(text: string): MetricsAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d+)$/.exec(text.trim());
  const hint = 'give HOST:PORT, e.g. 127.0.0.1:9600 (0.0.0.0:9600 for every address)';
  if (!m) throw new ConfigError(`--metrics takes HOST:PORT, got '${text}': ${hint}`);
  const host = m[1] ?? m[2];
  if (m[1] !== undefined && net.isIPv6(host) === false) throw new ConfigError(`--metrics: '${host}' is not an IPv6 address: ${hint}`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`--metrics: port ${m[3]} is out of range 1 to 65535: ${hint}`);
  return { host, port };
}

export function formatMetricsAddress(a: MetricsAddress): string {
  return net.isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export class GatewayMetrics {
  readonly registry = new Registry();
  private scrape?: { stats: EngineStats; status: Record<string, unknown> };

  constructor(private readonly source: MetricsSource, options: { processMetrics?: boolean } = {}) {
    const r = this.registry;
    const now = () => this.scrape ?? { stats: source.stats(), status: source.status() };
    // A counter mirrors an engine counter: set on scrape, never incremented here.
    const counter = (name: string, help: string, value: (s: EngineStats) => number) =>
      new Counter({ name, help, registers: [r], collect() { this.reset(); this.inc(value(now().stats)); } });
    // A counter with one label, a sample per value of it, set on scrape as counter() is.
    const labelled = (name: string, help: string, label: string, samples: (s: EngineStats) => [string, number][]) =>
      new Counter({
        name, help, labelNames: [label], registers: [r], collect() {
          const values = samples(now().stats);
          this.reset();
          for (const [v, n] of values) this.inc({ [label]: v }, n);
        },
      });
    const gauge = (name: string, help: string, value: (s: EngineStats, status: Record<string, unknown>) => number | undefined) =>
      new Gauge({
        name, help, registers: [r], collect() {
          const s = now();
          const v = value(s.stats, s.status);
          this.reset();
          if (v !== undefined) this.set(v);
        },
      });
    const number = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

    labelled('maelstrom_packets_total', 'Frames the engine forwarded, by direction', 'direction',
      (s) => [['lan_to_wan', s.lanToWanPackets], ['wan_to_lan', s.wanToLanPackets]]);
    labelled('maelstrom_bytes_total', 'Bytes of the frames the engine forwarded (Ethernet frames), by direction', 'direction',
      (s) => [['lan_to_wan', s.lanToWanBytes], ['wan_to_lan', s.wanToLanBytes]]);
    counter('maelstrom_repairs_sent_total', 'Repair packets sent to the peer gateway', (s) => s.repairsSent);
    counter('maelstrom_repair_bytes_sent_total', 'Bytes of the repair packets sent', (s) => s.repairBytesSent);
    counter('maelstrom_repairs_flushed_total', 'Repairs fired before their bin filled (flush timeout, idle flush, epoch change)', (s) => s.repairsFlushed);
    counter('maelstrom_repairs_idle_flushed_total', 'Repairs fired by the idle flush: network-sync flows waited and the LAN went quiet', (s) => s.repairsIdleFlushed);
    counter('maelstrom_idle_flush_deferred_total', 'Idle flushes cut short by the flush budget (--flush-budget): their bins fire when they fill, time out or the budget allows', (s) => s.idleFlushDeferred);
    counter('maelstrom_repairs_dropped_total', 'Repairs fired with no UMEM frame free', (s) => s.repairsDropped);
    counter('maelstrom_repairs_received_total', 'Repair packets from the peer gateway', (s) => s.repairsReceived);
    counter('maelstrom_recovered_total', 'Packets lost on the WAN that the decoder rebuilt', (s) => s.recovered);
    counter('maelstrom_unrecoverable_total', 'Packets named missing that were neither rebuilt nor arrived in the window', (s) => s.unrecoverable);
    counter('maelstrom_malformed_total', 'Repairs rejected as malformed or with a bad UDP checksum', (s) => s.malformed);
    counter('maelstrom_unprotected_total', 'Packets too long to protect, forwarded without repairs', (s) => s.unprotected);
    counter('maelstrom_mss_clamped_total', 'TCP SYNs whose MSS was clamped', (s) => s.mssClamped);
    counter('maelstrom_checksums_completed_total', 'TCP/UDP checksums a LAN host\'s offload left partial, completed before forwarding', (s) => s.lanChecksumCompleted);
    counter('maelstrom_engine_cpu_seconds_total', 'CPU time of the engine threads (user and system)', (s) => s.cpuNs / 1e9);
    counter('maelstrom_engine_sampled_packets_total', 'LAN frames in the turns the stage profile timed (one turn in 16)', (s) => s.stagesNs.packets);
    labelled('maelstrom_engine_stage_seconds_total', 'Time of the LAN to WAN path by stage in the sampled turns; over maelstrom_engine_sampled_packets_total, a packet\'s cost in the stage', 'stage',
      (s) => ENGINE_STAGES.map((k) => [k, s.stagesNs[k] / 1e9]));
    counter('maelstrom_tx_dropped_total', 'Frames dropped for want of a UMEM frame or TX ring space', (s) => s.txDropped);
    counter('maelstrom_feedback_datagrams_total', 'Network-sync feedback datagrams sent to LAN senders', (s) => s.netsync.feedbackDatagrams);
    counter('maelstrom_feedback_send_errors_total', 'Network-sync feedback datagrams that failed to send', (s) => s.netsync.feedbackSendErrors);
    counter('maelstrom_netsync_flows_opened_total', 'TCP flows the network-sync tracker started to follow', (s) => s.netsync.flowsOpened);
    counter('maelstrom_netsync_flows_isn_guessed_total', 'TCP flows first seen mid-stream (no SYN): their feedback is not usable', (s) => s.netsync.flowsIsnGuessed);
    counter('maelstrom_netsync_after_close_total', 'Late segments of a flow closed by FIN or RST within the last minute, not taken for a new flow', (s) => s.netsync.afterClose);
    labelled('maelstrom_xdp_packets_total', 'Packets counted by the XDP program, by outcome (enum gw_stat), summed over CPUs and both interfaces', 'outcome',
      (s) => (Object.keys(s.xdp) as (keyof GatewayXdpStats)[]).map((k) => [snake(k), s.xdp[k]]));
    labelled('maelstrom_auth_datagrams_total', 'The peer gateway\'s datagrams (repairs, reports) by the authentication envelope\'s verdict: ok, or why refused', 'verdict',
      (s) => [...AUTH_VERDICTS.map((v): [string, number] => [snake(v), s.auth[v]]), ['unverifiable', s.auth.unverifiable]]);
    counter('maelstrom_key_rotations_total', 'Switches to a new key (maelstrom rekey) completed', (s) => s.auth.rotations);
    new Counter({
      name: 'maelstrom_xsk_drops_total', help: 'Frames the kernel dropped at the AF_XDP sockets, by interface and reason (XDP_STATISTICS)',
      labelNames: ['interface', 'reason'], registers: [r],
      collect() {
        const s = now().stats;
        this.reset();
        for (const [side, drops] of [['lan', s.lanSockets], ['wan', s.wanSockets]] as const) {
          for (const k of Object.keys(drops) as (keyof SocketDrops)[]) this.inc({ interface: side, reason: snake(k) }, drops[k]);
        }
      },
    });

    gauge('maelstrom_decoder_window_packets', 'Data packets held in the decoder\'s window', (s) => s.decoderWindow);
    gauge('maelstrom_decoder_window_capacity_packets', 'Size of the decoder\'s window', (s) => number(s.decoderWindowCapacity));
    gauge('maelstrom_decoder_pending_repairs', 'Repairs waiting for a second missing packet', (s) => s.decoderPending);
    gauge('maelstrom_decoder_pending_capacity_repairs', 'Most repairs that can wait', (s) => number(s.decoderPendingCapacity));
    gauge('maelstrom_netsync_flows', 'TCP flows the network-sync tracker follows now', (s) => s.netsync.flows);
    gauge('maelstrom_r', 'Data packets per repair (r)', (_s, st) => number(st.r));
    gauge('maelstrom_c', 'Repairs per data packet: layers (c)', (_s, st) => number(st.c));
    // Only from a gateway whose status has an epoch: an unlabelled gauge would show 0 otherwise.
    if (number(source.status().epoch) !== undefined) {
      gauge('maelstrom_epoch', 'Configuration epoch of the code (changes with runtime tuning)', (_s, st) => number(st.epoch));
    }
    gauge('maelstrom_flush_timeout_seconds', 'A bin not full after this long fires anyway', (_s, st) => {
      const ms = number(st.flushTimeoutMs);
      return ms === undefined ? undefined : ms / 1000;
    });
    new Gauge({
      name: 'maelstrom_interleave', help: 'Interleave of each layer', labelNames: ['layer'], registers: [r],
      collect() {
        const il = now().status.interleaves;
        this.reset();
        if (Array.isArray(il)) il.forEach((v, layer) => { if (typeof v === 'number') this.set({ layer: String(layer) }, v); });
      },
    });
    new Gauge({
      name: 'maelstrom_netsync_safe_latency_seconds', help: 'Network-sync feedback latency reported by the engine: p50, p99 and max',
      labelNames: ['stat'], registers: [r],
      collect() {
        const l = (now().stats.netsync as unknown as { safeLatencyUs?: Record<string, unknown> }).safeLatencyUs;
        this.reset();
        if (!number(l?.count)) return; // no record safe yet
        for (const stat of ['p50', 'p99', 'max']) {
          const v = number(l?.[stat]);
          if (v !== undefined) this.set({ stat }, v / 1e6);
        }
      },
    });
    new Gauge({
      name: 'maelstrom_gateway_info', help: 'The gateway: interfaces, peer, XDP and AF_XDP modes (value 1)',
      labelNames: ['lan', 'wan', 'peer', 'xdp_mode', 'zero_copy'], registers: [r],
      collect() {
        const st = now().status;
        this.reset();
        this.set({ lan: String(st.lan ?? ''), wan: String(st.wan ?? ''), peer: String(st.peer ?? ''), xdp_mode: String(st.xdpMode ?? ''), zero_copy: String(st.zeroCopy === true) }, 1);
      },
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: r });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // The exposition text, every metric from one reading of the engine's counters.
  async exposition(): Promise<string> {
    this.scrape = { stats: this.source.stats(), status: this.source.status() };
    try {
      return await this.registry.metrics();
    } finally {
      this.scrape = undefined;
    }
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

// Serves GET /metrics at the address. Fails with MAELSTROM_ERR_METRICS when it cannot listen there.
export async function serveMetrics(metrics: GatewayMetrics, address: MetricsAddress): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('GET /metrics\n');
      return;
    }
    metrics.exposition().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot read the gateway's counters: ${err.message}\n`),
    );
  });
  const where = formatMetricsAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why: Record<string, string> = {
        EADDRINUSE: 'the address is in use (another process listens there): give another port',
        EADDRNOTAVAIL: 'that is not an address of this host (of this network namespace)',
        EACCES: 'permission denied (ports below 1024 need root)',
        ENOTFOUND: 'the host name does not resolve',
      };
      reject(new MaelstromError('MAELSTROM_ERR_METRICS', `cannot serve metrics on ${where}: ${why[err.code ?? ''] ?? err.message}`, { cause: err }));
    });
    server.listen(address.port, address.host, () => { server.removeAllListeners('error'); resolve(); });
  });
  server.on('error', () => undefined); // after listening, errors belong to single connections
  const bound = server.address() as net.AddressInfo; // the port itself when asked for port 0
  return {
    url: `http://${formatMetricsAddress({ host: address.host, port: bound.port })}/metrics`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections(); // scrapers keep connections alive
    }),
  };
}
