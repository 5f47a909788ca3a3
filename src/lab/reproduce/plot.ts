// A figure's results as a chart: a Vega-Lite specification per kind of figure, compiled and
// rendered to SVG by Vega (headless, no canvas) and to PNG by resvg.
import fs from 'node:fs';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { ALL_CONFIGS } from './configs';
import { QUANTILES } from './measure';
import type { FigureResults } from './results';

// One colour per configuration in every figure.
const PALETTE = ['#e15759', '#f28e2b', '#4e79a7', '#edc948', '#b07aa1', '#59a14f', '#76b7b2', '#9c755f'];
// The legend names the figure's configurations only, each in its colour of every figure.
function colorOf(r: FigureResults) {
  const names = r.configs.map((c) => c.name);
  return () => ({ field: 'config', type: 'nominal' as const, title: 'configuration', scale: { domain: names, range: names.map((n) => PALETTE[ALL_CONFIGS.indexOf(n)]) } });
}

function xLabel(r: FigureResults): string {
  return r.x.unit ? `${r.x.name} (${r.x.unit})` : r.x.name;
}

function xValue(r: FigureResults, x: number): number {
  return r.x.percent ? Number((x * 100).toPrecision(6)) : x;
}

export function figureSpec(r: FigureResults): TopLevelSpec {
  const rows = r.summary ?? [];
  const color = colorOf(r);
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title: { text: r.title, fontSize: 13 }, background: 'white', config: { font: 'DejaVu Sans' } };
  if (r.kind === 'disaster') {
    const values = rows.flatMap((p) => (['acked', 'lost'] as const).map((m) => {
      const mean = p.mean[m] ?? 0;
      const std = p.std[m] ?? 0;
      return { config: p.config, x: String(xValue(r, p.x)), measure: m === 'acked' ? 'messages acknowledged' : 'acknowledged, lost at the mirror', mean, lo: Math.max(0, mean - std), hi: mean + std, n: p.n };
    }));
    return {
      ...base,
      data: { values },
      facet: { column: { field: 'measure', type: 'nominal', title: null, sort: ['messages acknowledged', 'acknowledged, lost at the mirror'] } },
      spec: {
        width: 260, height: 240,
        layer: [
          { mark: 'bar', encoding: { x: { field: 'x', type: 'ordinal', title: xLabel(r) }, xOffset: { field: 'config' }, y: { field: 'mean', type: 'quantitative', title: 'messages (mean of runs)', scale: { type: 'symlog' }, axis: { values: [0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000] } }, color: color() } },
          { mark: { type: 'rule', color: 'black' }, encoding: { x: { field: 'x', type: 'ordinal' }, xOffset: { field: 'config' }, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        ],
      },
    } as TopLevelSpec;
  }
  if (r.kind === 'latency') {
    const values = rows.flatMap((p) => {
      const qs = (p.mean.quantilesMs as unknown as number[] | undefined) ?? [];
      return qs.map((ms, i) => ({ config: p.config, loss: `${xValue(r, p.x)}% loss`, q: QUANTILES[i], ms: Math.max(ms, 0.01) }));
    });
    return {
      ...base,
      data: { values },
      facet: { column: { field: 'loss', type: 'nominal', title: null, sort: rows.map((p) => `${xValue(r, p.x)}% loss`) } },
      spec: {
        width: 200, height: 220,
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'ms', type: 'quantitative', title: 'latency, primary to mirror (ms)', scale: { type: 'log' } },
          y: { field: 'q', type: 'quantitative', title: 'fraction of groups' },
          color: color(),
        },
      },
    } as TopLevelSpec;
  }
  const values = rows.map((p) => {
    const mean = p.mean.mbit ?? 0;
    const std = p.std.mbit ?? 0;
    return { config: p.config, x: xValue(r, p.x), mean, lo: Math.max(0, mean - std), hi: mean + std, n: p.n };
  });
  return {
    ...base,
    width: 420, height: 300,
    data: { values },
    layer: [
      { mark: { type: 'line', point: true }, encoding: { x: { field: 'x', type: 'quantitative', title: xLabel(r) }, y: { field: 'mean', type: 'quantitative', title: 'throughput (Mbit/s, mean of runs)' }, color: color() } },
      { mark: 'rule', encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color: color() } },
    ],
  } as TopLevelSpec;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string): Buffer {
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, fitTo: { mode: 'zoom', value: 2 }, background: 'white' }).render().asPng();
}

// figure-N.svg and figure-N.png in `dir`; returns their paths.
export async function renderFigure(r: FigureResults, dir: string): Promise<{ svg: string; png: string }> {
  const svg = await renderSvg(figureSpec(r));
  const files = { svg: path.join(dir, `figure-${r.figure}.svg`), png: path.join(dir, `figure-${r.figure}.png`) };
  fs.writeFileSync(files.svg, svg);
  fs.writeFileSync(files.png, svgToPng(svg));
  return files;
}
