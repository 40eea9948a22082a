/**
 * The evaluation thread of a training run (see background-eval.ts): rebuilds the model from
 * its description and compiles it with the run's masks and settings, then for each weight
 * snapshot it is sent evaluates validation and test and posts the point back, counting
 * answers on a shared counter the trainer can wait on.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { contextFor, loadNative, type RunSettings } from '../backend/index.js';
import { Dataset } from '../data/dataset.js';
import { buildModel } from '../nn/build.js';
import type { ModuleDesc } from '../nn/module.js';
import { compileProgram } from '../program/compile.js';

/** A data set as it crosses threads (a Dataset's fields; the arrays are in shared memory). */
export interface DatasetData {
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly sampleShape: readonly number[];
  readonly numClasses: number;
  readonly labelShape: readonly number[];
}

export interface WorkerInit {
  readonly model: ModuleDesc;
  readonly masks: Array<[string, Float32Array]>;
  readonly validation: DatasetData;
  readonly test: DatasetData;
  readonly settings: RunSettings;
  readonly port: MessagePort;
  /** Int32 [answers posted]. */
  readonly counter: SharedArrayBuffer;
}

export interface SnapshotMessage {
  readonly iteration: number;
  readonly state: Array<[string, Float32Array]>;
}

const init = workerData as WorkerInit;
const answered = new Int32Array(init.counter);
const answer = (message: object) => {
  init.port.postMessage(message);
  Atomics.add(answered, 0, 1);
  Atomics.notify(answered, 0);
};
const dataset = (d: DatasetData) => new Dataset(d.images, d.labels, d.sampleShape, d.numClasses, d.labelShape);

try {
  const context = contextFor(init.settings);
  // Leave the kernel thread pool to the trainer: this thread's kernels run on it alone.
  const loaded = loadNative();
  const native = init.settings.backend === 'native' && !(loaded instanceof Error) ? loaded : null;
  native?.serialThread();
  const model = buildModel(init.model);
  const validation = dataset(init.validation), test = dataset(init.test);
  const program = compileProgram(model, { masks: new Map(init.masks), optimizer: null, context, sampleShape: test.sampleShape });
  init.port.on('message', (msg: SnapshotMessage) => {
    try {
      program.load(new Map(msg.state));
      // While evaluating, this thread has a core to itself: the trainer's kernels use the cores left.
      native?.holdCore(true);
      let val, tst;
      try {
        val = program.evaluate(validation);
        tst = program.evaluate(test);
      } finally {
        native?.holdCore(false); // also when evaluation fails: the trainer gets its cores back
      }
      answer({ iteration: msg.iteration, valLoss: val.loss, valAccuracy: val.accuracy, testLoss: tst.loss, testAccuracy: tst.accuracy });
    } catch (e) {
      answer({ error: e instanceof Error ? e.message : String(e) });
    }
  });
} catch (e) {
  answer({ error: e instanceof Error ? e.message : String(e) });
}
