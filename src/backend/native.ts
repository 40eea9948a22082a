import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Backend, ConvPattern } from './backend.js';
import { referenceBackend } from './reference.js';
import type { DenseMlpKernels, DenseMlpLayer, PreparedDenseMlp } from './dense-mlp.js';
import type { PreparedMlp, SparseMlpKernels, SparseMlpLayer, UpdateRule } from './sparse-mlp.js';

/** The package root: dist/src/backend/ -> three levels up. */
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export type SimdPath = 'avx512' | 'avx2' | 'scalar';

/** The native addon (native/README.md): the Backend kernels plus its own controls and the sparse- and dense-MLP program kernels. */
export interface NativeAddon extends Backend {
  readonly name: 'native';
  /** The code path in use. */
  simdPath(): SimdPath;
  /** Switches every kernel table to `path` (or the best this CPU has below it); returns the path now in use. Call between kernel calls only. */
  setSimd(path: SimdPath): SimdPath;
  /** Threads the addon's pool uses (default: the machine's hardware threads). */
  setThreads(n: number): void;
  getThreads(): number;
  /** The threads a kernel called now on this thread would use (1 on a serial thread, fewer while cores are held). */
  threadsHere(): number;
  /** Kernels called from the calling thread from now on run on it alone (never on the pool). */
  serialThread(): void;
  /** While on, the calling thread holds a core: kernels called on other threads use at most the cores left; released when the thread exits. */
  holdCore(on: boolean): void;
  /** From now on the first SIGINT or SIGTERM is recorded (stopSignal) instead of ending the process; a second one ends it at once. */
  watchStopSignals(): void;
  /** The signal number recorded since watchStopSignals(), or 0. */
  stopSignal(): number;
  readonly sparseMlp: SparseMlpKernels;
  readonly denseMlp: DenseMlpKernels;
}

let loaded: NativeAddon | Error | undefined;

/**
 * Loads the addon once, or returns the Error that stopped it. node-gyp-build picks the
 * file: one built from source (build/Release/*.node) first, else the prebuilt one for this
 * platform and architecture that the package ships (prebuilds/<platform>-<arch>/).
 */
export function loadNative(): NativeAddon | Error {
  if (loaded === undefined) {
    try {
      const require = createRequire(import.meta.url);
      const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
      let file: string;
      try {
        file = nodeGypBuild.path(packageRoot);
      } catch {
        throw new Error(`no native build for ${process.platform}-${process.arch}: none prebuilt in the package, none compiled in build/Release`);
      }
      const addon = require(file);
      // An addon built from older sources may lack newer kernels: refuse it whole.
      const wanted = [...Object.keys(referenceBackend).filter((k) => k !== 'name'), 'simdPath', 'setSimd', 'setThreads', 'sparseMlpPrepare', 'sparseMlpStep', 'sparseMlpDenseGrad', 'sparseMlpEval', 'denseMlpPrepare', 'denseMlpStep', 'denseMlpEval'];
      const missing = wanted.filter((k) => typeof addon[k] !== 'function');
      if (missing.length) throw new Error(`the addon ${file} lacks ${missing.join(', ')} (rebuild it: npm run build:addon)`);
      loaded = { ...addon, ...nativeSparseConv(addon), name: 'native', sparseMlp: nativeSparseMlp(addon), denseMlp: nativeDenseMlp(addon) } as NativeAddon;
    } catch (e) {
      loaded = e instanceof Error ? e : new Error(String(e));
    }
  }
  return loaded;
}

/** The addon's sparse convolutions take the pattern as its arrays and dimensions. */
interface RawSparseConv {
  sparseConvForward(rowPtr: Int32Array, colIdx: Int32Array, vals: Float32Array, x: Float32Array, y: Float32Array, bias: Float32Array | null,
    n: number, cin: number, cout: number, h: number, w: number, kh: number, kw: number, padH: number, padW: number, relu: boolean): void;
  sparseConvInputGrad(rowPtr: Int32Array, colIdx: Int32Array, tPtr: Int32Array, tIdx: Int32Array, vals: Float32Array, gy: Float32Array,
    gx: Float32Array, n: number, cin: number, cout: number, h: number, w: number, kh: number, kw: number, padH: number, padW: number): void;
  sparseConvWeightGrad(rowPtr: Int32Array, colIdx: Int32Array, x: Float32Array, gy: Float32Array, gvals: Float32Array,
    n: number, cin: number, cout: number, h: number, w: number, kh: number, kw: number, padH: number, padW: number): void;
}

function nativeSparseConv(addon: RawSparseConv): Pick<Backend, 'sparseConvForward' | 'sparseConvInputGrad' | 'sparseConvWeightGrad'> {
  const raw = { ...addon };
  return {
    sparseConvForward: (p: ConvPattern, vals, x, y, bias, n, h, w, padH, padW, relu) =>
      raw.sparseConvForward(p.rowPtr, p.colIdx, vals, x, y, bias, n, p.inChannels, p.outChannels, h, w, p.kh, p.kw, padH, padW, relu),
    sparseConvInputGrad: (p: ConvPattern, vals, gy, gx, n, h, w, padH, padW) =>
      raw.sparseConvInputGrad(p.rowPtr, p.colIdx, p.tPtr, p.tIdx, vals, gy, gx, n, p.inChannels, p.outChannels, h, w, p.kh, p.kw, padH, padW),
    sparseConvWeightGrad: (p: ConvPattern, x, gy, gvals, n, h, w, padH, padW) =>
      raw.sparseConvWeightGrad(p.rowPtr, p.colIdx, x, gy, gvals, n, p.inChannels, p.outChannels, h, w, p.kh, p.kw, padH, padW),
  };
}

interface RawSparseMlp {
  sparseMlpPrepare(parts: number, ...layerArgs: unknown[]): object;
  sparseMlpStep(handle: object, src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    rule: Float64Array | null, losses: Float64Array): number;
  sparseMlpDenseGrad(handle: object, src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    ...outs: (Float32Array | null)[]): number;
  sparseMlpEval(handle: object, src: Float32Array, srcLabels: Int32Array, out: Float64Array): void;
}

interface NativePrepared extends PreparedMlp {
  readonly handle: object;
}

/**
 * The addon's sparse-MLP calls behind SparseMlpKernels. The addon takes each layer as ten
 * plain arguments and the rule as numbers (cheaper to read than object properties).
 */
function nativeSparseMlp(addon: RawSparseMlp): SparseMlpKernels {
  const evalOut = new Float64Array(2);
  const encodeRule = ruleEncoder();
  const layerArgs = (l: SparseMlpLayer): unknown[] => {
    const w = l.state?.weight ?? [], b = l.state?.bias ?? [];
    return [l.pattern, l.vals, l.bias, l.relu, l.gvals, l.gbias, w[0] ?? null, w[1] ?? null, b[0] ?? null, b[1] ?? null];
  };
  const handleOf = (chain: PreparedMlp): object => {
    const h = (chain as Partial<NativePrepared>).handle;
    if (!h) throw new TypeError('sparseMlp: the chain was not prepared by the native backend');
    return h;
  };
  return {
    prepare(layers, parts) {
      const handle = addon.sparseMlpPrepare(parts, ...layers.flatMap(layerArgs));
      const chain: NativePrepared = { layers, parts, handle };
      return chain;
    },
    step(chain, src, srcLabels, indices, from, n, update, losses) {
      addon.sparseMlpStep(handleOf(chain), src, srcLabels, indices, from, n, encodeRule(update), losses);
      for (let s = 0; s < losses.length; s++) if (!Number.isFinite(losses[s])) return s + 1;
      return losses.length;
    },
    denseGrad(chain, src, srcLabels, indices, from, n, outs) {
      return addon.sparseMlpDenseGrad(handleOf(chain), src, srcLabels, indices, from, n, ...outs);
    },
    evaluate(chain, src, srcLabels) {
      addon.sparseMlpEval(handleOf(chain), src, srcLabels, evalOut);
      return { loss: evalOut[0], correct: evalOut[1] };
    },
  };
}

/** A function writing an update rule into the Float64Array the addon's MLP steps read (one array, reused), or null for none. */
function ruleEncoder(): (r: UpdateRule | null) => Float64Array | null {
  const ruleArgs = new Float64Array(8);
  return (r) => {
    if (!r) return null;
    const adam = r.kind === 'adam';
    ruleArgs[0] = adam ? 1 : 2;
    ruleArgs[1] = r.lr;
    ruleArgs[2] = adam ? r.beta1 : 0;
    ruleArgs[3] = adam ? r.beta2 : 0;
    ruleArgs[4] = adam ? r.eps : 0;
    ruleArgs[5] = adam ? r.step : 0;
    ruleArgs[6] = adam ? 0 : r.momentum;
    ruleArgs[7] = adam ? 0 : r.weightDecay;
    return ruleArgs;
  };
}

interface RawDenseMlp {
  denseMlpPrepare(...layerArgs: unknown[]): object;
  denseMlpStep(handle: object, src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
    rule: Float64Array | null, losses: Float64Array): number;
  denseMlpEval(handle: object, src: Float32Array, srcLabels: Int32Array, chunk: number, out: Float64Array): void;
}

interface NativePreparedDense extends PreparedDenseMlp {
  readonly handle: object;
}

/** The addon's dense-MLP calls behind DenseMlpKernels: each layer as twelve plain arguments, the rule as numbers. */
function nativeDenseMlp(addon: RawDenseMlp): DenseMlpKernels {
  const encodeRule = ruleEncoder();
  const evalOut = new Float64Array(2);
  const layerArgs = (l: DenseMlpLayer): unknown[] => {
    const w = l.state?.weight ?? [], b = l.state?.bias ?? [];
    return [l.inFeatures, l.outFeatures, l.weight, l.bias, l.relu, l.gweight, l.gbias, w[0] ?? null, w[1] ?? null, b[0] ?? null, b[1] ?? null, l.mask ?? null];
  };
  const handleOf = (chain: PreparedDenseMlp): object => {
    const h = (chain as Partial<NativePreparedDense>).handle;
    if (!h) throw new TypeError('denseMlp: the chain was not prepared by the native backend');
    return h;
  };
  return {
    prepare(layers) {
      const chain: NativePreparedDense = { layers, handle: addon.denseMlpPrepare(...layers.flatMap(layerArgs)) };
      return chain;
    },
    step(chain, src, srcLabels, indices, from, n, update, losses) {
      return addon.denseMlpStep(handleOf(chain), src, srcLabels, indices, from, n, encodeRule(update), losses);
    },
    evaluate(chain, src, srcLabels, chunk) {
      addon.denseMlpEval(handleOf(chain), src, srcLabels, chunk, evalOut);
      return { loss: evalOut[0], correct: evalOut[1] };
    },
  };
}
