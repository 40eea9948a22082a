import { LthError, check } from '../core/errors.js';
import { buildModel } from './build.js';
import { Conv2d, Dropout, Flatten, Linear, MaxPool2d } from './layers.js';
import type { Model } from './model.js';
import { Sequential, type Module, type ModuleDesc, type StateDict } from './module.js';
import { BatchNorm2d, GlobalAvgPool2d } from './norm.js';

/*
 * Structured pruning and compaction. A *unit* is a neuron of a Linear layer (a row of its
 * weight) or an output channel of a Conv2d (a filter). In a chain of such layers — a
 * Model whose other modules, inside Sequentials to any depth, are max pooling, flatten,
 * dropout, global average pooling and batch norm after a conv, which never mix units —
 * unit j of one layer feeds only the next layer's inputs that come from it: column j of a
 * following Linear, input channel j of a following Conv2d, and, after a conv, pooling and
 * flatten, the H·W columns j·H·W .. (j+1)·H·W − 1 (NCHW flatten order; one column after
 * global average pooling). A mask that zeroes a unit's row and those inputs removes the
 * unit: the network computes what a smaller dense network computes, which is what
 * compaction builds. (A removed channel's batch norm still outputs its shift β, but the
 * next layer's masked inputs ignore it.) A batch norm's per-channel tensors go with its
 * conv's units.
 */

/** A Linear or Conv2d of a chain, with how its weight's rows and inputs map to units. */
export interface UnitLayer {
  /** The layer's path in the model ('fc1') and its weight's name ('fc1.weight'). */
  readonly path: string;
  readonly weight: string;
  readonly kind: 'linear' | 'conv2d';
  /** Its units: output neurons or channels, the rows of its weight. */
  readonly units: number;
  /** The units its inputs come from: the previous layer's, or the network's input features or channels. */
  readonly inUnits: number;
  /** Entries of a row per input unit: 1 between Linear layers, kh·kw in a conv, H·W in a Linear after a conv and flatten. */
  readonly block: number;
  /** The network's last layer, whose units (the classes) are never removed. */
  readonly output: boolean;
  /** The path of the batch norm right after a conv ('layers.0.bn'), whose channels are its units. */
  readonly norm?: string;
}

/** The layers a chain's units pass through unchanged (one value per unit and position, never mixed). */
const PASS_THROUGH = [MaxPool2d, Flatten, Dropout, GlobalAvgPool2d];

/** The modules of `m` below Sequentials, to any depth, in order, with their paths. */
function leaves(m: Module, prefix = ''): Array<[string, Module]> {
  if (!(m instanceof Sequential)) return [[prefix, m]];
  return m.namedChildren().flatMap(([n, c]) => leaves(c, prefix ? `${prefix}.${n}` : n));
}

/** The chain of `model`'s Linear and Conv2d layers, or why it is not one. */
function chainOrProblem(model: Model): UnitLayer[] | string {
  const out: Array<Omit<UnitLayer, 'output'>> = [];
  let last: Module | null = null;
  for (const [path, c] of leaves(model)) {
    const prev = out[out.length - 1];
    const follows = last;
    last = c;
    if (c instanceof BatchNorm2d) {
      // Its channels must be exactly a conv's units, right after it.
      if (!(follows instanceof Conv2d) || prev.norm !== undefined) return `${path} (batch_norm2d) does not follow a convolution directly`;
      out[out.length - 1] = { ...prev, norm: path };
      continue;
    }
    if (c instanceof Linear) {
      // After a conv (and flatten), each channel owns a contiguous block of H·W inputs.
      const inUnits = prev ? prev.units : c.inFeatures;
      if (c.inFeatures % inUnits !== 0) return `${path} has ${c.inFeatures} inputs, not a multiple of the ${inUnits} units before it`;
      out.push({ path, weight: `${path}.weight`, kind: 'linear', units: c.outFeatures, inUnits, block: c.inFeatures / inUnits });
    } else if (c instanceof Conv2d) {
      if (prev && prev.kind !== 'conv2d') return `${path} is a convolution after a fully connected layer`;
      out.push({ path, weight: `${path}.weight`, kind: 'conv2d', units: c.outChannels, inUnits: c.inChannels, block: c.kernel[0] * c.kernel[1] });
    } else if (!PASS_THROUGH.some((k) => c instanceof k)) {
      return `${path} (${c.describe().type}) is neither a Linear or Conv2d layer nor pooling, flatten, dropout or batch norm`;
    }
  }
  if (out.length === 0) return 'it has no Linear or Conv2d layer';
  return out.map((l, i) => ({ ...l, output: i === out.length - 1 }));
}

/** The chain of `model`'s Linear and Conv2d layers; a user error naming why when the model is not one. */
export function unitChain(model: Model): UnitLayer[] {
  const chain = chainOrProblem(model);
  if (typeof chain === 'string') throw new LthError(`${model.name}: structured pruning needs a chain of Linear/Conv2d layers: ${chain}`);
  return chain;
}

/** Entries of one row (one unit's weights) of a chain layer. */
export function rowLength(layer: UnitLayer): number {
  return layer.inUnits * layer.block;
}

/** Zeroes unit j's row of `layer`'s mask. */
export function zeroUnit(mask: Float32Array, layer: UnitLayer, j: number): void {
  const len = rowLength(layer);
  mask.fill(0, j * len, (j + 1) * len);
}

/** Zeroes the inputs of `layer` that come from unit u of the layer before it, in every row. */
export function zeroInputsFrom(mask: Float32Array, layer: UnitLayer, u: number): void {
  const len = rowLength(layer);
  for (let r = 0; r < layer.units; r++) mask.fill(0, r * len + u * layer.block, r * len + (u + 1) * layer.block);
}

/**
 * Which units each layer of the chain keeps (1) under `masks`, or null when the masks are not
 * structured: every row must be either all zero (the unit removed) or exactly the inputs of
 * the units kept before it, and the output layer keeps every row. A layer without a mask
 * counts as all ones. Stops at the first entry that breaks it (unstructured masks fail at once).
 */
export function keptUnits(chain: readonly UnitLayer[], masks: ReadonlyMap<string, Float32Array>): Uint8Array[] | null {
  const out: Uint8Array[] = [];
  let keepIn = new Uint8Array(chain[0].inUnits).fill(1);
  for (const layer of chain) {
    const m = masks.get(layer.weight);
    const keep = new Uint8Array(layer.units);
    const len = rowLength(layer);
    check(!m || m.length === layer.units * len, () => `mask '${layer.weight}' has ${m!.length} values, expected ${layer.units * len}`);
    if (!m) {
      // All ones: consistent only if nothing before it was removed.
      if (keepIn.includes(0)) return null;
      keep.fill(1);
    }
    for (let r = 0; m && r < layer.units; r++) {
      const alive = layer.output || m.subarray(r * len, (r + 1) * len).some((v) => v !== 0);
      for (let u = 0; u < layer.inUnits; u++) {
        const want = alive && keepIn[u] === 1;
        const from = r * len + u * layer.block;
        for (let i = from; i < from + layer.block; i++) if ((m[i] !== 0) !== want) return null;
      }
      keep[r] = alive ? 1 : 0;
    }
    out.push(keep);
    keepIn = keep;
  }
  return out;
}

/** A structurally pruned network as a smaller dense one, and the maps between their states. */
export interface Compaction {
  /** The smaller network (fresh parameters): the model with only the kept units. */
  readonly model: Model;
  /** Which units each layer of the chain keeps. */
  readonly kept: readonly Uint8Array[];
  /** The smaller network's values of one tensor of the full one (by the full one's name). */
  compactTensor(name: string, full: Float32Array): Float32Array;
  /** The full-size values of one tensor from the smaller network's: zero at removed units and their inputs. */
  expandTensor(name: string, small: Float32Array): Float32Array;
  /** compactTensor over a state dict. */
  compact(full: ReadonlyMap<string, Float32Array>): StateDict;
  /** expandTensor over a state dict: the state in the full network's names and shapes. */
  expand(small: ReadonlyMap<string, Float32Array>): StateDict;
}

/**
 * The compaction of `model` under structured `masks`, or null when there is nothing to
 * compact: the model is not a chain, the masks are not structured, they remove no unit,
 * or they remove a whole layer's units (nothing would pass it).
 */
export function compaction(model: Model, masks: ReadonlyMap<string, Float32Array>): Compaction | null {
  const chain = chainOrProblem(model);
  if (typeof chain === 'string') return null;
  const kept = keptUnits(chain, masks);
  if (!kept || kept.every((k) => k.every((v) => v === 1)) || kept.some((k) => k.every((v) => v === 0))) return null;
  const small = buildModel(shrunk(model.describe(), chain, kept));
  const index = gatherIndices(chain, kept);
  const fullSizes = new Map(model.namedTensors().map(([n, t]) => [n, t.size]));
  for (const [n, t] of small.namedTensors()) {
    check(t.size === (index.get(n)?.length ?? fullSizes.get(n)), `compaction: '${n}' has ${t.size} values in the compact model`);
  }
  const compactTensor = (name: string, full: Float32Array) => {
    check(full.length === fullSizes.get(name), () => `compaction: '${name}' has ${full.length} values, expected ${fullSizes.get(name)}`);
    const idx = index.get(name);
    if (!idx) return Float32Array.from(full);
    const out = new Float32Array(idx.length);
    for (let i = 0; i < idx.length; i++) out[i] = full[idx[i]];
    return out;
  };
  const expandTensor = (name: string, part: Float32Array) => {
    const idx = index.get(name);
    if (!idx) return Float32Array.from(part);
    check(part.length === idx.length, () => `compaction: '${name}' has ${part.length} values, expected ${idx.length}`);
    const out = new Float32Array(fullSizes.get(name)!);
    for (let i = 0; i < idx.length; i++) out[idx[i]] = part[i];
    return out;
  };
  return {
    model: small, kept, compactTensor, expandTensor,
    compact: (full) => new Map([...full].map(([n, v]) => [n, compactTensor(n, v)])),
    expand: (part) => new Map([...part].map(([n, v]) => [n, expandTensor(n, v)])),
  };
}

/** The description of `model` with each chain layer's units and inputs (and its batch norm's channels) cut to the kept ones. */
function shrunk(desc: ModuleDesc, chain: readonly UnitLayer[], kept: readonly Uint8Array[]): ModuleDesc {
  const count = (k: Uint8Array) => k.reduce((a, v) => a + v, 0);
  const sizes = new Map<string, Record<string, number>>();
  chain.forEach((l, i) => {
    const keptIn = i === 0 ? l.inUnits : count(kept[i - 1]);
    // A Linear's inputs are units × block (H·W after a flattened conv); a conv's are channels.
    sizes.set(l.path, { in: l.kind === 'linear' ? keptIn * l.block : keptIn, out: count(kept[i]) });
    if (l.norm) sizes.set(l.norm, { channels: count(kept[i]) });
  });
  const rewrite = (d: ModuleDesc, path: string): ModuleDesc => {
    if (Array.isArray(d.layers)) {
      return { ...d, layers: (d.layers as Array<[string, ModuleDesc]>).map(([n, c]) => [n, rewrite(c, path ? `${path}.${n}` : n)]) };
    }
    return sizes.has(path) ? { ...d, ...sizes.get(path) } : d;
  };
  return rewrite(desc, '');
}

/** For each weight and bias of the chain, the full tensor's index of every entry of the compact one, in order. */
function gatherIndices(chain: readonly UnitLayer[], kept: readonly Uint8Array[]): Map<string, Int32Array> {
  const out = new Map<string, Int32Array>();
  chain.forEach((l, i) => {
    const rows = indicesOf(kept[i]);
    const ins = i === 0 ? Array.from({ length: l.inUnits }, (_, u) => u) : indicesOf(kept[i - 1]);
    const len = rowLength(l);
    // Typed from the start: a Conv-2's fc1 alone has 4 million entries.
    const w = new Int32Array(rows.length * ins.length * l.block);
    let at = 0;
    for (const r of rows) for (const u of ins) for (let k = 0; k < l.block; k++) w[at++] = r * len + u * l.block + k;
    out.set(l.weight, w);
    out.set(`${l.path}.bias`, Int32Array.from(rows));
    if (l.norm) for (const t of ['weight', 'bias', 'running_mean', 'running_var']) out.set(`${l.norm}.${t}`, Int32Array.from(rows));
  });
  return out;
}

function indicesOf(keep: Uint8Array): number[] {
  const out: number[] = [];
  keep.forEach((v, i) => { if (v) out.push(i); });
  return out;
}
