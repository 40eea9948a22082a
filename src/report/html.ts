import type { Stats } from '../lottery/summary.js';
import { compareCostSeries, costSeries, curveName, pctLabel, seriesStyle, stabilityLevels, type CompareGroup, type CostSeriesData } from './figures.js';
import { METRICS, STABILITY_BRANCH, hasCosts, type Metric, type RunData, type StageCost, type StageStatus } from './run-data.js';

/**
 * The HTML page: inline SVG figures, plain tables, inline CSS; no scripts, no
 * fonts, no links to anything outside the file. Every number in a table cell
 * carries its exact value and, for summary numbers, its path in summary.json
 * (data-path="aggregate.3.main.earlyStopIteration.mean"), so that tools (and the
 * tests) can read the numbers back.
 */

export const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const METRIC_TITLE: Record<Metric, string> = {
  earlyStopIteration: 'Early-stop iteration',
  earlyStopTestAccuracy: 'Test acc. at early stop',
  finalTestAccuracy: 'Final test acc.',
  earlyStopValLoss: 'Val. loss at early stop',
};

function fmt(metric: Metric | 'density' | 'level' | 'seed' | 'n', v: number): string {
  if (!Number.isFinite(v)) return String(v);
  switch (metric) {
    case 'density': return `${(100 * v).toFixed(2)}%`;
    case 'earlyStopTestAccuracy': case 'finalTestAccuracy': return `${(100 * v).toFixed(2)}%`;
    case 'earlyStopValLoss': return v.toFixed(4);
    default: return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
}

/** A numeric cell; `path` names the number in summary.json. */
function num(metric: Parameters<typeof fmt>[0], v: number, path?: string, cls = ''): string {
  return `<td class="num${cls ? ` ${cls}` : ''}"${path ? ` data-path="${esc(path)}"` : ''} data-value="${esc(String(v))}">${esc(fmt(metric, v))}</td>`;
}

function stageLabel(run: RunData, stage: string): string {
  return seriesStyle(run, stage).label;
}

/** FLOPs with an SI prefix and three significant digits: '1.23 G'. */
export function fmtFlops(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const k = Math.max(0, Math.min(6, Math.floor(Math.log10(Math.max(Math.abs(v), 1)) / 3)));
  return `${(v / 10 ** (3 * k)).toPrecision(3)}${k ? ` ${' kMGTPE'[k]}` : ''}`;
}

/**
 * The cost columns of a finished stage in the per-level table (runs that record costs only):
 * training seconds, training FLOPs as computed, and the early-bird draw of a searched stage.
 * Cells carry data-field ('seconds', 'flops', 'earlyBirdDrawnAt') and the exact value; the FLOPs
 * cell also data-dense, the dense-equivalent FLOPs.
 */
function costCells(c: StageCost | undefined, earlyBird: boolean): string {
  const cell = (field: string, v: number | null, text: string, title?: string) => `<td class="num" data-field="${field}"${v === null ? '' : ` data-value="${esc(String(v))}"`}${title ? ` title="${esc(title)}"` : ''}>${esc(text)}</td>`;
  if (!c) return `<td></td><td></td>${earlyBird ? '<td></td>' : ''}`;
  const t = c.sparseTraining;
  const seconds = cell('seconds', c.seconds, Number.isFinite(c.seconds) ? c.seconds.toFixed(1) : '', t ? `${t.method}: ${t.updates} mask updates, ${t.regrown} connections regrown, ${t.updateSeconds.toFixed(2)} s of updates` : undefined);
  const flops = c.flops
    ? cell('flops', c.flops.actual, fmtFlops(c.flops.actual), `dense-equivalent ${fmtFlops(c.flops.dense)}${c.flops.dense > 0 ? `; ${(100 * c.flops.actual / c.flops.dense).toFixed(1)}% of it` : ''}`)
      .replace('<td ', `<td data-dense="${esc(String(c.flops.dense))}" `)
    : '<td></td>';
  const eb = !earlyBird ? '' : c.earlyBird ? cell('earlyBirdDrawnAt', c.earlyBird.drawnAt, c.earlyBird.drawnAt === null ? 'not drawn' : String(c.earlyBird.drawnAt), `ε = ${c.earlyBird.epsilon}, a draw every ${c.earlyBird.every} iterations`) : '<td></td>';
  return `${seconds}${flops}${eb}`;
}

export function replicateTable(run: RunData): string {
  // Runs of older versions record no costs: their table is as it was.
  const costs = hasCosts(run);
  const earlyBird = run.costs.some((c) => c.earlyBird !== null);
  const costOf = new Map(run.costs.map((c) => [`${c.replicate}/${c.level}/${c.stage}`, c]));
  const costHead = costs ? `<th>Training time (s)</th><th>Training FLOPs</th>${earlyBird ? '<th>Early-bird ticket drawn at (iteration)</th>' : ''}` : '';
  const costCols = costs ? 2 + (earlyBird ? 1 : 0) : 0;
  const head = `<tr><th>Level</th><th>Replicate (seed)</th><th>Network</th><th>Weights remaining</th>${METRICS.map((m) => `<th>${METRIC_TITLE[m]}</th>`).join('')}${costHead}</tr>`;
  const rows: string[] = [];
  for (let k = 0; k <= run.levels; k++) {
    for (const [ri, rep] of run.summary.replicates.entries()) {
      const li = rep.levels.findIndex((l) => l.level === k);
      const stagesHere = run.stages.filter((s) => s.replicate === rep.replicate && s.level === k);
      for (const st of stagesHere) {
        const levelPath = li >= 0 && st.stage === run.main && st.state === 'done' ? ` data-path="replicates.${ri}.levels.${li}.level"` : '';
        const seedPath = li >= 0 && st.stage === run.main && st.state === 'done' ? ` data-path="replicates.${ri}.seed" data-value="${rep.seed}"` : '';
        const first = `<td class="num"${levelPath} data-value="${k}">${k}</td><td class="num"${seedPath}>${rep.replicate} (${rep.seed})</td><td>${esc(stageLabel(run, st.stage))}</td>`;
        const l = li >= 0 ? rep.levels[li] : null;
        const r = l ? (st.stage === run.main ? l : l.branches[st.stage]) : undefined;
        if (r && st.state === 'done') {
          const base = st.stage === run.main ? `replicates.${ri}.levels.${li}` : `replicates.${ri}.levels.${li}.branches.${st.stage}`;
          const extra = costs ? costCells(costOf.get(`${rep.replicate}/${k}/${st.stage}`), earlyBird) : '';
          rows.push(`<tr data-level="${k}" data-stage="${st.stage}" data-state="done">${first}${num('density', r.density, `${base}.density`)}${METRICS.map((m) => num(m, r[m], `${base}.${m}`)).join('')}${extra}</tr>`);
        } else {
          const what = stateLabel(st);
          const dens = st.density !== null ? `<td class="num">${esc(fmt('density', st.density))}</td>` : '<td></td>';
          rows.push(`<tr class="partial" data-level="${k}" data-stage="${st.stage}" data-state="${st.state}">${first}${dens}<td colspan="${METRICS.length + costCols}" class="state">${what}</td></tr>`);
        }
      }
    }
  }
  return `<table class="numbers" id="table-replicates"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table>`;
}

export function aggregateTable(run: RunData): string {
  const sub = METRICS.map(() => '<th>mean</th><th>min</th><th>max</th>').join('');
  const head = `<tr><th rowspan="2">Level</th><th colspan="3">Weights remaining</th><th rowspan="2">Network</th><th rowspan="2">n</th>${METRICS.map((m) => `<th colspan="3">${METRIC_TITLE[m]}</th>`).join('')}</tr>`
    + `<tr><th>mean</th><th>min</th><th>max</th>${sub}</tr>`;
  const rows: string[] = [];
  for (const [ai, a] of run.summary.aggregate.entries()) {
    const entries: Array<[string, Record<Metric, Stats>, string]> = [[run.main, a.main, `aggregate.${ai}.main`]];
    for (const b of run.branches) if (a.branches[b]) entries.push([b, a.branches[b]!, `aggregate.${ai}.branches.${b}`]);
    for (const [i, [stage, s, base]] of entries.entries()) {
      const lead = i === 0
        ? `<td class="num" rowspan="${entries.length}" data-path="aggregate.${ai}.level" data-value="${a.level}">${a.level}</td>${(['mean', 'min', 'max'] as const).map((f) => num('density', a.density[f], `aggregate.${ai}.density.${f}`)).join('').replace(/<td /g, `<td rowspan="${entries.length}" `)}`
        : '';
      const cells = METRICS.map((m) => (['mean', 'min', 'max'] as const).map((f) => num(m, s[m][f], `${base}.${m}.${f}`)).join('')).join('');
      rows.push(`<tr data-level="${a.level}" data-stage="${stage}">${lead}<td>${esc(stageLabel(run, stage))}</td>${num('n', s.earlyStopIteration.n, `${base}.earlyStopIteration.n`)}${cells}</tr>`);
    }
  }
  return `<table class="numbers" id="table-aggregate"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table>`;
}

export function curveTable(run: RunData): string {
  const curves = run.curves;
  if (curves.length === 0) return '<p>No curves yet.</p>';
  const iterations = [...new Set(curves.flatMap((c) => c.points.map((p) => p.iteration)))].sort((a, b) => a - b);
  const head = `<tr><th>Iteration</th>${curves.map((c) => `<th${c.partial ? ' class="partial"' : ''}>level ${c.level}<br>${esc(curveName(c, curves))}<br><small>n=${c.replicates.length}</small></th>`).join('')}</tr>`;
  const rows = iterations.map((it) => `<tr><td class="num">${it}</td>${curves.map((c) => {
    const p = c.points.find((q) => q.iteration === it);
    return p ? `<td class="num" data-level="${c.level}" data-iteration="${it}" data-value="${p.mean}" title="min ${(100 * p.min).toFixed(2)}%, max ${(100 * p.max).toFixed(2)}%, n=${p.n}">${(100 * p.mean).toFixed(2)}%</td>` : '<td></td>';
  }).join('')}</tr>`);
  return `<table class="numbers" id="table-curves"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table>`;
}

export function maskTable(run: RunData): string {
  const m = run.mask;
  if (!m) return '';
  const head = '<tr><th>Level</th><th>All weights remaining</th><th>Layer weights remaining</th><th>Pixels with no connection left</th><th>Connections per pixel: min</th><th>mean</th><th>max</th><th>State</th></tr>';
  const rows = m.levels.map((l) => {
    const zero = l.counts.filter((c) => c === 0).length;
    const mean = l.counts.reduce((a, b) => a + b, 0) / l.counts.length;
    return `<tr data-level="${l.level}"${l.finished ? '' : ' class="partial"'}><td class="num">${l.level}</td>${num('density', l.density)}${num('density', l.layerDensity)}<td class="num" data-value="${zero}">${zero} of ${l.counts.length}</td>${num('n', Math.min(...l.counts))}${num('n', Number(mean.toFixed(1)))}${num('n', Math.max(...l.counts))}<td>${l.finished ? 'finished' : 'in progress'}</td></tr>`;
  });
  return `<table class="numbers" id="table-mask"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table>`;
}

/**
 * The instability analyses per level: weights remaining, the error barrier's mean, min and
 * max over the finished replicates, and the mean test error at each α of the path. Cells
 * carry data-level, data-field ('errorBarrier.mean', 'testError@0.5') and the exact value.
 */
export function stabilityTable(run: RunData): string {
  const levels = stabilityLevels(run);
  if (levels.length === 0) return '';
  const alphas = [...new Map(levels.flatMap((l) => l.path.map((p) => [p.alpha.toFixed(6), p.alpha] as const))).values()].sort((a, b) => a - b);
  const pp = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(2)}` : String(v));
  const cell = (level: number, field: string, v: number, text: string) => `<td class="num" data-level="${level}" data-field="${esc(field)}" data-value="${esc(String(v))}">${esc(text)}</td>`;
  const head = `<tr><th rowspan="2">Level</th><th rowspan="2">Weights remaining</th><th rowspan="2">n</th><th colspan="3">Error barrier (points)</th><th colspan="${alphas.length}">Test error (%) at α</th></tr>`
    + `<tr><th>mean</th><th>min</th><th>max</th>${alphas.map((a) => `<th>${esc(String(Number(a.toFixed(4))))}</th>`).join('')}</tr>`;
  const rows = levels.map((l) => `<tr data-level="${l.level}"><td class="num">${l.level}</td>${cell(l.level, 'density', l.density, `${(100 * l.density).toFixed(2)}%`)}${cell(l.level, 'n', l.errorBarrier.n, String(l.errorBarrier.n))}`
    + (['mean', 'min', 'max'] as const).map((f) => cell(l.level, `errorBarrier.${f}`, l.errorBarrier[f], pp(l.errorBarrier[f]))).join('')
    + alphas.map((a) => {
      const p = l.path.find((q) => Math.abs(q.alpha - a) < 5e-7);
      return p ? cell(l.level, `testError@${Number(a.toFixed(6))}`, p.testError.mean, pp(p.testError.mean)) : '<td></td>';
    }).join('') + '</tr>');
  return `<table class="numbers" id="table-stability"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table>`;
}

/**
 * The points of the cost figures: per series, each level's (across runs: each density's)
 * cost and accuracy, against seconds and against FLOPs. Cells carry data-series,
 * data-measure ('seconds', 'flops'), data-level, data-field and the exact value.
 */
export function costTable(series: CostSeriesData[], id = 'table-cost'): string {
  if (series.length === 0) return '';
  const head = '<tr><th rowspan="2">Series</th><th rowspan="2">Cost</th><th rowspan="2">Level</th><th rowspan="2">Weights remaining</th><th rowspan="2">n</th><th colspan="3">Cost</th><th colspan="3">Test acc. at early stop</th></tr>'
    + '<tr><th>mean</th><th>min</th><th>max</th><th>mean</th><th>min</th><th>max</th></tr>';
  const rows: string[] = [];
  for (const s of series) {
    for (const measure of ['seconds', 'flops'] as const) {
      for (const e of s[measure]) {
        const cell = (field: string, v: number, text: string) => `<td class="num" data-field="${field}" data-value="${esc(String(v))}">${esc(text)}</td>`;
        const cost = (v: number) => (measure === 'seconds' ? v.toFixed(1) : fmtFlops(v));
        rows.push(`<tr data-series="${esc(s.name)}" data-key="${esc(s.key)}" data-measure="${measure}" data-level="${e.level}"><td>${esc(s.name)}${s.cumulative && !s.name.endsWith('(cumulative)') ? ' <small>(cumulative)</small>' : ''}</td><td>${measure === 'seconds' ? 'seconds' : 'FLOPs'}</td>`
          + `<td class="num">${e.level}</td>${cell('density', e.density, fmt('density', e.density))}${cell('n', e.cost.n, String(e.cost.n))}`
          + (['mean', 'min', 'max'] as const).map((f) => cell(`cost.${f}`, e.cost[f], cost(e.cost[f]))).join('')
          + (['mean', 'min', 'max'] as const).map((f) => cell(`accuracy.${f}`, e.accuracy[f], fmt('earlyStopTestAccuracy', e.accuracy[f]))).join('') + '</tr>');
      }
    }
  }
  return `<table class="numbers" id="${esc(id)}"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table>`;
}

function flatten(obj: unknown, prefix = ''): Array<[string, string]> {
  if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
    return Object.entries(obj as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
  }
  return [[prefix, Array.isArray(obj) ? (obj.length ? obj.join(', ') : '[]') : String(obj)]];
}

export function hparamsTables(run: RunData): string {
  const id = flatten(run.hparams.identity);
  const table = (rows: Array<[string, string]>, cls: string) => `<table class="hparams ${cls}"><tbody>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td><code>${esc(v)}</code></td></tr>`).join('')}</tbody></table>`;
  // The identity leaves out lth's global defaults, not the model's: a VGG's own momentum is in it, a constant schedule is not.
  return `<div class="cols"><div><h3>Identity (names the run; what differs from lth's global defaults, not the model's)</h3>${id.length ? table(id, 'identity') : '<p>all defaults</p>'}</div>`
    + `<div><h3>Resolved (everything the run used)</h3>${table(flatten(run.hparams.resolved), 'resolved')}</div></div>`;
}

/** How the report names a stage's state ('failed: <why>' for one that failed for good). */
function stateLabel(s: StageStatus): string {
  if (s.state === 'failed') return `failed: ${s.message ?? ''}`;
  if (s.state === 'damaged') return "damaged since it finished: left out ('lth verify --repair' redoes it)";
  return s.state === 'in_progress' ? 'in progress' : s.state === 'done' ? 'finished, not in summary' : 'not started';
}

/** "level 4: in progress" lines for every level that is not finished everywhere. */
export function progressList(run: RunData): string {
  const lines: string[] = [];
  for (let k = 0; k <= run.levels; k++) {
    const here = run.stages.filter((s) => s.level === k);
    if (here.every((s) => s.state === 'done')) continue;
    const state: StageStatus['state'] = here.some((s) => s.state === 'failed') ? 'failed' : here.some((s) => s.state !== 'pending') ? 'in_progress' : 'pending';
    const detail = here.filter((s) => s.state !== 'done').map((s: StageStatus) => `replicate ${s.replicate} ${stageLabel(run, s.stage)}: ${stateLabel(s)}`);
    lines.push(`<li data-level="${k}" data-state="${state}"><strong>level ${k}: ${state === 'failed' ? 'failed' : state === 'in_progress' ? 'in progress' : 'not started'}</strong> <span class="detail">(${esc(detail.join('; '))})</span></li>`);
  }
  return lines.length ? `<ul class="progress">${lines.join('')}</ul>` : '';
}

export function compareSection(groups: CompareGroup[]): string {
  const runs = groups.flatMap((g) => g.runs.map((r) => `<tr><td>${esc(g.label)}</td><td><code>${esc(r.dir)}</code></td><td><code>${esc(JSON.stringify(r.hparams.identity))}</code></td><td>${r.summary.complete ? 'complete' : 'in progress'}</td></tr>`));
  const pts = groups.flatMap((g) => g.points.map((p) => `<tr data-series="${esc(g.label)}"><td>${esc(g.label)}</td>${num('density', p.density)}${num('n', p.earlyStopIteration.n)}`
    + `${(['mean', 'min', 'max'] as const).map((f) => num('earlyStopIteration', p.earlyStopIteration[f])).join('')}`
    + `${(['mean', 'min', 'max'] as const).map((f) => num('earlyStopTestAccuracy', p.earlyStopTestAccuracy[f])).join('')}</tr>`));
  return `<table class="numbers" id="table-compare-runs"><thead><tr><th>Label</th><th>Run directory</th><th>Identity</th><th>State</th></tr></thead><tbody>${runs.join('')}</tbody></table>`
    + `<table class="numbers" id="table-compare"><thead><tr><th rowspan="2">Series</th><th rowspan="2">Weights remaining</th><th rowspan="2">n</th><th colspan="3">Early-stop iteration</th><th colspan="3">Test acc. at early stop</th></tr><tr><th>mean</th><th>min</th><th>max</th><th>mean</th><th>min</th><th>max</th></tr></thead><tbody>${pts.join('\n')}</tbody></table>`;
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;margin:2rem auto;max-width:1180px;padding:0 1rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1rem}
.meta{color:#444;margin-top:0}.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;font-size:.85rem;font-weight:600}
.badge.complete{background:#e3f2e1;color:#22612a}.badge.partial{background:#fff1d6;color:#8a5a00}
figure{margin:1.2rem 0;padding:.6rem;border:1px solid #eee;border-radius:4px;overflow-x:auto}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#333;font-size:.92rem;margin-top:.4rem}figcaption .png{color:#666;font-size:.85rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{border:1px solid #ddd;padding:.2rem .45rem}th{background:#f6f6f6;font-weight:600}
table.numbers td{white-space:nowrap}.hparams th{text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.partial td,th.partial{background:#fff8e6;color:#7a5400}td.state{font-style:italic}
.scroll{overflow-x:auto}.cols{display:flex;gap:2rem;flex-wrap:wrap}.cols>div{flex:1 1 380px}code{font-size:.85rem}ul.progress li{margin:.15rem 0}.detail{color:#666;font-size:.85rem}
details{margin:.8rem 0}summary{cursor:pointer;font-weight:600}
`;

export interface PageFigure { id: string; heading: string; caption: string; svg: string; png: string }

export function page(run: RunData, figures: PageFigure[], groups: CompareGroup[] | null): string {
  const t = run.hparams.resolved.training;
  const done = run.stages.filter((s) => s.state === 'done').length, failed = run.stages.filter((s) => s.state === 'failed').length;
  const status = run.summary.complete
    ? '<span class="badge complete" data-status="complete">complete</span>'
    : failed
      ? `<span class="badge partial" data-status="failed">${done} of ${run.stages.length} stages finished, ${failed} failed (see Progress)</span>`
      : `<span class="badge partial" data-status="partial">in progress: ${done} of ${run.stages.length} stages finished</span>`;
  const figs = figures.map((f) => `<section id="section-${f.id}"><h2>${esc(f.heading)}</h2><figure id="fig-${f.id}" data-figure="${f.id}">${f.svg}<figcaption>${esc(f.caption)} <span class="png">PNG: <code>${esc(f.png)}</code></span></figcaption></figure></section>`);
  const levelsLine = run.summary.aggregate.length ? `weights remaining: ${run.summary.aggregate.map((a) => pctLabel(a.density.mean)).join(' → ')}` : 'no level finished yet';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lottery ticket report: ${esc(run.run)}</title><style>${CSS}</style></head>
<body>
<h1>Lottery ticket report <small><code>${esc(run.run)}</code></small></h1>
<p class="meta">${esc(`${t.model} on ${t.dataset}, ${t.steps} per level, ${run.levels} level(s)${run.hparams.resolved.oneShot ? ' (one-shot)' : ''}, ${run.replicates} replicate(s), controls: ${run.branches.length ? run.branches.join(', ') : 'none'}`)} ${status}<br>${esc(levelsLine)}<br><small>${esc(run.dir)}</small></p>
${run.summary.complete ? '' : `<section id="progress"><h2>Progress</h2><p>Levels and stages without <code>done.json</code> are unfinished: they are absent from the early-stop figures and tables; a level still training is drawn from its partial metrics.csv, dashed and marked "(partial)".</p>${progressList(run)}</section>`}
${figs.join('\n')}
<section id="numbers"><h2>Numbers</h2>
<h3>Per level and replicate</h3><div class="scroll">${replicateTable(run)}</div>
<h3>Across replicates</h3><div class="scroll">${aggregateTable(run)}</div>
<details><summary>Test accuracy curves (mean over replicates, every level)</summary><div class="scroll">${curveTable(run)}</div></details>
${run.stability.length && stabilityLevels(run).length ? `<h3>Instability (${esc(seriesStyle(run, STABILITY_BRANCH).label)}), mean over the finished replicates</h3><div class="scroll">${stabilityTable(run)}</div>` : ''}
${hasCosts(run) ? `<details><summary>Accuracy against training cost (the cost figures' points)</summary><div class="scroll">${costTable(costSeries(run))}</div></details>\n` : ''}${run.mask ? `<h3>Mask of ${esc(run.mask.layer)} (replicate 0)</h3><div class="scroll">${maskTable(run)}</div>` : ''}
</section>
${groups ? `<section id="compare"><h2>Compared runs</h2><div class="scroll">${compareSection(groups)}</div>${groups.some((g) => g.runs.some(hasCosts)) ? `<details><summary>Compared runs: accuracy against training cost</summary><div class="scroll">${costTable(compareCostSeries(groups), 'table-compare-cost')}</div></details>` : ''}</section>` : ''}
<section id="hparams"><h2>Hyperparameters</h2>${hparamsTables(run)}</section>
<p class="meta"><small>Written by <code>lth report</code>. Self-contained: figures are inline SVG, no scripts, nothing loaded from outside this file.</small></p>
</body></html>
`;
}
