import { Tensor, noGrad } from './tensor.js';

/**
 * Compares the analytic gradient of scalar `f` with respect to each input with a
 * central finite difference, at up to `samples` entries per input. Returns the
 * largest relative error, |analytic - numeric| / max(1, |analytic|, |numeric|).
 */
export function gradCheck(f: () => Tensor, inputs: Tensor[], { eps = 1e-2, samples = 20 } = {}): number {
  for (const t of inputs) t.grad = null;
  f().backward();
  let worst = 0;
  for (const t of inputs) {
    const analytic = t.grad ? Float32Array.from(t.grad) : new Float32Array(t.size);
    const step = Math.max(1, Math.floor(t.size / samples));
    for (let i = 0; i < t.size; i += step) {
      const orig = t.data[i];
      t.data[i] = orig + eps;
      const plus = noGrad(() => f().data[0]);
      t.data[i] = orig - eps;
      const minus = noGrad(() => f().data[0]);
      t.data[i] = orig;
      const numeric = (plus - minus) / (2 * eps);
      const err = Math.abs(analytic[i] - numeric) / Math.max(1, Math.abs(analytic[i]), Math.abs(numeric));
      worst = Math.max(worst, err);
    }
  }
  return worst;
}
