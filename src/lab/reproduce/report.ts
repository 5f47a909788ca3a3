// summary.md in the output directory: for each figure measured there, the paper's claim, the
// means and standard deviations per point, whether the claim's measurable part holds, the lab's
// fidelity and the machine's load. docs/reproduction.md discusses the committed full run.
import fs from 'node:fs';
import path from 'node:path';
import type { ConfigName } from './configs';
import { formatFidelity } from './fidelity';
import { SCALING } from './params';
import { resultsFile } from './results';
import type { FigureResults, PointSummary } from './results';

export interface Verdict {
  holds: boolean | undefined;  // undefined: not measurable from these results
  evidence: string;
}

const FEC: ConfigName[] = ['network-sync', 'local-sync+FEC', 'remote-sync+FEC'];
const NO_FEC: ConfigName[] = ['local-sync', 'remote-sync'];

function at(r: FigureResults, config: ConfigName, x: number): PointSummary | undefined {
  return r.summary?.find((p) => p.config === config && p.x === x && p.n > 0);
}

function xs(r: FigureResults): number[] {
  return [...new Set((r.summary ?? []).map((p) => p.x))].sort((a, b) => a - b);
}

function pct(x: number): string {
  return `${Number((x * 100).toPrecision(3))}%`;
}

// The measurable part of each figure's claim, checked on the means.
export function verdict(r: FigureResults): Verdict {
  const m = (c: ConfigName, x: number, f: string) => at(r, c, x)?.mean[f];
  switch (r.figure) {
    case 6: {
      const lost = (c: ConfigName) => xs(r).map((x) => m(c, x, 'lost')).filter((v): v is number => v !== undefined);
      const net = lost('network-sync');
      const loc = lost('local-sync');
      const tag = lost('tagged');
      if (net.length === 0 || loc.length === 0) return { holds: undefined, evidence: 'network-sync or local-sync not measured' };
      const holds = net.every((v) => v === 0) && loc.some((v) => v > 0) && tag.every((v) => v === 0);
      return { holds, evidence: `mean lost per run: network-sync ${net.map((v) => v.toFixed(1)).join(', ')}; local-sync ${loc.map((v) => v.toFixed(1)).join(', ')}; local-sync+FEC ${lost('local-sync+FEC').map((v) => v.toFixed(1)).join(', ')}${tag.length ? `; tagged ${tag.map((v) => v.toFixed(1)).join(', ')}` : ''} (at ${xs(r).map(pct).join(', ')})` };
    }
    case 7: {
      const net = [2, 3].map((c) => m('network-sync', c, 'lost'));
      const fec = [2, 3].map((c) => m('local-sync+FEC', c, 'lost'));
      if (net.some((v) => v === undefined) || fec.some((v) => v === undefined)) return { holds: undefined, evidence: 'c = 2 or 3 not measured' };
      const holds = net.every((v) => v === 0);
      return { holds, evidence: `at c = 2, 3: network-sync lost ${net.map((v) => v!.toFixed(1)).join(', ')}, local-sync+FEC ${fec.map((v) => v!.toFixed(1)).join(', ')} per run (mean)` };
    }
    case 8: {
      const lossy = xs(r).filter((x) => x > 0);
      const rows = lossy.map((x) => ({ x, loc: m('local-sync', x, 'p99Ms'), fec: m('local-sync+FEC', x, 'p99Ms'), net: m('network-sync', x, 'p99Ms') }));
      if (rows.some((w) => w.loc === undefined || w.fec === undefined || w.net === undefined)) return { holds: undefined, evidence: 'a configuration not measured' };
      const holds = rows.every((w) => w.loc! > w.fec! && w.loc! > w.net!);
      return { holds, evidence: `p99 (ms) local-sync / local-sync+FEC / network-sync: ${rows.map((w) => `${pct(w.x)} ${w.loc!.toFixed(0)} / ${w.fec!.toFixed(0)} / ${w.net!.toFixed(0)}`).join('; ')}` };
    }
    case 9: {
      const lossy = xs(r).filter((x) => x > 0);
      const rows = lossy.map((x) => ({ x, fec: Math.min(...FEC.map((c) => m(c, x, 'mbit') ?? Infinity)), plain: Math.max(...NO_FEC.map((c) => m(c, x, 'mbit') ?? 0)) }));
      if (rows.length === 0) return { holds: undefined, evidence: 'no lossy point' };
      const holds = rows.every((w) => w.fec >= 10 * w.plain);
      return { holds, evidence: `slowest with FEC / fastest without (Mbit/s): ${rows.map((w) => `${pct(w.x)} ${w.fec.toFixed(1)} / ${w.plain.toFixed(1)} (${(w.fec / Math.max(w.plain, 1e-9)).toFixed(1)}x)`).join('; ')}` };
    }
    case 10: {
      const d = xs(r);
      const first = m('network-sync', d[0], 'mbit');
      const last = m('network-sync', d[d.length - 1], 'mbit');
      if (first === undefined || last === undefined) return { holds: undefined, evidence: 'network-sync not measured' };
      const plain = m('local-sync', d[d.length - 1], 'mbit');
      const holds = last >= 0.7 * first && (plain === undefined || last > plain);
      return { holds, evidence: `network-sync ${first.toFixed(1)} Mbit/s at ${d[0]} ms, ${last.toFixed(1)} at ${d[d.length - 1]} ms (${(last / first).toFixed(2)}x)${plain !== undefined ? `; local-sync without FEC ${plain.toFixed(1)} at ${d[d.length - 1]} ms` : ''}` };
    }
    case 11: {
      const rows = xs(r).map((x) => ({ x, net: m('network-sync', x, 'mbit'), remote: Math.max(m('remote-sync', x, 'mbit') ?? 0, m('remote-sync+FEC', x, 'mbit') ?? 0), fecLocal: m('local-sync+FEC', x, 'mbit') }));
      if (rows.some((w) => w.net === undefined)) return { holds: undefined, evidence: 'network-sync not measured' };
      const holds = rows.every((w) => w.net! > w.remote && (w.fecLocal === undefined || w.fecLocal > w.remote));
      return { holds, evidence: `network-sync / local-sync+FEC / best remote-sync (Mbit/s): ${rows.map((w) => `${pct(w.x)} ${w.net!.toFixed(1)} / ${(w.fecLocal ?? NaN).toFixed(1)} / ${w.remote.toFixed(1)}`).join('; ')}` };
    }
    default:
      return { holds: undefined, evidence: '' };
  }
}

function cell(p: PointSummary, field: string, digits: number): string {
  const v = p.mean[field];
  if (typeof v !== 'number') return '';
  return p.n > 1 ? `${v.toFixed(digits)} ± ${p.std[field].toFixed(digits)}` : v.toFixed(digits);
}

export function figureMarkdown(r: FigureResults, image?: string): string {
  const lines = [`## ${r.title}`, '', `> ${r.claim}`, ''];
  if (image) lines.push(`![${r.title}](${image})`, '');
  const p = r.profile;
  const length = r.kind === 'disaster' ? `the disaster ${p.disasterAfterSeconds} s into the load` : r.kind === 'latency' ? `${p.latencySeconds} s of load` : `${p.throughputSeconds} s measured after ${p.warmUpSeconds} s`;
  lines.push(`Profile: ${p.name}, ${p.runs} runs a point, ${length}.`, '');
  const fields = r.kind === 'disaster' ? [['acked', 'acknowledged', 0], ['lost', 'lost', 1], ['ackedAfter', 'acknowledged during the cut', 0], ['wanUnrecoverable', 'WAN losses not rebuilt', 1]]
    : r.kind === 'latency' ? [['p50Ms', 'p50 ms', 1], ['p99Ms', 'p99 ms', 1], ['maxMs', 'max ms', 1], ['groups', 'groups', 0]]
      : [['mbit', 'Mbit/s', 1], ['appends', 'appends', 0]];
  lines.push(`| configuration | ${r.x.name} | runs | ${fields.map((f) => f[1]).join(' | ')} | late p99 / over 0.1 ms | tail drops |`);
  lines.push(`|---|---:|---:|${fields.map(() => '---:').join('|')}|---:|---:|`);
  for (const p of r.summary ?? []) {
    const f = p.fidelity;
    const late = f ? `${Math.max(f.aToB.lateP99Us, f.bToA.lateP99Us).toFixed(0)} us / ${(100 * Math.max(f.aToB.lateOver100usShare, f.bToA.lateOver100usShare)).toFixed(1)}%` : '';
    lines.push(`| ${p.config}${p.measuredAs ? ` (as ${p.measuredAs})` : ''} | ${r.x.percent ? pct(p.x) : p.x} | ${p.n}${p.errors ? ` (${p.errors} failed)` : ''} | ${fields.map(([k, , d]) => cell(p, k as string, d as number)).join(' | ')} | ${late} | ${f ? f.aToB.tailDrops + f.bToA.tailDrops : ''} |`);
  }
  const v = verdict(r);
  lines.push('', `**Claim ${v.holds === undefined ? 'not checked' : v.holds ? 'holds' : 'does not hold'} here**: ${v.evidence}.`);
  const runs = r.runs.filter((x) => !x.error);
  if (runs.length) {
    const loads = runs.map((x) => x.loadAverage);
    const steal = runs.map((x) => x.stealShare);
    lines.push('', `Machine while measured: load average ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}${r.cpus ? ` on ${r.cpus} cores` : ''}, hypervisor steal ${(100 * Math.min(...steal)).toFixed(0)}-${(100 * Math.max(...steal)).toFixed(0)}% (${r.started.slice(0, 16)} to ${(r.finished ?? '').slice(0, 16)}).`);
  }
  if (r.fidelity) lines.push('', `WAN fidelity over the figure: ${formatFidelity(r.fidelity)}.`);
  return lines.join('\n');
}

export function scalingMarkdown(): string {
  return ['| | paper (Table 2, section 5.1) | here | why |', '|---|---|---|---|', ...SCALING.map((s) => `| ${s.what} | ${s.paper} | ${s.here} | ${s.why} |`)].join('\n');
}

// summary.md over every figure-N.json in `dir`.
export function writeSummary(dir: string): string {
  const parts = ['# smfs reproduce: summary', '', 'Generated by `smfs reproduce`; each point is the mean ± sample standard deviation of its runs.', '', scalingMarkdown()];
  for (const id of [6, 7, 8, 9, 10, 11]) {
    const file = resultsFile(dir, id);
    if (!fs.existsSync(file)) continue;
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as FigureResults;
    parts.push('', figureMarkdown(r, fs.existsSync(path.join(dir, `figure-${id}.png`)) ? `figure-${id}.png` : undefined));
  }
  const out = path.join(dir, 'summary.md');
  fs.writeFileSync(out, parts.join('\n') + '\n');
  return out;
}
