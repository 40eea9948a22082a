/**
 * The evaluation thread of a training run (see background-eval.ts): rebuilds the model,
 * then for each weight snapshot it is sent evaluates validation and test and posts the
 * point back, counting answers on a shared counter the trainer can wait on.
 */
import { workerData, type MessagePort } from 'node:worker_threads';
import { loadNative } from '../backend/index.js';
import { Dataset } from '../data/dataset.js';
import { getModel } from '../models/registry.js';
import { evaluate } from './train.js';

/** A data set as it crosses threads (a Dataset's fields). */
export interface DatasetData {
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly sampleShape: readonly number[];
  readonly numClasses: number;
}

export interface WorkerInit {
  readonly modelName: string;
  readonly masks: Array<[string, Float32Array]>;
  readonly validation: DatasetData;
  readonly test: DatasetData;
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
const dataset = (d: DatasetData) => new Dataset(d.images, d.labels, d.sampleShape, d.numClasses);

try {
  // Leave the kernel thread pool to the trainer: this thread's kernels run on it alone.
  const loaded = loadNative();
  const native = loaded instanceof Error ? null : loaded;
  native?.serialThread();
  const model = getModel(init.modelName).build();
  if (init.masks.length) model.setMasks(new Map(init.masks));
  const validation = dataset(init.validation), test = dataset(init.test);
  init.port.on('message', (msg: SnapshotMessage) => {
    try {
      model.loadState(new Map(msg.state));
      // While evaluating, this thread has a core to itself: the trainer's kernels use the cores left.
      native?.holdCore(true);
      let val, tst;
      try {
        val = evaluate(model, validation);
        tst = evaluate(model, test);
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
