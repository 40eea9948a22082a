import { resolveContext, type RunContext } from '../backend/index.js';
import type { Schema, Values } from '../core/hparams.js';

/** The run-settings flags of the commands that train: not hyperparameters (they never change a run's name). */
export const SETTINGS_SCHEMA = {
  threads: { type: 'integer', help: 'threads of the native kernels (default: LTH_THREADS, else the machine\'s cores)' },
  backend: { type: 'string', help: 'native or reference (default: LTH_BACKEND, else native)', choices: ['native', 'reference'] },
  simd: { type: 'string', help: 'highest SIMD path the native kernels may use (default: LTH_SIMD, else the best this CPU has)', choices: ['avx512', 'avx2', 'scalar'] },
  sparse: { type: 'string', help: 'masked layers on sparse kernels: auto (fully connected below 35% density, stride-1 convolutions below the density where their sparse kernels beat the dense path on this SIMD path: docs/cli.md), on, off (default: LTH_SPARSE, else auto)', choices: ['auto', 'on', 'off'] },
  fused: { type: 'string', help: 'the fused sparse- and dense-MLP programs where a model allows them: auto, off (default: LTH_FUSED, else auto)', choices: ['auto', 'off'] },
} as const satisfies Schema;

/** Takes the run-settings flags out of `values` and resolves the run context from them and the environment. */
export function contextFrom(values: Values): RunContext {
  const request: Record<string, string | number> = {};
  for (const k of Object.keys(SETTINGS_SCHEMA)) {
    if (values[k] !== undefined) request[k] = values[k] as string | number;
    delete values[k];
  }
  return resolveContext(request);
}

/** 'backend native (avx512), 2 threads': the run settings in a progress line. */
export function describeContext(ctx: RunContext): string {
  const s = ctx.settings;
  return `backend ${s.backend}${s.simd === 'none' ? '' : ` (${s.simd})`}, ${s.threads} thread${s.threads === 1 ? '' : 's'}`;
}
