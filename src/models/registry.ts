import { LthError } from '../core/errors.js';
import { convSpecs } from './conv.js';
import { lenet300100 } from './lenet.js';
import type { ModelSpec } from './spec.js';

export type { ModelSpec, TrainingDefaults } from './spec.js';

/** Every model a user can name (--model): one file each (or a family per file), one line here. */
const MODELS: readonly ModelSpec[] = [
  lenet300100,
  ...convSpecs(),
];

export function modelNames(): string[] {
  return MODELS.map((m) => m.name);
}

export function getModel(name: string): ModelSpec {
  const spec = MODELS.find((m) => m.name === name);
  if (!spec) throw new LthError(`Unknown model '${name}'. Known: ${modelNames().join(', ')}`);
  return spec;
}
