import type { Model } from '../nn/model.js';
import { GraphProgram } from './graph.js';
import type { CompileOptions, Program } from './program.js';
import { SparseMlpProgram } from './sparse-mlp.js';

/**
 * Compiles a model and its masks into the fastest program that runs them: the sparse-MLP
 * program where the model is a chain of Linear layers that all run sparse (and the fused
 * mode allows it), else the graph program, which runs any model. The model's tensors are
 * the starting point; pruned weights are set to zero.
 */
export function compileProgram(model: Model, opts: CompileOptions): Program {
  return SparseMlpProgram.compile(model, opts) ?? new GraphProgram(model, opts);
}
