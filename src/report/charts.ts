import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';

/**
 * Figures are Vega specifications rendered headlessly to SVG (no DOM, no browser)
 * and rasterised to PNG by resvg. Everything here is data in, spec out: the
 * report decides what to draw, this file how it looks.
 */

/** The paper's x ticks (percent of weights remaining): the LeNet density ladder. */
export const PAPER_TICKS = [100, 51.3, 21.1, 7.0, 3.6, 1.9];

/** Tableau-10: distinguishable in colour and in greyscale print. */
export const PALETTE = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#eeca3b', '#9d755d', '#ff9da6', '#bab0ac'];

/**
 * Colours of the branches (the ticket and its controls): Tableau-10 and two darker ones,
 * so that twelve branches get twelve colours; dashes tell them apart beyond that.
 */
export const BRANCH_COLORS = [...PALETTE, '#2b2b2b', '#1b3a6b'];

/** Dash patterns of the branches: with 12 colours and 7 dashes, the first 84 branches all differ. */
export const BRANCH_DASHES: number[][] = [[], [7, 3], [2, 3], [9, 3, 2, 3], [1, 2], [12, 4], [5, 2, 1, 2, 1, 2]];

const CONFIG: vega.Config = {
  background: 'white',
  axis: {
    labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelColor: '#222', titleColor: '#111',
    domainColor: '#444', tickColor: '#444', gridColor: '#e8e8e8', titlePadding: 8,
  },
  legend: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'bold', labelColor: '#222', symbolStrokeWidth: 2.5, labelLimit: 260 },
  title: { fontSize: 13, fontWeight: 'bold', anchor: 'start', offset: 10, subtitleFontSize: 11, subtitleColor: '#555', subtitlePadding: 4 },
};

const WIDTH = 430, HEIGHT = 290;

export interface Series {
  name: string;
  color: string;
  /** SVG dash array; empty for a solid line. */
  dash: number[];
  points: Array<{ x: number; mean: number; min: number; max: number; n: number }>;
}

function titleOf(title: string, subtitle?: string[]): vega.Title {
  return subtitle && subtitle.length ? { text: title, subtitle } : { text: title };
}

/** What every line chart shares: the schema, its size and look, and its title. */
function frame(title: string, subtitle?: string[]) {
  return { $schema: 'https://vega.github.io/schema/vega/v6.json', width: WIDTH, height: HEIGHT, padding: 8, config: CONFIG, title: titleOf(title, subtitle) };
}

/** Colour and dash scales that give each series (by name) its own style. */
function styleScales(series: ReadonlyArray<{ name: string; color: string; dash: number[] }>): vega.Scale[] {
  const domain = series.map((s) => s.name);
  return [
    { name: 'color', type: 'ordinal', domain, range: series.map((s) => s.color) },
    { name: 'dash', type: 'ordinal', domain, range: series.map((s) => s.dash) },
  ];
}

/** Ticks for a reversed log axis of percent remaining: the paper's where in range, else the run's own. */
export function percentTicks(lo: number, hi: number, own: number[]): number[] {
  const inRange = (t: number) => t >= lo * 0.999 && t <= hi * 1.001;
  const ticks = PAPER_TICKS.filter(inRange);
  if (ticks.length < 4) {
    for (const d of own.map((x) => Number(x.toFixed(1))).filter(inRange)) {
      if (ticks.every((t) => Math.abs(Math.log(t / d)) > 0.12)) ticks.push(d);
    }
  }
  return ticks.sort((a, b) => b - a);
}

/**
 * Mean with a min/max band per series against percent of weights remaining, on a
 * log axis reversed as in the paper (100 on the left).
 */
/**
 * A y scale's domain over the points' [min, max]: [0, 1] without points, and one unit
 * either side of a single value (every early stop at iteration 0, say), where the data's
 * own extent would be empty and Vega's axis would read NaN.
 */
function yDomain(values: ReadonlyArray<{ min: number; max: number }>): number[] | vega.ScaleData {
  const ys = values.flatMap((v) => [v.min, v.max]).filter(Number.isFinite);
  if (ys.length === 0) return [0, 1];
  const lo = Math.min(...ys), hi = Math.max(...ys);
  return lo === hi ? [lo - 1, hi + 1] : { data: 'points', fields: ['min', 'max'] };
}

export function densityChart(opts: { title: string; subtitle?: string[]; yTitle: string; yFormat: string; zero: boolean; series: Series[] }): vega.Spec {
  const values = opts.series.flatMap((s) => s.points.map((p) => ({ series: s.name, ...p })));
  const xs = values.map((v) => v.x);
  const lo = xs.length ? Math.min(...xs) : 10;
  const hi = 100;
  const ticks = percentTicks(lo, hi, xs);
  return {
    ...frame(opts.title, opts.subtitle),
    data: [{ name: 'points', values }],
    scales: [
      { name: 'x', type: 'log', domain: [hi * 1.06, lo / 1.12], range: 'width', nice: false, zero: false },
      { name: 'y', type: 'linear', domain: yDomain(values), range: 'height', nice: true, zero: opts.zero },
      ...styleScales(opts.series),
    ],
    axes: [
      {
        orient: 'bottom', scale: 'x', title: 'Percent of weights remaining', values: ticks,
        encode: { labels: { update: { text: { signal: "datum.value >= 99.95 ? '100' : format(datum.value, '.1f')" } } } },
      },
      { orient: 'left', scale: 'y', title: opts.yTitle, grid: true, format: opts.yFormat, tickCount: 6 },
    ],
    legends: [{ stroke: 'color', strokeDash: 'dash', symbolType: 'stroke', orient: 'right', symbolSize: 400 }],
    marks: [{
      type: 'group',
      from: { facet: { name: 'series', data: 'points', groupby: 'series' } },
      marks: [
        {
          type: 'area', from: { data: 'series' },
          encode: { enter: { x: { scale: 'x', field: 'x' }, y: { scale: 'y', field: 'min' }, y2: { scale: 'y', field: 'max' }, fill: { scale: 'color', field: 'series' }, fillOpacity: { value: 0.16 } } },
        },
        {
          type: 'line', from: { data: 'series' },
          encode: { enter: { x: { scale: 'x', field: 'x' }, y: { scale: 'y', field: 'mean' }, stroke: { scale: 'color', field: 'series' }, strokeDash: { scale: 'dash', field: 'series' }, strokeWidth: { value: 2 } } },
        },
        {
          type: 'symbol', from: { data: 'series' },
          encode: { enter: { x: { scale: 'x', field: 'x' }, y: { scale: 'y', field: 'mean' }, fill: { scale: 'color', field: 'series' }, size: { value: 28 } } },
        },
      ],
    }],
  };
}

export interface CurveSeries {
  name: string;
  color: string;
  dash: number[];
  points: Array<{ iteration: number; value: number }>;
}

/** Test accuracy against training iteration, one line per level (Figure 3 of the paper). */
export function curvesChart(opts: { title: string; subtitle?: string[]; yTitle: string; yMin: number | null; series: CurveSeries[] }): vega.Spec {
  const values = opts.series.flatMap((s) => s.points.map((p) => ({ series: s.name, ...p })));
  const yMax = values.length ? Math.max(...values.map((v) => v.value)) : 100;
  return {
    ...frame(opts.title, opts.subtitle),
    data: [{ name: 'curves', values }],
    scales: [
      { name: 'x', type: 'linear', domain: values.length ? { data: 'curves', field: 'iteration' } : [0, 1], range: 'width', nice: true, zero: true },
      { name: 'y', type: 'linear', domain: opts.yMin !== null ? [opts.yMin, Math.max(yMax, opts.yMin + 0.5)] : [0, 100], range: 'height', nice: true, zero: false },
      ...styleScales(opts.series),
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'Training iterations', format: '~s', tickCount: 6 },
      { orient: 'left', scale: 'y', title: opts.yTitle, grid: true, format: '.1f', tickCount: 6 },
    ],
    legends: [{ stroke: 'color', strokeDash: 'dash', symbolType: 'stroke', orient: 'right', title: 'Weights remaining', symbolSize: 400 }],
    marks: [{
      type: 'group',
      from: { facet: { name: 'curve', data: 'curves', groupby: 'series' } },
      // Sized like the plot so that clipping cuts lines at the axes (the y axis does not start at 0).
      encode: { enter: { width: { signal: 'width' }, height: { signal: 'height' } } },
      marks: [{
        type: 'line', from: { data: 'curve' }, clip: true,
        encode: { enter: { x: { scale: 'x', field: 'iteration' }, y: { scale: 'y', field: 'value' }, stroke: { scale: 'color', field: 'series' }, strokeDash: { scale: 'dash', field: 'series' }, strokeWidth: { value: 1.8 } } },
      }],
    }],
  };
}

export interface PathSeries {
  name: string;
  color: string;
  dash: number[];
  points: Array<{ alpha: number; value: number }>;
}

/**
 * A quantity along the straight line between two networks (alpha 0 to 1), one line with
 * its points per series: the test error between the two copies of a stability stage.
 */
export function pathChart(opts: { title: string; subtitle?: string[]; yTitle: string; legendTitle: string; series: PathSeries[] }): vega.Spec {
  const values = opts.series.flatMap((s) => s.points.map((p) => ({ series: s.name, ...p })));
  return {
    ...frame(opts.title, opts.subtitle),
    data: [{ name: 'path', values }],
    scales: [
      { name: 'x', type: 'linear', domain: [0, 1], range: 'width', nice: false, zero: true },
      { name: 'y', type: 'linear', domain: values.length ? { data: 'path', field: 'value' } : [0, 100], range: 'height', nice: true, zero: true },
      ...styleScales(opts.series),
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'Interpolation α (0: copy a, 1: copy b)', format: '.1f', values: [0, 0.2, 0.4, 0.6, 0.8, 1] },
      { orient: 'left', scale: 'y', title: opts.yTitle, grid: true, format: '.1f', tickCount: 6 },
    ],
    legends: [{ stroke: 'color', strokeDash: 'dash', symbolType: 'stroke', orient: 'right', title: opts.legendTitle, symbolSize: 400 }],
    marks: [{
      type: 'group',
      from: { facet: { name: 'line', data: 'path', groupby: 'series' } },
      marks: lineWithPoints('alpha', 'value', 18),
    }],
  };
}

export interface CostPoint {
  /** The point's cost: mean over replicates, with its min and max. */
  x: number;
  xMin: number;
  xMax: number;
  /** Accuracy (mean, min, max over the replicates). */
  mean: number;
  min: number;
  max: number;
  n: number;
  /** Where the point sits along its series' line (its level). */
  order: number;
}

export interface CostSeries {
  name: string;
  color: string;
  dash: number[];
  /** Vega symbol shape of its points (circle by default). */
  shape?: string;
  /**
   * Whether a line joins its points (default true): a ticket's cumulative cost grows level
   * by level; a control's own cost does not, and a line through its levels would zigzag.
   */
  line?: boolean;
  points: CostPoint[];
}

/**
 * Accuracy against a cost (seconds, FLOPs), one line per series through its points in
 * `order`, each point with min-max rules over replicates in both directions. With `log`
 * the x axis is logarithmic (points at cost 0 or below are left out).
 */
export function costChart(opts: { title: string; subtitle?: string[]; xTitle: string; xFormat: string; log: boolean; yTitle: string; series: CostSeries[] }): vega.Spec {
  const keep = (p: CostPoint) => Number.isFinite(p.x) && Number.isFinite(p.mean) && (!opts.log || (p.x > 0 && p.xMin > 0));
  const values = opts.series.flatMap((s) => s.points.filter(keep).map((p) => ({ series: s.name, line: s.line !== false, ...p })));
  return {
    ...frame(opts.title, opts.subtitle),
    data: [{ name: 'points', values }],
    scales: [
      opts.log
        ? { name: 'x', type: 'log', domain: values.length ? { data: 'points', fields: ['xMin', 'xMax'] } : [1, 10], range: 'width', nice: false, zero: false, padding: 14 }
        : { name: 'x', type: 'linear', domain: values.length ? { data: 'points', fields: ['xMin', 'xMax'] } : [0, 1], range: 'width', nice: true, zero: true },
      { name: 'y', type: 'linear', domain: yDomain(values), range: 'height', nice: true, zero: false, padding: 8 },
      ...styleScales(opts.series),
      { name: 'shape', type: 'ordinal', domain: opts.series.map((s) => s.name), range: opts.series.map((s) => s.shape ?? 'circle') },
    ],
    axes: [
      // A log axis labels every 1–9 multiple; drop the labels that would collide (40T50T).
      { orient: 'bottom', scale: 'x', title: opts.xTitle, format: opts.xFormat, tickCount: opts.log ? undefined : 6, labelOverlap: opts.log ? 'greedy' : undefined, grid: true },
      { orient: 'left', scale: 'y', title: opts.yTitle, grid: true, format: '.1f', tickCount: 6 },
    ],
    legends: [{ stroke: 'color', strokeDash: 'dash', shape: 'shape', symbolType: 'stroke', orient: 'right', symbolSize: 120 } as vega.Legend],
    marks: [{
      type: 'group',
      from: { facet: { name: 'series', data: 'points', groupby: 'series' } },
      marks: [
        {
          type: 'rule', from: { data: 'series' },
          encode: { enter: { x: { scale: 'x', field: 'x' }, y: { scale: 'y', field: 'min' }, y2: { scale: 'y', field: 'max' }, stroke: { scale: 'color', field: 'series' }, strokeOpacity: { value: 0.45 }, strokeWidth: { value: 1.5 } } },
        },
        {
          type: 'rule', from: { data: 'series' },
          encode: { enter: { x: { scale: 'x', field: 'xMin' }, x2: { scale: 'x', field: 'xMax' }, y: { scale: 'y', field: 'mean' }, stroke: { scale: 'color', field: 'series' }, strokeOpacity: { value: 0.45 }, strokeWidth: { value: 1.5 } } },
        },
        {
          type: 'line', from: { data: 'series' }, sort: { field: 'datum.order' },
          encode: { enter: { x: { scale: 'x', field: 'x' }, y: { scale: 'y', field: 'mean' }, defined: { field: 'line' }, stroke: { scale: 'color', field: 'series' }, strokeDash: { scale: 'dash', field: 'series' }, strokeWidth: { value: 1.8 } } },
        },
        {
          type: 'symbol', from: { data: 'series' },
          encode: { enter: { x: { scale: 'x', field: 'x' }, y: { scale: 'y', field: 'mean' }, fill: { scale: 'color', field: 'series' }, shape: { scale: 'shape', field: 'series' }, size: { value: 40 }, stroke: { value: 'white' }, strokeWidth: { value: 0.8 } } },
        },
      ],
    }],
  } as vega.Spec;
}

export interface DistanceSeries {
  name: string;
  color: string;
  dash: number[];
  points: Array<{ iteration: number; distance: number }>;
  /** Where the ticket was drawn (one per replicate that drew it), on the line. */
  draws: Array<{ iteration: number; distance: number }>;
}

/**
 * The early-bird search: mask distance between consecutive draws against iteration, one
 * line per series, each ε as a horizontal rule, the draws marked with a diamond.
 */
export function distanceChart(opts: { title: string; subtitle?: string[]; legendTitle: string; epsilons: number[]; series: DistanceSeries[] }): vega.Spec {
  const lines = opts.series.flatMap((s) => s.points.map((p) => ({ series: s.name, ...p })));
  const draws = opts.series.flatMap((s) => s.draws.map((p) => ({ series: s.name, ...p })));
  const rules = opts.epsilons.map((epsilon) => ({ epsilon, label: `ε = ${epsilon}` }));
  const yMax = Math.max(0.01, ...lines.map((v) => v.distance), ...opts.epsilons) * 1.05;
  return {
    ...frame(opts.title, opts.subtitle),
    data: [{ name: 'lines', values: lines }, { name: 'draws', values: draws }, { name: 'rules', values: rules }],
    scales: [
      { name: 'x', type: 'linear', domain: lines.length ? { data: 'lines', field: 'iteration' } : [0, 1], range: 'width', nice: true, zero: true },
      { name: 'y', type: 'linear', domain: [0, yMax], range: 'height', nice: true, zero: true },
      ...styleScales(opts.series),
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'Training iterations', format: '~s', tickCount: 6 },
      { orient: 'left', scale: 'y', title: 'Mask distance to the previous draw', grid: true, format: '.2f', tickCount: 6 },
    ],
    legends: [{ stroke: 'color', strokeDash: 'dash', symbolType: 'stroke', orient: 'right', title: opts.legendTitle, symbolSize: 400 }],
    marks: [
      {
        type: 'rule', from: { data: 'rules' },
        encode: { enter: { x: { value: 0 }, x2: { signal: 'width' }, y: { scale: 'y', field: 'epsilon' }, stroke: { value: '#555' }, strokeDash: { value: [4, 4] }, strokeWidth: { value: 1.2 } } },
      },
      {
        type: 'text', from: { data: 'rules' },
        encode: { enter: { x: { signal: 'width' }, dx: { value: -4 }, y: { scale: 'y', field: 'epsilon' }, dy: { value: -4 }, align: { value: 'right' }, baseline: { value: 'bottom' }, text: { field: 'label' }, fill: { value: '#444' }, fontSize: { value: 11 } } },
      },
      {
        type: 'group',
        from: { facet: { name: 'line', data: 'lines', groupby: 'series' } },
        marks: lineWithPoints('iteration', 'distance', 16),
      },
      {
        type: 'symbol', from: { data: 'draws' },
        encode: { enter: { x: { scale: 'x', field: 'iteration' }, y: { scale: 'y', field: 'distance' }, shape: { value: 'diamond' }, fill: { scale: 'color', field: 'series' }, stroke: { value: '#111' }, strokeWidth: { value: 1.2 }, size: { value: 110 } } },
      },
    ],
  };
}

export interface HeatmapPanel {
  title: string;
  width: number;
  height: number;
  /** Row-major, width * height values. */
  values: number[];
}

/**
 * A grid of small heatmaps sharing one colour scale (the first layer's mask per level).
 * The scale runs from 0 to `max` (viridis), or with `mid` diverging around it (blue below,
 * orange above); with `clamp`, values beyond `max` take its colour and the legend's top
 * label reads "≥ max".
 */
export function heatmapGrid(opts: { title: string; subtitle?: string[]; legendTitle: string; max: number; mid?: number; clamp?: boolean; panels: HeatmapPanel[] }): vega.Spec {
  const w = opts.panels[0]?.width ?? 1, h = opts.panels[0]?.height ?? 1;
  const cell = Math.max(2, Math.min(8, Math.floor(120 / Math.max(w, h))));
  const columns = Math.min(opts.panels.length, opts.panels.length <= 6 ? 6 : 7);
  const values = opts.panels.flatMap((p, i) => p.values.map((v, j) => ({ panel: i, title: p.title, x: j % p.width, y: Math.floor(j / p.width), v })));
  return {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    padding: 8, config: CONFIG, autosize: 'pad',
    title: titleOf(opts.title, opts.subtitle),
    data: [{ name: 'cells', values }],
    layout: { columns: Math.max(1, columns), padding: { row: 10, column: 10 }, bounds: 'full', align: 'all' },
    scales: [opts.mid !== undefined
      ? { name: 'color', type: 'linear', domain: [0, opts.max], domainMid: opts.mid, range: { scheme: 'blueorange' }, zero: true, nice: false, clamp: opts.clamp ?? false }
      : { name: 'color', type: 'linear', domain: [0, opts.max], range: { scheme: 'viridis' }, zero: true, nice: false, clamp: opts.clamp ?? false }],
    legends: [{
      fill: 'color', type: 'gradient', title: opts.legendTitle, orient: 'right', gradientLength: Math.max(80, Math.min(200, cell * h)), titleOrient: 'left', titleAnchor: 'middle',
      ...(opts.clamp ? { values: [0, opts.max / 4, opts.max / 2, (3 * opts.max) / 4, opts.max], encode: { labels: { update: { text: { signal: `datum.value >= ${opts.max} ? '≥ ' + format(datum.value, '~g') : format(datum.value, '~g')` } } } } } : {}),
    } as vega.Legend],
    marks: [{
      type: 'group',
      from: { facet: { name: 'panel', data: 'cells', groupby: ['panel', 'title'] } },
      sort: { field: 'datum.panel' },
      title: { text: { signal: 'parent.title' }, fontSize: 11, fontWeight: 'normal', anchor: 'middle', offset: 4 },
      encode: { update: { width: { value: cell * w }, height: { value: cell * h }, stroke: { value: '#999' }, strokeWidth: { value: 0.5 } } },
      marks: [{
        type: 'rect', from: { data: 'panel' },
        encode: { enter: { x: { signal: `datum.x * ${cell}` }, y: { signal: `datum.y * ${cell}` }, width: { value: cell }, height: { value: cell }, fill: { scale: 'color', field: 'v' } } },
      }],
    }],
  } as vega.Spec;
}

/** A Vega spec to an SVG document string, headless (no DOM, no network: data are inline). */
export async function renderSvg(spec: vega.Spec): Promise<string> {
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * SVG to PNG at 2x for print-like sharpness. Text uses the system's fonts (resvg
 * loads them itself; Debian's fonts-dejavu-core is the usual one).
 */
export function svgToPng(svg: string, scale = 2): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/**
 * resvg draws text with the system's fonts (any family will do: it falls back).
 * With none at all the PNGs lose their text; the HTML is unaffected.
 */
export function systemFontsMissing(): string | null {
  if (process.platform !== 'linux') return null;
  const dirs = ['/usr/share/fonts', '/usr/local/share/fonts', path.join(os.homedir(), '.fonts'), path.join(os.homedir(), '.local/share/fonts')];
  const hasFont = (dir: string, depth: number): boolean => {
    if (depth > 4 || !fs.existsSync(dir)) return false;
    return fs.readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? hasFont(path.join(dir, e.name), depth + 1) : /\.(ttf|otf|ttc)$/i.test(e.name)));
  };
  return dirs.some((d) => hasFont(d, 0)) ? null : 'no system fonts found (e.g. apt-get install fonts-dejavu-core): the PNG figures will have no text; report.html is unaffected';
}

/**
 * Makes an SVG's ids unique within a page: Vega names clip paths and gradients
 * clip1, gradient_0..., which collide once several figures sit in one HTML file.
 */
export function prefixIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_m, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_m, id: string) => `href="#${prefix}-${id}"`);
}

/** The marks of one series faceted as 'line': its line (colour and dash by series) and a dot at each point. */
function lineWithPoints(x: string, y: string, size: number): vega.Mark[] {
  return [
    {
      type: 'line', from: { data: 'line' },
      encode: { enter: { x: { scale: 'x', field: x }, y: { scale: 'y', field: y }, stroke: { scale: 'color', field: 'series' }, strokeDash: { scale: 'dash', field: 'series' }, strokeWidth: { value: 1.8 } } },
    },
    {
      type: 'symbol', from: { data: 'line' },
      encode: { enter: { x: { scale: 'x', field: x }, y: { scale: 'y', field: y }, fill: { scale: 'color', field: 'series' }, size: { value: size } } },
    },
  ];
}
