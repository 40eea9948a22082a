import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Backend, SparseLayer, SparseMlpLayer, UpdateRule } from './backend.js';
import { referenceBackend } from './reference.js';
import { LthError } from '../core/errors.js';

export type { Backend } from './backend.js';
export { referenceBackend } from './reference.js';

/** The package root: dist/src/backend/ -> three levels up. */
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The native addon's extra entry points, beyond the Backend kernels. */
export interface NativeBackend extends Backend {
  /** 'avx512' | 'avx2' | 'scalar': the code path chosen at load time for this CPU. */
  readonly simd: string;
  /** Threads the addon's pool uses (LTH_THREADS at load; default min(2, cores)). */
  setThreads(n: number): void;
  getThreads(): number;
  /** The threads a kernel called now on this thread would use (1 on a serial thread, fewer while cores are held). */
  threadsHere(): number;
  /** Kernels called from the calling thread from now on run on it alone (never on the pool). */
  serialThread(): void;
  /**
   * While on, the calling thread holds a core: kernels called on other threads use at most
   * the cores left (on 2 cores, one thread fewer); released when the thread exits.
   */
  holdCore(on: boolean): void;
}

let nativeCache: NativeBackend | Error | undefined;

// The addon takes the rule as numbers and each layer as ten arguments (cheaper to read
// than object properties).
const ruleArgs = new Float64Array(8);
const evalOut = new Float64Array(2);
function encodeRule(r: UpdateRule | null): Float64Array | null {
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
}
function layerArgs(l: SparseMlpLayer): unknown[] {
  const w = l.state?.weight ?? [], b = l.state?.bias ?? [];
  return [l.pattern, l.vals, l.bias, l.relu, l.gvals, l.gbias, w[0] ?? null, w[1] ?? null, b[0] ?? null, b[1] ?? null];
}

// The addon checks a chain's layers once (sparseMlpPrepare) and sparseMlpStep then takes
// the handle: a training loop passes the same arrays every step, and reading them all
// through Node-API each time cost ~10 us a step. The last chain is kept while its
// arguments are the same objects.
let lastChain: { args: unknown[]; handle: object } | null = null;
function preparedChain(addon: { sparseMlpPrepare(...args: unknown[]): object }, layers: readonly SparseMlpLayer[]): object {
  // Plain loops: flatMap and every() go through V8's slow paths, and this runs every step.
  const args: unknown[] = [];
  for (const l of layers) for (const a of layerArgs(l)) args.push(a);
  let same = lastChain !== null && lastChain.args.length === args.length;
  for (let i = 0; same && i < args.length; i++) same = args[i] === lastChain!.args[i];
  if (!same) lastChain = { args, handle: addon.sparseMlpPrepare(...args) };
  return lastChain!.handle;
}

/** Loads the node-gyp built addon, or returns the Error that stopped it. */
export function loadNative(): NativeBackend | Error {
  if (nativeCache === undefined) {
    try {
      const require = createRequire(import.meta.url);
      const addon = require(path.join(packageRoot, 'build', 'Release', 'lth_native.node'));
      // An addon built from older sources may lack newer kernels: refuse it whole.
      const missing = Object.keys(referenceBackend).filter((k) => k !== 'name' && typeof addon[k] !== 'function');
      if (missing.length) throw new Error(`the addon lacks kernels ${missing.join(', ')} (rebuild it: npm rebuild lth or node-gyp rebuild)`);
      nativeCache = {
        ...addon,
        name: 'native',
        simd: addon.simdPath(),
        sparseMlpStep: (src: Float32Array, srcLabels: Int32Array, indices: Int32Array, from: number, n: number,
          layers: readonly SparseMlpLayer[], update: UpdateRule | null, losses?: Float64Array) =>
          addon.sparseMlpStep(preparedChain(addon, layers), src, srcLabels, indices, from, n, encodeRule(update), losses ?? null),
        sparseMlpEval: (src: Float32Array, srcLabels: Int32Array, layers: readonly SparseLayer[]) => {
          addon.sparseMlpEval(src, srcLabels, evalOut, ...layers.flatMap((l) => [l.pattern, l.vals, l.bias, l.relu]));
          return { loss: evalOut[0], correct: evalOut[1] };
        },
      } as NativeBackend;
    } catch (e) {
      nativeCache = e instanceof Error ? e : new Error(String(e));
    }
  }
  return nativeCache;
}

let chosen: Backend | undefined;

/**
 * The backend for this process: LTH_BACKEND=reference|native forces one; otherwise
 * native, falling back to reference with one warning line if the addon cannot load.
 */
export function getBackend(): Backend {
  if (chosen) return chosen;
  const forced = process.env.LTH_BACKEND;
  if (forced !== undefined && forced !== 'native' && forced !== 'reference') {
    throw new LthError(`LTH_BACKEND must be 'native' or 'reference', got '${forced}'`);
  }
  if (forced === 'reference') return (chosen = referenceBackend);
  const native = loadNative();
  if (native instanceof Error) {
    if (forced === 'native') throw new LthError(`LTH_BACKEND=native but the native addon cannot load: ${native.message}`);
    process.stderr.write(`lth: warning: native addon unavailable (${native.message.split('\n')[0]}); using the slow reference backend\n`);
    return (chosen = referenceBackend);
  }
  return (chosen = native);
}
