// smfs reproduce without the lab: every figure's results render to a plot (a PNG with content,
// an SVG naming each configuration measured), summaries take the mean and sample standard
// deviation, an interrupted figure's file is taken up again only by a reproduction of the same
// profile, and the claims' checks read the means as the paper words them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FIGURE_IDS } from '../../src/lab/reproduce/figures';
import type { FigureId } from '../../src/lab/reproduce/figures';
import { QUANTILES } from '../../src/lab/reproduce/measure';
import { PROFILES } from '../../src/lab/reproduce/params';
import { renderFigure } from '../../src/lab/reproduce/plot';
import { verdict, writeSummary } from '../../src/lab/reproduce/report';
import { loadResults, saveResults, summarize } from '../../src/lab/reproduce/results';
import type { FigureResults } from '../../src/lab/reproduce/results';
import { emptyResults } from '../../src/lab/reproduce/runner';

const reproduce = suite('smfs reproduce: results, plots, claims');
const profile = { ...PROFILES.quick, runs: 2 };

// Made-up runs for every point of a figure: `value(config, x, run)` per kind.
function fake(id: FigureId, value: (config: string, x: number, run: number) => number): FigureResults {
  const r = emptyResults(id, profile);
  for (const p of r.points) {
    for (let run = 0; run < profile.runs; run++) {
      const v = value(p.config, p.x, run);
      const values = r.kind === 'disaster' ? { acked: 1000 + run, lost: v, bad: 0, ackedAfter: 0 }
        : r.kind === 'latency' ? { groups: 500, quantilesMs: QUANTILES.map((q) => v * (1 + 3 * q)), p50Ms: v * 2.5, p99Ms: v * 4, maxMs: v * 4 }
          : { mbit: v, appends: Math.round(v) };
      r.runs.push({ key: p.key, run, config: p.config, x: p.x, at: new Date().toISOString(), seconds: 1, loadAverage: 1, stealShare: 0, values });
    }
  }
  r.summary = summarize(r);
  r.finished = new Date().toISOString();
  return r;
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'reproduce-test-'));
}

reproduce('every figure renders: a PNG with content and an SVG that names every configuration measured', async () => {
  const dir = tmp();
  try {
    for (const id of FIGURE_IDS) {
      const r = fake(id, (config, x, run) => 10 + config.length + x + run);
      saveResults(dir, r);
      const files = await renderFigure(r, dir);
      const png = fs.readFileSync(files.png);
      assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `figure ${id}: a PNG`);
      assert.ok(png.length > 10_000, `figure ${id}: the PNG has content (${png.length} bytes)`);
      const svg = fs.readFileSync(files.svg, 'utf8');
      assert.match(svg, /^<svg/);
      const measured = [...new Set(r.points.map((p) => p.config))];
      assert.ok(measured.length >= 2);
      for (const config of measured) assert.ok(svg.includes(`>${config}<`), `figure ${id}: the SVG names ${config}`);
      assert.ok(svg.includes(`Figure ${id}:`), `figure ${id}: titled`);
    }
    const summary = fs.readFileSync(writeSummary(dir), 'utf8');
    for (const id of FIGURE_IDS) assert.ok(summary.includes(`## Figure ${id}:`));
    assert.ok(summary.includes('Profile: quick, 2 runs a point'), 'each figure says how it was measured (a committed set may mix profiles)');
    assert.ok(summary.includes('| WAN link | 1 Gbit/s'), 'the scaling table beside the paper\'s values');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

reproduce('a point is the mean and sample standard deviation of its runs; a failed run is left out', () => {
  const r = fake(9, (_c, _x, run) => (run === 0 ? 40 : 60));
  r.runs.push({ ...r.runs[0], run: 2, values: {}, error: 'the lab failed' });
  const s = summarize(r).find((p) => p.key === r.runs[0].key)!;
  assert.is(s.n, 2);
  assert.is(s.errors, 1);
  assert.is(s.mean.mbit, 50);
  assert.ok(Math.abs(s.std.mbit - Math.SQRT2 * 10) < 1e-9);
  const lat = summarize(fake(8, (_c, _x, run) => 1 + run)).find((p) => p.n > 0)!;
  assert.equal(lat.mean.quantilesMs as unknown as number[], QUANTILES.map((q) => 1.5 * (1 + 3 * q)));
});

reproduce('an interrupted figure resumes only in a reproduction of the same profile', () => {
  const dir = tmp();
  try {
    const r = fake(6, () => 0);
    saveResults(dir, r);
    assert.is(loadResults(dir, 6, profile)?.runs.length, r.runs.length);
    assert.is(loadResults(dir, 6, { ...profile, runs: 3 }), undefined, 'another number of runs starts again');
    assert.is(loadResults(dir, 6, PROFILES.full), undefined, 'the full profile does not take up a quick one');
    assert.is(loadResults(dir, 7, profile), undefined);
    fs.writeFileSync(path.join(dir, 'figure-7.json'), '{"version": 1, "profile"');
    assert.is(loadResults(dir, 7, profile), undefined, 'a file cut short is not taken up');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

reproduce("the claims' checks: figure 6 holds when network-sync loses nothing and local-sync something, and not otherwise", () => {
  const holds = fake(6, (config, x) => (config === 'local-sync' && x === 0.01 ? 7 : 0));
  assert.is(verdict(holds).holds, true);
  const netLoses = fake(6, (config) => (config === 'network-sync' || config === 'local-sync' ? 1 : 0));
  assert.is(verdict(netLoses).holds, false);
  const nothingLost = fake(6, () => 0);
  assert.is(verdict(nothingLost).holds, false, 'local-sync losing nothing shows nothing');
  const fec = fake(9, (config, x) => (x === 0 ? 90 : ['network-sync', 'local-sync+FEC', 'remote-sync+FEC'].includes(config) ? 60 : 3));
  assert.is(verdict(fec).holds, true);
  assert.is(verdict(fake(9, () => 50)).holds, false);
});

reproduce.run();
