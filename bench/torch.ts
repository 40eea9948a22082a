/**
 * PyTorch at its best, for the benches' side-by-side figures: a bench/torch_*.py script run
 * with Debian's PyTorch at one thread and at all of the machine's cores, and the faster of
 * the two kept (on a 2-core machine with batch 60, one thread is often faster: the second
 * thread costs more in synchronisation than it computes). OpenBLAS runs on this CPU's own
 * kernels: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which some machines set to force a
 * smaller CPU's code path, are removed from the script's environment.
 */
import os from 'node:os';
import { spawnSync } from 'node:child_process';

/** A Python that imports torch: /usr/bin/python3 first, then python3 on PATH. */
export function findTorchPython(): { python: string } | { note: string } {
  const tried: string[] = [];
  for (const python of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return { python };
    tried.push(`${python}: ${r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop()}`);
  }
  return { note: `PyTorch not found, skipping the torch comparison (${tried.join('; ')})` };
}

/** The environment PyTorch is timed in: this process's, without the OpenBLAS core-type overrides. */
export function torchEnv(): NodeJS.ProcessEnv {
  const { OPENBLAS_CORETYPE: _c, OPENBLAS_L2_SIZE: _l, NODE_TEST_CONTEXT: _t, ...env } = process.env;
  return env;
}

/** The thread counts PyTorch is tried at: 1 and the machine's cores. */
export function torchThreadCounts(): number[] {
  const cores = os.availableParallelism();
  return cores > 1 ? [1, cores] : [1];
}

export interface TorchRun {
  readonly threads: number;
  readonly result: Record<string, unknown>;
}

/**
 * Runs `script args --threads t` for each thread count, one after the other (never beside
 * lth); returns each run's JSON (its last stdout line), or an Error saying why none came.
 */
export function runTorch(python: string, script: string, args: string[]): TorchRun[] | Error {
  const runs: TorchRun[] = [];
  for (const threads of torchThreadCounts()) {
    const child = spawnSync(python, [script, ...args, '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 1 << 24, env: torchEnv() });
    const lines = (child.stdout ?? '').trim().split('\n');
    let r: Record<string, unknown> | undefined;
    try {
      r = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
    } catch {
      r = undefined;
    }
    if (!r || child.status !== 0) {
      return new Error(`torch run failed at ${threads} thread(s) (status ${child.status}): ${(child.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    }
    runs.push({ threads, result: r });
  }
  return runs;
}
