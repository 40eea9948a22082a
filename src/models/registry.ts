import { LthError } from '../core/errors.js';
import { cifarResnetSpecs } from './cifar-resnet.js';
import { cifarVggSpecs } from './cifar-vgg.js';
import { convSpecs } from './conv.js';
import { lenet300100 } from './lenet.js';
import { sequenceSpecs } from './sequence.js';
import type { ModelSpec } from './spec.js';
import { getDataset } from '../data/registry.js';

export type { ModelSpec, TrainingDefaults } from './spec.js';

/** Every model a user can name (--model): one file each (or a family per file), one line here. */
const MODELS: readonly ModelSpec[] = [
  lenet300100,
  ...convSpecs(),
  ...cifarResnetSpecs(),
  ...cifarVggSpecs(),
  ...sequenceSpecs(),
];

export function modelNames(): string[] {
  return MODELS.map((m) => m.name);
}

/**
 * The model `name`; with a data set, built for its samples: a model that takes images gets
 * the data set's images (a flat data set's `imageShape`: MNIST's 1×28×28), sized for them.
 */
export function getModel(name: string, dataset?: string): ModelSpec {
  const spec = MODELS.find((m) => m.name === name);
  if (!spec) throw new LthError(`Unknown model '${name}'. Known: ${modelNames().join(', ')}`);
  if (dataset === undefined) return spec;
  const d = getDataset(dataset);
  if (!spec.input || !spec.forInput) {
    // A model of flat samples or of sequences is built for its own data set's samples and classes.
    const own = getDataset(spec.training.dataset);
    if (d.sampleShape.join('x') !== own.sampleShape.join('x') || d.numClasses !== own.numClasses) {
      throw new LthError(`${name} takes samples like ${own.name}'s ([${own.sampleShape.join(', ')}], ${own.numClasses} classes); ${dataset}'s are [${d.sampleShape.join(', ')}] with ${d.numClasses} classes`);
    }
    return spec;
  }
  const images = d.sampleShape.length === 3 ? d.sampleShape : d.imageShape;
  if (!images) throw new LthError(`${name} takes images; ${dataset}'s samples are [${d.sampleShape.join(', ')}], not channels × height × width`);
  return images.join('x') === spec.input.join('x') ? spec : spec.forInput(images);
}
