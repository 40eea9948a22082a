import type { Model } from '../nn/model.js';
import { CompactProgram } from './compact.js';
import { DenseMlpProgram } from './dense-mlp.js';
import { GraphProgram } from './graph.js';
import type { StateDict } from '../nn/module.js';
import type { CompileOptions, Program } from './program.js';
import { SparseMlpProgram } from './sparse-mlp.js';

/**
 * Compiles a model and its masks into the fastest program that runs them: the compact
 * program where the masks remove whole neurons or channels (structured pruning: the
 * smaller dense network they leave), the sparse-MLP program where the model is a chain of
 * Linear layers that all run sparse, the dense-MLP program where it is a chain of
 * Linear layers (both where the fused mode allows them), else the graph program, which
 * runs any model. The model's tensors are the starting point; pruned
 * weights are set to zero.
 */
export function compileProgram(model: Model, opts: CompileOptions): Program {
  return CompactProgram.compile(model, opts) ?? SparseMlpProgram.compile(model, opts) ?? DenseMlpProgram.compile(model, opts) ?? new GraphProgram(model, opts);
}

/**
 * `program` training with other masks from here on (dynamic sparse training): the same
 * program changed in place where it can (Program.setMasks), else the model compiled again
 * with the live weights and optimiser state. Either way, weights and optimiser state
 * outside the new masks are zero, and so are the `grown` entries: a dropped connection
 * leaves nothing behind and a grown one starts at zero with fresh moments (as SET and RigL
 * do). `live` is program.state() when the caller already has it; `dropped` is as in
 * Program.setMasks.
 */
export function withMasks(
  program: Program, model: Model, opts: CompileOptions, masks: ReadonlyMap<string, Float32Array>,
  grown?: ReadonlyMap<string, Int32Array>, live?: StateDict, dropped?: ReadonlyMap<string, Int32Array>,
): Program {
  if (program.setMasks) {
    program.setMasks(masks, grown, dropped);
    return program;
  }
  const weights = live ?? program.state();
  const optimizer = program.optimizerState();
  for (const [name, m] of masks) {
    const fresh = grown?.get(name);
    // Masks are 0/1: a product zeroes without a branch per entry.
    const zero = (a: Float32Array | undefined) => {
      if (!a) return;
      for (let i = 0; i < m.length; i++) a[i] *= m[i];
      if (fresh) for (const i of fresh) a[i] = 0;
    };
    zero(weights.get(name));
    for (const [k, a] of optimizer.arrays) if (k.startsWith(`${name}.`) && k.lastIndexOf('.') === name.length) zero(a);
  }
  model.loadState(weights, 'the live weights');
  const next = compileProgram(model, { ...opts, masks });
  next.loadOptimizerState(optimizer);
  return next;
}
