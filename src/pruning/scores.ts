import { LthError } from '../core/errors.js';
import type { Model, StateDict } from '../nn/model.js';
import { linear, softmaxCrossEntropy } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import type { Mask } from './mask.js';

/**
 * Saliency scores of the pruning-at-initialisation methods, computed through the model's
 * own autograd graph (in evaluation mode: no dropout). Each returns, per masked weight,
 * a score >= 0 per entry; the strategy keeps the highest.
 */

/** `model` holding `state` with the masked entries of its weights set to zero (and |·| of everything when `abs`). */
function load(model: Model, state: StateDict, mask: Mask, abs = false): Model {
  model.loadState(state, 'pruning at initialisation');
  for (const [name, t] of model.namedParameters()) {
    const m = mask.get(name);
    for (let i = 0; i < t.size; i++) t.data[i] = m && m[i] === 0 ? 0 : abs ? Math.abs(t.data[i]) : t.data[i];
  }
  model.eval();
  return model;
}

/** |w ⊙ ∂L/∂w| per masked weight: SNIP's connection sensitivity (Lee et al., ICLR 2019), on one batch. */
export function snipScores(model: Model, theta: StateDict, mask: Mask, x: Tensor, labels: Int32Array): Map<string, Float32Array> {
  load(model, theta, mask);
  const loss = softmaxCrossEntropy(model.forward(x), labels);
  if (!Number.isFinite(loss.data[0])) throw new LthError(`snip: the loss at θ0 is ${loss.data[0]}`);
  loss.backward();
  return products(model, mask);
}

/**
 * SynFlow's synaptic saliency (Tanaka et al., NeurIPS 2020): with every parameter replaced
 * by its absolute value and an input of ones of `sampleShape`, R = Σ outputs, and the score
 * of a weight is |w ⊙ ∂R/∂w|. No data is used.
 */
export function synflowScores(model: Model, theta: StateDict, mask: Mask, sampleShape: readonly number[]): Map<string, Float32Array> {
  load(model, theta, mask, true);
  const size = sampleShape.reduce((a, b) => a * b, 1);
  const out = model.forward(new Tensor(new Float32Array(size).fill(1), [1, ...sampleShape]));
  // Σ outputs as a scalar op: the outputs times a weight of ones.
  const r = linear(out, new Tensor(new Float32Array(out.shape[1]).fill(1), [1, out.shape[1]]), null);
  if (!Number.isFinite(r.data[0])) throw new LthError(`synflow: R = ${r.data[0]} (the network's product of |weights| overflows float32)`);
  r.backward();
  return products(model, mask);
}

function products(model: Model, mask: Mask): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of model.namedParameters()) {
    if (!mask.has(name)) continue;
    const g = t.grad ?? new Float32Array(t.size);
    out.set(name, t.data.map((w, i) => Math.abs(w * g[i])));
  }
  return out;
}

/** The gradient of the mean loss of `model` (holding its current weights) on a batch, at logits divided by `temperature`, per masked weight. */
function gradients(model: Model, mask: Mask, x: Tensor, labels: Int32Array, temperature: number): Map<string, Float32Array> {
  for (const [, t] of model.namedParameters()) t.grad = null;
  let logits = model.forward(x);
  if (temperature !== 1) {
    const k = logits.shape[1];
    const scale = new Tensor(new Float32Array(k * k), [k, k]);
    for (let i = 0; i < k; i++) scale.data[i * k + i] = 1 / temperature;
    logits = linear(logits, scale, null);
  }
  const loss = softmaxCrossEntropy(logits, labels);
  if (!Number.isFinite(loss.data[0])) throw new LthError(`grasp: the loss at θ0 is ${loss.data[0]}`);
  loss.backward();
  const out = new Map<string, Float32Array>();
  for (const [name, t] of model.namedParameters()) if (mask.has(name)) out.set(name, Float32Array.from(t.grad ?? new Float32Array(t.size)));
  return out;
}

/**
 * GraSP's scores (Wang, Zhang & Grosse, ICLR 2020): θ ⊙ Hg per masked weight, g the
 * gradient of the loss at θ0 on one batch (logits at temperature `temperature`) and H the
 * Hessian there. GraSP removes the weights of lowest θ ⊙ Hg (its S = -θ ⊙ Hg highest): those
 * whose removal reduces the gradient flow least. Hg is the central difference of the
 * gradients at θ ± ε·g, with ε·|g| = 1e-3·|θ| (the graph has no second derivatives).
 */
export function graspScores(model: Model, theta: StateDict, mask: Mask, x: Tensor, labels: Int32Array, temperature = 200): Map<string, Float32Array> {
  load(model, theta, mask);
  const g = gradients(model, mask, x, labels, temperature);
  let gg = 0, tt = 0;
  for (const [name, v] of g) {
    const w = model.parameter(name).data;
    for (let i = 0; i < v.length; i++) { gg += v[i] * v[i]; tt += w[i] * w[i]; }
  }
  if (gg === 0) return new Map([...g].map(([n, v]) => [n, new Float32Array(v.length)]));
  const eps = 1e-3 * Math.sqrt(tt / gg);
  const shifted = (sign: number) => {
    load(model, theta, mask);
    for (const [name, v] of g) {
      const w = model.parameter(name).data, m = mask.get(name)!;
      for (let i = 0; i < v.length; i++) if (m[i] !== 0) w[i] += sign * eps * v[i];
    }
    return gradients(model, mask, x, labels, temperature);
  };
  const plus = shifted(1), minus = shifted(-1);
  const out = new Map<string, Float32Array>();
  for (const [name, v] of g) {
    const w = theta.get(name)!, m = mask.get(name)!, p = plus.get(name)!, q = minus.get(name)!;
    out.set(name, v.map((_, i) => (m[i] === 0 ? 0 : w[i] * ((p[i] - q[i]) / (2 * eps)))));
  }
  return out;
}
