import os from 'node:os';
import { LthError } from '../core/errors.js';
import type { Backend } from './backend.js';
import { loadNative, type NativeAddon, type SimdPath } from './native.js';
import { referenceBackend } from './reference.js';
import { referenceDenseMlp, type DenseMlpKernels } from './dense-mlp.js';
import { referenceSparseMlp, type SparseMlpKernels } from './sparse-mlp.js';

/**
 * The run settings that decide how lth computes (not what): resolved once when a command
 * or a library entry point starts, from explicit requests (CLI flags, options), then the
 * LTH_* environment variables, then defaults; passed down as a RunContext and recorded in
 * every stage's done.json. This file is the only place that reads process.env.
 */
export interface RunSettings {
  readonly backend: 'native' | 'reference';
  /** The native code path in use ('none' on the reference backend). */
  readonly simd: SimdPath | 'none';
  /** Threads of the native pool (the fused sparse step also splits its first layer this many ways). */
  readonly threads: number;
  /** Masked fully connected layers on sparse kernels: 'auto' (below the density threshold), 'on', 'off'. */
  readonly sparse: SparseMode;
  /** The fused MLP programs (sparse and dense) where a model allows them ('auto') or never ('off'). */
  readonly fused: FusedMode;
}

export type SparseMode = 'auto' | 'on' | 'off';
export type FusedMode = 'auto' | 'off';

/** What a caller asks for; anything left out comes from the environment, then the defaults. */
export interface SettingsRequest {
  readonly backend?: string;
  readonly simd?: string;
  readonly threads?: number;
  readonly sparse?: string;
  readonly fused?: string;
}

export interface RunContext {
  readonly settings: RunSettings;
  readonly backend: Backend;
  readonly sparseMlp: SparseMlpKernels;
  readonly denseMlp: DenseMlpKernels;
}

const ENV = { backend: 'LTH_BACKEND', simd: 'LTH_SIMD', threads: 'LTH_THREADS', sparse: 'LTH_SPARSE', fused: 'LTH_FUSED' } as const;
const FLAG = { backend: '--backend', simd: '--simd', threads: '--threads', sparse: '--sparse', fused: '--fused' } as const;

let active: RunContext | null = null;

/** The settings a request (flags, then environment variables) asks for, checked. */
interface AskedSettings {
  readonly backend: 'native' | 'reference';
  readonly backendExplicit: boolean;
  readonly backendSource: string;
  readonly simd: 'avx512' | 'avx2' | 'scalar';
  readonly simdExplicit: boolean;
  readonly sparse: RunSettings['sparse'];
  readonly fused: RunSettings['fused'];
  readonly threads: number;
}

function askedSettings(request: SettingsRequest, env: NodeJS.ProcessEnv): AskedSettings {
  const pick = (key: keyof typeof ENV): { value: string | undefined; source: string } => {
    const asked = request[key];
    if (asked !== undefined) return { value: String(asked), source: FLAG[key] };
    const fromEnv = env[ENV[key]];
    return { value: fromEnv === '' ? undefined : fromEnv, source: ENV[key] };
  };
  const choice = <T extends string>(key: keyof typeof ENV, choices: readonly T[], fallback: T): T => {
    const { value, source } = pick(key);
    if (value === undefined) return fallback;
    if (!(choices as readonly string[]).includes(value)) {
      throw new LthError(`${source} must be ${choices.map((c) => `'${c}'`).join(', ').replace(/, ([^,]*)$/, ' or $1')}, got '${value}'`);
    }
    return value as T;
  };
  const backend = choice('backend', ['native', 'reference'] as const, 'native');
  const simd = choice('simd', ['avx512', 'avx2', 'scalar'] as const, 'avx512');
  const sparse = choice('sparse', ['auto', 'on', 'off'] as const, 'auto');
  const fused = choice('fused', ['auto', 'off'] as const, 'auto');
  const threadsPick = pick('threads');
  const threads = threadsPick.value === undefined ? os.availableParallelism() : Number(threadsPick.value);
  if (!(Number.isInteger(threads) && threads >= 1 && threads <= 256)) {
    throw new LthError(`${threadsPick.source} must be an integer from 1 to 256, got '${threadsPick.value}'`);
  }
  return {
    backend, backendExplicit: pick('backend').value !== undefined, backendSource: pick('backend').source,
    simd, simdExplicit: pick('simd').value !== undefined, sparse, fused, threads,
  };
}

/**
 * Checks the settings a request asks for without applying them: what a process that
 * resolves them later (a queue worker's stages) checks when it starts.
 */
export function checkSettings(request: SettingsRequest = {}, env: NodeJS.ProcessEnv = process.env): void {
  askedSettings(request, env);
}

/**
 * Resolves the settings and applies the process-wide ones: the active backend (the one
 * tensor ops use), the native SIMD path and thread count. Bad values are LthErrors naming
 * the flag or variable they came from. If the native addon cannot load, a native backend
 * that was not asked for falls back to the reference backend with one warning line.
 */
export function resolveContext(request: SettingsRequest = {}, env: NodeJS.ProcessEnv = process.env): RunContext {
  const asked = askedSettings(request, env);
  const { sparse, fused, threads } = asked;
  let backend: Backend = referenceBackend;
  let sparseMlp: SparseMlpKernels = referenceSparseMlp;
  let denseMlp: DenseMlpKernels = referenceDenseMlp;
  let simd: RunSettings['simd'] = 'none';
  if (asked.backend === 'native') {
    const native = loadNative();
    if (native instanceof Error) {
      if (asked.backendExplicit) throw new LthError(`${asked.backendSource}=native but the native addon cannot load: ${native.message}`);
      warnOnce(`native addon unavailable (${native.message.split('\n')[0]}); using the slow reference backend`);
    } else {
      simd = applyNative(native, asked.simd, threads);
      const note = simdNote(asked.simd, asked.simdExplicit, simd);
      if (note) warnOnce(note);
      backend = native;
      sparseMlp = native.sparseMlp;
      denseMlp = native.denseMlp;
    }
  }
  const settings: RunSettings = { backend: backend.name, simd, threads, sparse, fused };
  active = { settings, backend, sparseMlp, denseMlp };
  return active;
}

/**
 * The context of settings resolved elsewhere (another thread's), made active in this
 * thread without touching process-wide state (the native SIMD path and thread count stay
 * as the resolving thread set them).
 */
export function contextFor(settings: RunSettings): RunContext {
  let backend: Backend = referenceBackend;
  let sparseMlp: SparseMlpKernels = referenceSparseMlp;
  let denseMlp: DenseMlpKernels = referenceDenseMlp;
  if (settings.backend === 'native') {
    const native = loadNative();
    if (native instanceof Error) throw new LthError(`the native addon cannot load: ${native.message}`);
    backend = native;
    sparseMlp = native.sparseMlp;
    denseMlp = native.denseMlp;
  }
  active = { settings, backend, sparseMlp, denseMlp };
  return active;
}

function applyNative(native: NativeAddon, simd: SimdPath, threads: number): SimdPath {
  const path = native.setSimd(simd);
  if (native.getThreads() !== threads) native.setThreads(threads);
  return path;
}

/**
 * What to tell the user about the SIMD path in use, or null: on a CPU without AVX2 the
 * native kernels fall back to their portable path, several times slower, which a user who
 * did not ask for it should know.
 */
export function simdNote(asked: SimdPath, explicit: boolean, got: SimdPath): string | null {
  if (got !== 'scalar' || (explicit && asked === 'scalar')) return null;
  return 'this CPU has no AVX2: the native kernels run their portable path (several times slower than on an AVX2 or AVX-512 CPU)';
}

let warned = false;
function warnOnce(message: string): void {
  if (warned) return;
  warned = true;
  process.stderr.write(`lth: warning: ${message}\n`);
}

/** The active context: the last one resolved, or the defaults (environment included) on first use. */
export function activeContext(): RunContext {
  return active ?? resolveContext();
}

/** The backend tensor ops compute on: the active context's. */
export function getBackend(): Backend {
  return (active ?? resolveContext()).backend;
}

/** The settings as done.json records them. */
export function describeSettings(s: RunSettings): Record<string, string | number> {
  return { backend: s.backend, simd: s.simd, threads: s.threads, sparse: s.sparse, fused: s.fused };
}
