import type { StageSpec } from '../lottery/plan.js';

/**
 * The makespan of a plan's stages on `workers` identical workers that take the stages in
 * plan order as their dependencies finish (as the queue hands them out), each stage taking
 * `seconds(id)`; and the ideal: the larger of the total work over the workers and the
 * longest chain of dependent stages (no schedule beats either).
 */
export function simulateMakespan(plan: readonly StageSpec[], seconds: (id: string) => number, workers: number): { makespan: number; ideal: number } {
  const finish = new Map<string, number>();
  const free = new Array<number>(workers).fill(0);
  const pending = [...plan];
  let now = 0;
  while (pending.length) {
    // The earliest a worker is free, then the first stage in plan order whose dependencies are done by then.
    const w = free.indexOf(Math.min(...free));
    now = Math.max(now, free[w]);
    let i = pending.findIndex((s) => s.deps.every((d) => (finish.get(d) ?? Infinity) <= now));
    if (i < 0) {
      // Nothing runnable yet: wait for the next stage to finish.
      now = Math.min(...[...finish.values()].filter((t) => t > now));
      free[w] = Math.max(free[w], now);
      continue;
    }
    const s = pending.splice(i, 1)[0];
    const end = now + seconds(s.id);
    finish.set(s.id, end);
    free[w] = end;
  }
  const total = plan.reduce((a, s) => a + seconds(s.id), 0);
  const chain = new Map<string, number>();
  for (const s of plan) chain.set(s.id, seconds(s.id) + Math.max(0, ...s.deps.map((d) => chain.get(d) ?? 0)));
  return { makespan: Math.max(...finish.values()), ideal: Math.max(total / workers, ...chain.values()) };
}
