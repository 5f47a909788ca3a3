// smfs reproduce: each figure's points, N runs each, in test beds grouped by network setup
// (a lab and its gateways are built once per setup and figure), saved after every run,
// resumed from what an earlier, interrupted reproduction saved; a progress line with ETA.
import fs from 'node:fs';
import os from 'node:os';
import cliProgress from 'cli-progress';
import { Bed, setupKey } from './bed';
import { abortRequested, installAbort } from './abort';
import { CONFIGS } from './configs';
import { fidelityBetween } from './fidelity';
import { FIGURES } from './figures';
import type { FigureId, Point } from './figures';
import type { Profile } from './params';
import { renderFigure } from './plot';
import { writeSummary } from './report';
import { figureFidelity, loadResults, saveResults, summarize } from './results';
import type { FigureResults, RunRecord } from './results';

export interface ReproduceOptions {
  figures: FigureId[];
  profile: Profile;
  out: string;
  // Progress and messages (stderr); the bar is drawn only on a terminal.
  log?: (line: string) => void;
  tty?: boolean;
}

function cpuTimes(): { steal: number; total: number } {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { steal: fields[7] ?? 0, total: fields.slice(0, 8).reduce((a, b) => a + b, 0) };
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

// A figure not yet measured: its configurations and points.
export function emptyResults(id: FigureId, profile: Profile): FigureResults {
  const f = FIGURES[id];
  const points = f.points(profile);
  return {
    version: 1, figure: id, kind: f.kind, title: f.title, claim: f.claim, x: f.x, profile,
    configs: f.configs.map((name) => ({ name })),
    points: points.map((p) => ({ key: p.key, config: p.config, x: p.x, setup: setupKey(p.setup), delayMs: p.delayMs, ...(p.measuredAs ? { measuredAs: p.measuredAs } : {}) })),
    runs: [], started: new Date().toISOString(), cpus: os.cpus().length,
  };
}

export async function reproduce(o: ReproduceOptions): Promise<FigureResults[]> {
  const log = o.log ?? ((line: string) => process.stderr.write(line + '\n'));
  let bar: cliProgress.SingleBar | undefined;
  installAbort((signal) => {
    bar?.stop();
    log(`smfs reproduce: ${signal}: removing the labs; what was measured is in ${o.out} and a new run resumes from it`);
  });
  fs.mkdirSync(o.out, { recursive: true });
  const all: FigureResults[] = [];
  for (const id of o.figures) {
    const figure = FIGURES[id];
    const earlier = loadResults(o.out, id, o.profile);
    const r = earlier ?? emptyResults(id, o.profile);
    const points = figure.points(o.profile);
    const done = new Set(r.runs.filter((x) => !x.error).map((x) => `${x.key}#${x.run}`));
    const todo: { point: Point; run: number }[] = [];
    for (let run = 0; run < o.profile.runs; run++) for (const point of points) if (!done.has(`${point.key}#${run}`)) todo.push({ point, run });
    const total = points.length * o.profile.runs;
    log(`figure ${id}: ${points.length} points x ${o.profile.runs} runs${todo.length < total ? `, ${total - todo.length} already measured` : ''}`);
    // Beds by network setup, each built once for this figure; its runs in run order, so that
    // the runs of one point are spread over the figure's time, not back to back.
    const groups = new Map<string, { point: Point; run: number }[]>();
    for (const t of todo) {
      const k = setupKey(t.point.setup);
      groups.set(k, [...(groups.get(k) ?? []), t]);
    }
    if (o.tty && todo.length > 0) {
      bar = new cliProgress.SingleBar({
        format: `figure ${id} |{bar}| {value}/{total} runs | ETA {eta_formatted} | {what}`, hideCursor: true, etaBuffer: 8, stream: process.stderr,
      }, cliProgress.Presets.shades_classic);
      bar.start(total, total - todo.length, { what: 'building the lab' });
    }
    const started = Date.now();
    let finished = 0;
    for (const [key, items] of groups) {
      if (abortRequested()) break;
      let bed: Bed | undefined;
      try {
        for (const { point, run } of items) {
          if (abortRequested()) break;
          const what = `${point.config}${point.measuredAs ? ` (as ${point.measuredAs})` : ''} @ ${figure.x.percent ? `${point.x * 100}%` : `${point.x}${figure.x.unit ? ` ${figure.x.unit}` : ''}`}, run ${run + 1}/${o.profile.runs}`;
          bar?.update({ what: bed ? what : `building the lab: ${key}` });
          bed ??= await Bed.create(point.setup, point.delayMs);
          bar?.update({ what });
          const record = await measureOne(bed, figure.measure.bind(figure), point, run, o.profile);
          if (abortRequested()) break;
          r.runs = r.runs.filter((x) => !(x.key === point.key && x.run === run));
          r.runs.push(record);
          saveResults(o.out, r);
          finished++;
          bar?.increment();
          if (!o.tty) {
            const eta = (Date.now() - started) / 1000 / finished * (todo.length - finished);
            log(`figure ${id}: ${total - todo.length + finished}/${total} runs, ETA ${formatDuration(eta)}: ${what}: ${record.error ? `error: ${record.error}` : brief(record)}`);
          }
          if (record.error) {
            // A lab that failed a run may be broken: the next run gets a new one.
            await bed.destroy().catch(() => undefined);
            bed = undefined;
          }
        }
      } finally {
        if (bed && !abortRequested()) await bed.destroy();
      }
    }
    bar?.stop();
    bar = undefined;
    if (abortRequested()) break;
    r.summary = summarize(r);
    r.fidelity = figureFidelity(r);
    r.finished = new Date().toISOString();
    saveResults(o.out, r);
    const files = await renderFigure(r, o.out);
    log(`figure ${id}: ${files.svg}, ${files.png}`);
    all.push(r);
  }
  if (!abortRequested() && all.length > 0) writeSummary(o.out);
  return all;
}

function brief(r: RunRecord): string {
  const v = r.values;
  if ('mbit' in v) return `${(v.mbit as number).toFixed(1)} Mbit/s`;
  if ('lost' in v) return `${v.acked as number} acknowledged, ${v.lost as number} lost`;
  if ('p99Ms' in v) return `p50 ${(v.p50Ms as number).toFixed(1)} ms, p99 ${(v.p99Ms as number).toFixed(1)} ms (${v.groups as number} groups)`;
  return JSON.stringify(v);
}

async function measureOne(bed: Bed, measure: (bed: Bed, p: Point, profile: Profile) => Promise<Record<string, unknown>>, point: Point, run: number, profile: Profile): Promise<RunRecord> {
  const at = new Date();
  const cpu0 = cpuTimes();
  const base = { key: point.key, run, config: point.config, x: point.x, at: at.toISOString() };
  try {
    await bed.setWan({ delayMs: point.delayMs, loss: 0, killed: false });
    const before = await bed.lab.wan.status();
    const values = await measure(bed, point, profile);
    const after = await bed.lab.wan.status();
    const cpu1 = cpuTimes();
    return {
      ...base, seconds: (Date.now() - at.getTime()) / 1000, loadAverage: os.loadavg()[0],
      stealShare: (cpu1.steal - cpu0.steal) / Math.max(1, cpu1.total - cpu0.total), values, fidelity: fidelityBetween(before, after),
    };
  } catch (err) {
    return { ...base, seconds: (Date.now() - at.getTime()) / 1000, loadAverage: os.loadavg()[0], stealShare: 0, values: {}, error: err instanceof Error ? err.message : String(err) };
  }
}

export { CONFIGS };
