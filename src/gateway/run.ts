// A running gateway with everything `maelstrom up` runs around the engine: the control socket
// (status, stats, watch, tune, rekey), Prometheus metrics, the PID file, the --auto loop and the
// drain of network-sync events to watchers. One function for the CLI and for a program that
// embeds a gateway:
//
//   const gw = await runGateway({ lan: 'eth1', wan: 'eth2', peer: '192.0.2.2', remote: ['10.2.0.0/16'],
//     keyFile: '/etc/maelstrom/pair.key' }, { log });
//   ... gw.status(), gw.stats(), gw.tune({ c: 2 }) ...
//   await gw.stop();
import { MaelstromError } from '../errors';
import type { Logger } from '../log';
import type { EngineStats } from '../native/addon';
import { AutoRedundancy } from './auto';
import type { AutoOptions } from './auto';
import { ControlServer, controlPathState, defaultControlPath } from './control';
import { startGateway } from './gateway';
import type { EpochRecord, GatewayOptions, StartedGateway, TuneRequest } from './gateway';
import { GatewayMetrics, serveMetrics } from './metrics';
import type { MetricsAddress, MetricsServer } from './metrics';
import { removePidFile, writePidFile } from './pid-file';

export interface RunOptions extends GatewayOptions {
  control?: string;          // default /run/maelstrom/<lan>.sock
  pidFile?: string;          // none by default
  metrics?: MetricsAddress;  // none by default
  auto?: AutoOptions;        // adapt c to the loss the peer reports
}

export interface RunningGateway {
  gateway: StartedGateway;
  status(): Record<string, unknown>;   // what `maelstrom status --json` shows
  stats(): EngineStats;
  tune(change: TuneRequest): EpochRecord;
  // Stops the auto loop, metrics, engine and control socket; removes the PID file. The final
  // counters, read before the engine stops.
  stop(): Promise<EngineStats>;
}

// `onEpoch` hears every epoch change (tune, --auto) after it is applied.
export async function runGateway(o: RunOptions, hooks: { log: Logger; onEpoch?: (e: EpochRecord) => void }): Promise<RunningGateway> {
  const { log } = hooks;
  const started = process.hrtime.bigint();
  const controlPath = o.control ?? defaultControlPath(o.lan);
  if (await controlPathState(controlPath) === 'stale') log.warn({ event: 'control-stale', path: controlPath }, `replacing ${controlPath}, left by a gateway that is gone`);
  const gw = await startGateway(o);
  let controller: AutoRedundancy | undefined;
  const epoch = (e: EpochRecord) => {
    log.info({ event: 'epoch', ...e }, `epoch ${e.epoch}: (r=${e.r}, c=${e.c}) by ${e.reason}`);
    hooks.onEpoch?.(e);
    return e;
  };
  const status = () => ({
    lan: o.lan, wan: o.wan, peer: o.peer, remote: o.remote, ...gw.info, auth: gw.auth(), control: controlPath, pid: process.pid,
    pidFile: o.pidFile ?? null, uptimeS: Number(process.hrtime.bigint() - started) / 1e9,
    auto: o.auto ? { cMin: o.auto.cMin, cMax: o.auto.cMax, target: o.auto.target } : null,
    epochs: gw.epochs,
  });
  const tune = (change: TuneRequest) => {
    const e = gw.retune(change, 'tune');
    controller?.reset(e.c, e.r);
    return epoch(e);
  };
  const rekey = (file: string) => {
    const id = gw.rekey(file);
    log.info({ event: 'rekey', keyId: id, keyFile: file }, `rekey to ${id}: sealed with once the peer accepts it`);
    return { keyId: id, auth: gw.auth() };
  };
  let server: ControlServer | undefined;
  let metrics: MetricsServer | undefined;
  try {
    server = await ControlServer.open(controlPath, { status, stats: () => gw.stats(), setTrace: (on) => gw.engine.setTrace(on), tune, rekey });
    log.info({ event: 'control', path: controlPath }, 'control socket open');
    if (o.metrics) {
      metrics = await serveMetrics(new GatewayMetrics({ stats: () => gw.stats(), status }), o.metrics);
      log.info({ event: 'metrics', url: metrics.url }, 'serving metrics');
    }
    if (o.pidFile) writePidFile(o.pidFile, process.pid);
  } catch (err) {
    gw.stop();
    await metrics?.close();
    await server?.close();
    throw err;
  }
  const control = server;
  if (gw.info.insecure) log.warn({ event: 'insecure' }, 'running with --insecure-no-auth: repairs, reports and feedback are neither sealed nor checked');
  controller = o.auto ? new AutoRedundancy(o.auto, gw.info.c) : undefined;
  // Events leave the engine in batches; unwatched ones are dropped here.
  const drain = setInterval(() => control.publish(gw.engine.events()), 10);
  const adapt = controller && setInterval(() => {
    const peer = gw.stats().peer;
    const d = peer && controller!.observe(peer, Date.now());
    if (!d) return;
    try {
      epoch(gw.retune({ c: d.c, interleaves: d.interleaves }, 'auto', { loss: d.loss, burst: d.burst, modelled: d.modelled }));
    } catch (err) {
      controller!.reset(gw.info.c, gw.info.r);
      log.warn({ event: 'auto-refused', c: d.c, loss: d.loss, burst: d.burst, code: (err as MaelstromError).code, message: (err as Error).message }, '--auto could not change c');
    }
  }, 200);
  let stopping: Promise<EngineStats> | undefined;
  return {
    gateway: gw,
    status,
    stats: () => gw.stats(),
    tune,
    stop: () => {
      stopping ??= (async () => {
        clearInterval(drain);
        if (adapt) clearInterval(adapt);
        await metrics?.close();
        const counters = gw.stats();
        gw.stop();
        control.publish(gw.engine.events());
        if (o.pidFile) removePidFile(o.pidFile, process.pid);
        await control.close();
        return counters;
      })();
      return stopping;
    },
  };
}
