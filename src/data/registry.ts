import { LthError } from '../core/errors.js';
import { cifar10 } from './cifar.js';
import { fashionMnist, mnist } from './idx-datasets.js';
import { mobyDick } from './moby-dick.js';
import { sensor } from './sensor.js';
import { spam } from './spam.js';
import type { DatasetSpec } from './spec.js';

export type { DatasetSpec } from './spec.js';
export { NORMALIZATION } from './idx-datasets.js';

/** Every data set a user can name (--dataset): one file each (or a family per file), one line here. */
const DATASETS: readonly DatasetSpec[] = [
  mnist,
  fashionMnist,
  cifar10,
  spam,
  mobyDick,
  sensor,
];

export function datasetNames(): string[] {
  return DATASETS.map((d) => d.name);
}

export function getDataset(name: string): DatasetSpec {
  const spec = DATASETS.find((d) => d.name === name);
  if (!spec) throw new LthError(`Unknown dataset '${name}'. Known: ${datasetNames().join(', ')}`);
  return spec;
}
