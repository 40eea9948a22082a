import { Conv2d, Linear } from './layers.js';
import type { Model } from './model.js';
import type { Module } from './module.js';
import { Tensor, noGrad } from '../tensor/tensor.js';

/**
 * Compute accounting: the multiply-accumulates (MACs) of one sample's forward pass at each
 * weight of a network, and from them the FLOPs of a training step. The convention (as the
 * RigL paper's): 2 FLOPs a MAC; a training step is the forward pass, the input gradient
 * (except at the first layer, whose input needs none) and the weight gradient, each as
 * many MACs as the forward pass; biases, activations, the loss and the optimiser's update
 * are left out (under 1% of LeNet's or Conv-2's step). A weight computed on sparse
 * kernels costs its nonzeros' share; a masked weight computed dense costs all of it.
 */

/** One weight's MACs per sample and whether its layer is the network's first. */
export interface WeightMacs {
  readonly name: string;
  readonly macs: number;
  readonly first: boolean;
}

/** weightMacs' result per model, for the sample shape `key`. */
const counted = new WeakMap<Model, { key: string; macs: readonly WeightMacs[] }>();

/**
 * The forward MACs per sample of every weight of `model`, in the order the forward pass
 * finishes with them, found by running one zero sample of `sampleShape` through it with the
 * forward of each Linear, Conv2d and module that counts its own weights (Module.weightMacs:
 * the sequence layers) wrapped to note its call, so any composition of modules counts. A
 * conv's cost depends on its output's size; a Linear's on its rows per sample (1, or every
 * position of a sequence).
 */
export function weightMacs(model: Model, sampleShape: readonly number[]): readonly WeightMacs[] {
  // A model's layers do not change after it is built: train() and each program it compiles
  // (again after every mask update of dynamic sparse training) share one pass.
  const key = sampleShape.join(',');
  const known = counted.get(model);
  if (known?.key === key) return known.macs;
  const out: WeightMacs[] = [];
  const training = model.training;
  const wrapped: Module[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!(m instanceof Linear || m instanceof Conv2d || m.weightMacs)) continue;
    const forward = m.forward.bind(m);
    const note = (name: string, macs: number) => out.push({ name: path ? `${path}.${name}` : name, macs, first: out.length === 0 });
    m.forward = (x: Tensor) => {
      const y = forward(x);
      if (m instanceof Linear) note('weight', m.weight.size * y.shape[0]);
      else if (m instanceof Conv2d) note('weight', m.weight.size * (y.size / y.shape[1]));
      else for (const [name, macs] of m.weightMacs!(x, y)) note(name, macs);
      return y;
    };
    // Each module on its own: a fused pair (Module.fusedWith) would skip the wrapped forward.
    (m as { fusedWith?: unknown }).fusedWith = undefined;
    wrapped.push(m);
  }
  model.eval();
  try {
    noGrad(() => model.forward(Tensor.zeros([1, ...sampleShape])));
  } finally {
    // The instance's own forward and fusedWith shadowed the class's: deleting them restores the class's.
    for (const m of wrapped) {
      delete (m as { forward?: unknown }).forward;
      delete (m as { fusedWith?: unknown }).fusedWith;
    }
    model.train(training);
  }
  counted.set(model, { key, macs: out });
  return out;
}

/** A training step's FLOPs per sample: as computed (`actual`) and for the same network dense (`dense`). */
export interface StepFlops {
  readonly actual: number;
  readonly dense: number;
}

/**
 * The FLOPs per sample of one training step of a network whose weights have the MACs
 * `macs`: `density` gives a masked weight's share of nonzeros, and the weights in `sparse`
 * are computed at their nonzeros only (the others cost the whole dense layer).
 */
export function stepFlops(macs: readonly WeightMacs[], density: ReadonlyMap<string, number>, sparse: ReadonlySet<string>): StepFlops {
  let actual = 0, dense = 0;
  for (const w of macs) {
    const passes = w.first ? 2 : 3;
    dense += 2 * passes * w.macs;
    actual += 2 * passes * w.macs * (sparse.has(w.name) ? (density.get(w.name) ?? 1) : 1);
  }
  return { actual, dense };
}

/** The share of ones of each mask. */
export function maskDensities(masks: ReadonlyMap<string, Float32Array> | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const [n, m] of masks ?? []) {
    // Masks are 0/1.
    let k = 0;
    for (let i = 0; i < m.length; i++) k += m[i];
    out.set(n, m.length ? k / m.length : 0);
  }
  return out;
}
