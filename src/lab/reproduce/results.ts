// A figure's results on disk (figure-N.json in the output directory): every run of every point,
// with the lab's fidelity and the machine's load while it ran, and the mean and standard
// deviation per point. Written after each run, so an interrupted reproduction resumes from it.
import fs from 'node:fs';
import path from 'node:path';
import type { ConfigName } from './configs';
import type { Fidelity } from './fidelity';
import { mergeFidelity } from './fidelity';
import type { Kind } from './figures';
import type { Profile } from './params';

export interface RunRecord {
  key: string;
  run: number;
  config: ConfigName;
  x: number;
  at: string;             // ISO time it started
  seconds: number;        // how long it took, lab work included
  loadAverage: number;    // 1-minute load average when it ended
  stealShare: number;     // share of CPU time the hypervisor took meanwhile (/proc/stat)
  values: Record<string, unknown>;
  fidelity?: Fidelity;
  error?: string;
}

export interface PointSummary {
  key: string;
  config: ConfigName;
  x: number;
  measuredAs?: ConfigName;
  n: number;
  errors: number;
  mean: Record<string, number>;   // numbers, and arrays of numbers element by element (as number[])
  std: Record<string, number>;
  fidelity?: Fidelity;
}

export interface FigureResults {
  version: 1;
  figure: number;
  kind: Kind;
  title: string;
  claim: string;
  x: { name: string; unit: string; percent?: boolean };
  profile: Profile;
  configs: { name: ConfigName }[];
  points: { key: string; config: ConfigName; x: number; setup: string; delayMs: number; measuredAs?: ConfigName }[];
  runs: RunRecord[];
  summary?: PointSummary[];
  fidelity?: Fidelity;
  started: string;
  finished?: string;
  cpus?: number;  // the machine's CPUs (os.cpus()); absent in results from before it was kept
}

export function resultsFile(dir: string, figure: number): string {
  return path.join(dir, `figure-${figure}.json`);
}

// The results of an earlier reproduction of this figure with the same profile, to resume.
export function loadResults(dir: string, figure: number, profile: Profile): FigureResults | undefined {
  const file = resultsFile(dir, figure);
  if (!fs.existsSync(file)) return undefined;
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as FigureResults;
    if (r.version !== 1 || r.profile.name !== profile.name || r.profile.runs !== profile.runs) return undefined;
    return r;
  } catch {
    return undefined;
  }
}

export function saveResults(dir: string, r: FigureResults): void {
  const file = resultsFile(dir, r.figure);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(r, null, 1) + '\n');
  fs.renameSync(`${file}.tmp`, file);
}

function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  // The sample standard deviation, as the paper's error bars over five runs.
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std };
}

export function summarize(r: FigureResults): PointSummary[] {
  return r.points.map((p) => {
    const runs = r.runs.filter((x) => x.key === p.key && !x.error);
    const mean: Record<string, number> = {};
    const std: Record<string, number> = {};
    const fields = new Set(runs.flatMap((x) => Object.keys(x.values)));
    for (const f of fields) {
      const vs = runs.map((x) => x.values[f]);
      if (vs.every((v) => typeof v === 'number')) {
        const m = meanStd(vs as number[]);
        mean[f] = m.mean;
        std[f] = m.std;
      } else if (vs.every((v) => Array.isArray(v))) {
        const arrays = vs as number[][];
        const len = Math.min(...arrays.map((a) => a.length));
        const ms = Array.from({ length: len }, (_, i) => meanStd(arrays.map((a) => a[i])));
        (mean as Record<string, unknown>)[f] = ms.map((m) => m.mean);
        (std as Record<string, unknown>)[f] = ms.map((m) => m.std);
      }
    }
    return {
      key: p.key, config: p.config, x: p.x, ...(p.measuredAs ? { measuredAs: p.measuredAs } : {}),
      n: runs.length, errors: r.runs.filter((x) => x.key === p.key && x.error).length, mean, std,
      fidelity: mergeFidelity(runs.flatMap((x) => (x.fidelity ? [x.fidelity] : []))),
    };
  });
}

export function figureFidelity(r: FigureResults): Fidelity | undefined {
  return mergeFidelity(r.runs.flatMap((x) => (x.fidelity ? [x.fidelity] : [])));
}
