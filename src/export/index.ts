import fs from 'node:fs';
import path from 'node:path';
import { LthError } from '../core/errors.js';
import { getDataset } from '../data/registry.js';
import { runOf } from '../lottery/verify.js';
import { getModel } from '../models/registry.js';
import { compaction } from '../nn/compact.js';
import type { Model } from '../nn/model.js';
import { writeFileAtomic } from '../store/atomic.js';
import { FILES, readDone, stageDir, verifyStage } from '../store/layout.js';
import { encodeSafetensors, loadSafetensors, type NamedTensor } from '../store/safetensors.js';
import { onnxModel } from './onnx.js';
import { torchStateDict } from './torch-pt.js';

export const EXPORT_FORMATS = ['onnx', 'safetensors', 'pt'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  readonly level: number;
  readonly replicate?: number;
  /** The stage's branch (default the ticket, 'main'). */
  readonly branch?: string;
  /** The stage's trained weights (default) or the weights it started from (the ticket as θ0 ⊙ mask). */
  readonly weights?: 'final' | 'init';
  /** Default: the one out's extension names (formatOfFile). */
  readonly format?: ExportFormat;
  /** The file to write; it must not exist. */
  readonly out: string;
  /**
   * A structurally pruned stage as the smaller dense network its mask leaves (removed
   * neurons and channels, and the next layer's inputs from them, cut out), so the file
   * loads into the architecture of those smaller widths.
   */
  readonly compact?: boolean;
}

export interface ExportResult {
  readonly out: string;
  readonly stage: string;
  readonly model: string;
  /** Fraction of prunable weights that are nonzero in the stage's mask. */
  readonly density: number;
  readonly bytes: number;
  /** With `compact`: the units (neurons, channels) each layer keeps, in layer order. */
  readonly widths?: readonly number[];
}

/** The file extensions that name a format. */
const EXTENSIONS: Readonly<Record<string, ExportFormat>> = { '.onnx': 'onnx', '.safetensors': 'safetensors', '.pt': 'pt', '.pth': 'pt' };

/** The format a file's extension names, if any. */
export function formatOfFile(file: string): ExportFormat | undefined {
  return EXTENSIONS[path.extname(file).toLowerCase()];
}

/**
 * Writes one finished stage of a lottery run as a standalone model: its weights (pruned
 * ones exactly zero) as ONNX (the forward pass in evaluation mode, runnable by
 * onnxruntime), safetensors or a PyTorch state dict (torch.load), every tensor with its
 * shape and its PyTorch parameter name. The stage's files are checked against their
 * checksums first.
 */
export function exportStage(runDir: string, o: ExportOptions): ExportResult {
  const h = runOf(runDir);
  const replicate = o.replicate ?? 0, branch = o.branch ?? 'main', which = o.weights ?? 'final';
  const format = o.format ?? formatOfFile(o.out);
  if (format === undefined) throw new LthError(`export: give --format (${EXPORT_FORMATS.join(', ')}), or an --out ending in ${Object.keys(EXTENSIONS).join(', ')}`);
  if (!EXPORT_FORMATS.includes(format)) throw new LthError(`export: --format must be one of ${EXPORT_FORMATS.join(', ')}, got '${format}'`);
  const named = formatOfFile(o.out);
  if (named !== undefined && named !== format) throw new LthError(`export: --out ${o.out} ends in ${path.extname(o.out)} (format ${named}), but --format is ${format}; give an --out ending in ${Object.entries(EXTENSIONS).filter(([, f]) => f === format).map(([e]) => e).join(' or ')}, or another --format`);
  if (!Number.isInteger(o.level) || o.level < 0 || o.level > h.levels) throw new LthError(`export: --level must be an integer in [0, ${h.levels}] for this run, got ${o.level}`);
  if (!Number.isInteger(replicate) || replicate < 0 || replicate >= h.replicates) throw new LthError(`export: --replicate must be an integer in [0, ${h.replicates - 1}] for this run, got ${replicate}`);
  if (branch !== 'main' && !h.branches.includes(branch)) throw new LthError(`export: this run has no branch '${branch}' (it has main${h.branches.length ? `, ${h.branches.join(', ')}` : ''})`);
  if (o.level === 0 && branch !== 'main') throw new LthError(`export: level 0 is the dense network, branch main only`);
  if (fs.existsSync(o.out)) throw new LthError(`export: ${o.out} exists; choose another --out or remove it`);
  const dir = stageDir(runDir, replicate, o.level, branch);
  const done = readDone(dir);
  if (!done) throw new LthError(`export: stage ${path.relative(runDir, dir)} of ${runDir} is not finished`);
  const problems = verifyStage(dir, done);
  if (problems.length) throw new LthError(`export: ${problems.join('; ')}; 'lth verify ${runDir} --repair' redoes it`);
  let tensors = loadSafetensors(path.join(dir, which === 'final' ? FILES.final : FILES.init));
  let model = modelFor(h.training.model, h.training.dataset, tensors);
  let widths: number[] | undefined;
  if (o.compact) {
    const mask = loadSafetensors(path.join(dir, FILES.mask));
    const c = compaction(model, new Map([...mask].map(([n, t]) => [n, t.data])));
    if (!c) {
      throw new LthError(`export: --compact: the mask of ${stageName(replicate, o.level, branch)} removes no whole neuron or channel `
        + '(structured strategies such as neuron_l1 and channel_l1 do); export it without --compact');
    }
    const shapes = new Map(c.model.namedTensors().map(([n, t]) => [n, t.shape]));
    tensors = new Map([...tensors].map(([n, t]) => [n, { shape: shapes.get(n)!, data: c.compactTensor(n, t.data) }]));
    model = c.model;
    widths = c.kept.map((k) => k.reduce((a, v) => a + v, 0));
  }
  const stage = stageName(replicate, o.level, branch);
  const source = `${path.basename(path.resolve(runDir))}/${stage} (${which} weights)`;
  let bytes: Uint8Array;
  if (format === 'safetensors') {
    // A compact network's hidden widths, so that a reader can build it without the shapes.
    bytes = encodeSafetensors(tensors, { source, model: model.name, ...(widths ? { widths: widths.join(',') } : {}) });
  } else if (format === 'pt') {
    bytes = torchStateDict(tensors, path.basename(o.out).replace(/\.[^.]*$/, '') || 'archive');
  } else {
    const dataset = getDataset(h.training.dataset);
    bytes = onnxModel({
      model: model.describe(), weights: tensors, sampleShape: getModel(h.training.model, h.training.dataset).input ?? dataset.sampleShape, classes: dataset.numClasses,
      metadata: { source, input: `one ${dataset.name} example normalised as lth loads it (docs/protocol.md)`, density: String(done.density) },
    });
  }
  writeFileAtomic(o.out, bytes);
  return { out: o.out, stage, model: model.name, density: done.density, bytes: bytes.length, ...(widths ? { widths } : {}) };
}

function stageName(replicate: number, level: number, branch: string): string {
  return `replicate_${replicate}/level_${level}/${branch}`;
}

/**
 * The run's architecture with the shapes of `tensors`: the model itself, or (a small_dense
 * stage) the same family with the hidden widths its weights have.
 */
function modelFor(name: string, dataset: string, tensors: ReadonlyMap<string, NamedTensor>): Model {
  const spec = getModel(name, dataset);
  const fits = (m: Model) => m.namedParameters().every(([n, t]) => {
    const s = tensors.get(n)?.shape;
    return s !== undefined && s.length === t.shape.length && s.every((d, i) => d === t.shape[i]);
  });
  const model = spec.build();
  if (fits(model)) return model;
  if (spec.withWidths) {
    const hidden = model.prunableLayers().filter((l) => !l.output).map((l) => tensors.get(l.name)?.shape[0] ?? 0);
    const small = spec.withWidths(hidden);
    if (fits(small)) return small;
  }
  throw new LthError(`export: the stage's weights do not fit ${name} (a tensor is missing or has another shape)`);
}
