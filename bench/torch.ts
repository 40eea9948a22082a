/**
 * PyTorch at its best, for the benches' side-by-side figures: a bench/torch_*.py script run
 * with Debian's PyTorch at one thread and at all of the machine's cores, and the faster of
 * the two kept (on a 2-core machine with batch 60, one thread is often faster: the second
 * thread costs more in synchronisation than it computes). OpenBLAS runs on this CPU's own
 * kernels: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which some machines set to force a
 * smaller CPU's code path, are removed from the script's environment. glibc's malloc keeps
 * the memory PyTorch frees (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_), as a caching
 * allocator would: by default every tensor above its mmap threshold is mapped and
 * unmapped anew, and on a virtual machine where a page fault is dear a Conv-2 step then
 * spends most of its time faulting pages in.
 */
import os from 'node:os';
import readline from 'node:readline';
import { spawn, spawnSync } from 'node:child_process';
import { LthError } from '../src/core/errors.js';
import { median } from './stats.js';

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

/**
 * The environment PyTorch is timed in: this process's, without the OpenBLAS core-type
 * overrides, with glibc's malloc keeping freed memory (unless this process sets its own
 * values): the largest mmap threshold glibc accepts (32 MiB) and no trimming.
 */
export function torchEnv(): NodeJS.ProcessEnv {
  const { OPENBLAS_CORETYPE: _c, OPENBLAS_L2_SIZE: _l, NODE_TEST_CONTEXT: _t, ...env } = process.env;
  return { MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(2 ** 40), ...env };
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
 * For a script timed once (LeNet's epochs); the step scripts run in turn with lth's steps
 * (TorchSteps).
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

/**
 * A step script kept running in its --serve mode, so that a bench can time PyTorch's steps
 * in turn with its own, a few at a time (on a shared machine each side's speed moves with
 * the minute; steps timed close together meet the same machine).
 */
export class TorchSteps {
  private readonly lines: AsyncIterator<string>;
  private stderr = '';

  private constructor(private readonly child: ReturnType<typeof spawn>, readonly threads: number) {
    child.stderr!.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    child.on('error', (e) => { this.stderr += e.message; });
    // A script that has exited closes the pipe: its stderr says why, read() reports it.
    child.stdin!.on('error', () => {});
    this.lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  }

  /** Starts `script args --serve` at each of torchThreadCounts(); resolves once all have warmed up, with their JSON lines. */
  static async start(python: string, script: string, args: string[]): Promise<Array<{ steps: TorchSteps; info: Record<string, unknown> }> | Error> {
    const started: Array<{ steps: TorchSteps; info: Record<string, unknown> }> = [];
    for (const threads of torchThreadCounts()) {
      const child = spawn(python, [script, ...args, '--threads', String(threads), '--serve'], { stdio: ['pipe', 'pipe', 'pipe'], env: torchEnv() });
      const steps = new TorchSteps(child, threads);
      const info = await steps.read();
      if (info instanceof Error) {
        for (const s of [...started.map((x) => x.steps), steps]) s.close();
        return info;
      }
      started.push({ steps, info: info as Record<string, unknown> });
    }
    return started;
  }

  /** Times k more steps: their seconds. */
  async time(k: number): Promise<number[] | Error> {
    this.child.stdin!.write(`${k}\n`);
    const r = await this.read();
    return r instanceof Error || Array.isArray(r) ? (r as number[] | Error) : new Error(`torch at ${this.threads} thread(s) answered ${JSON.stringify(r)}`);
  }

  close(): void {
    this.child.stdin!.end();
  }

  private async read(): Promise<unknown> {
    const next = await this.lines.next();
    if (next.done) return new Error(`torch at ${this.threads} thread(s) stopped: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    try {
      return JSON.parse(next.value);
    } catch {
      return new Error(`torch at ${this.threads} thread(s) printed ${next.value.slice(0, 200)}`);
    }
  }
}

/** PyTorch's side of inTurn: each round's median step at its faster thread count, and more. */
export interface TorchInTurn {
  /** The faster thread count's (by the median of its rounds) median step per round. */
  readonly rounds: number[];
  readonly threads: number;
  readonly info: Record<string, unknown>;
  /** Every step of the faster thread count. */
  readonly times: number[];
  /** The median step of each thread count, over all its rounds. */
  readonly byThreads: Record<number, number>;
  /** Each round's lth / PyTorch, against the faster thread count. */
  readonly ratios: number[];
}

/**
 * How long each side waits before its steps are timed: the other side's threads spin a
 * while after their last work before they sleep (OpenBLAS's for about 2^28 cycles, 0.1 s),
 * and steps timed while they spin share the cores with them. Without the wait the first
 * of each round's lth steps took about 10% longer than the second.
 */
const SETTLE_MS = 200;

const settle = () => new Promise<void>((done) => setTimeout(done, SETTLE_MS));

/**
 * `rounds` rounds of lth's steps (`lthRound`: their median) and then `torchSteps` of
 * PyTorch's at each thread count of `started` (closed at the end), each side's after
 * SETTLE_MS of quiet. Without PyTorch (null, or the Error that kept it from starting: its
 * message is the note), one round of lth's.
 */
export async function inTurn(
  started: Array<{ steps: TorchSteps; info: Record<string, unknown> }> | Error | null, rounds: number, torchSteps: number,
  lthRound: (round: number) => number,
): Promise<{ lthRounds: number[]; torch: TorchInTurn | null; note?: string }> {
  if (started === null || started instanceof Error) return { lthRounds: [lthRound(0)], torch: null, note: started?.message };
  const lthRounds: number[] = [];
  const perThreads = started.map(() => ({ rounds: [] as number[], times: [] as number[] }));
  try {
    for (let round = 0; round < rounds; round++) {
      await settle();
      lthRounds.push(lthRound(round));
      for (const [i, t] of started.entries()) {
        await settle();
        const times = await t.steps.time(torchSteps);
        if (times instanceof Error) throw new LthError(times.message);
        perThreads[i].times.push(...times);
        perThreads[i].rounds.push(median(times));
      }
    }
  } finally {
    for (const t of started) t.steps.close();
  }
  const best = perThreads.reduce((b, p, i) => (median(p.rounds) < median(perThreads[b].rounds) ? i : b), 0);
  const torchRounds = perThreads[best].rounds;
  return {
    lthRounds,
    torch: {
      rounds: torchRounds, threads: started[best].steps.threads, info: started[best].info, times: perThreads[best].times,
      byThreads: Object.fromEntries(started.map((t, i) => [t.steps.threads, median(perThreads[i].times)])),
      ratios: lthRounds.map((l, r) => l / torchRounds[r]),
    },
  };
}
