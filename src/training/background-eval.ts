import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { RunContext } from '../backend/index.js';
import { LthError } from '../core/errors.js';
import type { Dataset, Splits } from '../data/dataset.js';
import type { Model, StateDict } from '../nn/model.js';
import type { DatasetData, SnapshotMessage, WorkerInit } from './eval-worker.js';
import type { EvalPoint } from './curve.js';

/** Seconds the trainer waits for the evaluation thread's next answer before giving up. */
const ANSWER_TIMEOUT_S = 300;
/**
 * Snapshots that may wait for evaluation; the trainer blocks beyond this, which bounds
 * memory (a LeNet snapshot is 1 MB) when evaluation is the slower side (dense levels).
 */
const MAX_PENDING = 8;

/**
 * Evaluates snapshots of a model on validation and test in a worker thread while training
 * goes on, so evaluation (about as much work as training in the paper's protocol: 15,000
 * samples every 100 iterations of 60) takes the second core instead of the trainer's
 * time. The worker compiles the same model (rebuilt from its description, with the same
 * masks and run settings) into the same program, on kernels whose results do not depend
 * on the thread they run on, so the points are the ones a synchronous evaluation gives;
 * they come back in order. The data sets live in shared memory: the worker reads them
 * without a copy.
 * The trainer stays synchronous: it polls for answers and, at the end, blocks on a shared
 * counter (Atomics.wait) until every snapshot is answered.
 *
 * While the worker evaluates, it holds a core (holdCore): the trainer's kernels use only
 * the cores left (one thread on 2 cores), and all their threads again while the worker
 * waits for the next snapshot.
 * Measured on 2 cores, LeNet-300-100, 6,000 iterations evaluated every 100 (s per
 * 50,000-iteration level): dense 63-69 with the trainer on 1 thread against 69-89 on 2
 * (the pool's threads and the worker fight over the cores) or 69-84 evaluating
 * synchronously on 2; at 3.5% density 23 against 31-35.
 */
export class BackgroundEvaluator {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly answered: Int32Array;
  private submitted = 0;
  private received = 0;
  /** Answers received but not yet returned by poll() or finish(). */
  private readonly ready: EvalPoint[] = [];

  /** Whether evaluating `points` times in the background pays for starting a thread. */
  static worthwhile(points: number, context: RunContext): boolean {
    return points >= 20 && context.settings.threads >= 2;
  }

  constructor(model: Model, masks: ReadonlyMap<string, Float32Array> | undefined, data: Splits, context: RunContext) {
    const { port1, port2 } = new MessageChannel();
    const counter = new SharedArrayBuffer(4);
    const init: WorkerInit = {
      model: model.describe(), masks: [...(masks ?? [])].map(([n, m]) => [n, Float32Array.from(m)]),
      validation: plain(data.validation), test: plain(data.test), settings: context.settings, port: port2, counter,
    };
    this.worker = new Worker(new URL('./eval-worker.js', import.meta.url), { workerData: init, transferList: [port2] });
    this.worker.unref();
    this.port = port1;
    this.answered = new Int32Array(counter);
  }

  /** Sends a snapshot of the weights (a state the evaluator takes over), to be evaluated as the point of `iteration`. */
  submit(iteration: number, snapshot: StateDict): void {
    while (this.submitted - this.received >= MAX_PENDING) this.waitForAnswer();
    const state = [...snapshot];
    const message: SnapshotMessage = { iteration, state };
    this.port.postMessage(message, state.map(([, v]) => v.buffer as ArrayBuffer));
    this.submitted++;
  }

  /** The points answered so far, without waiting. */
  poll(): EvalPoint[] {
    this.receive();
    return this.ready.splice(0);
  }

  /** Waits for every submitted snapshot and returns the points not yet returned by poll(). */
  finish(): EvalPoint[] {
    while (this.received < this.submitted) this.waitForAnswer();
    return this.ready.splice(0);
  }

  private receive(): void {
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) this.ready.push(this.point(m.message));
  }

  /** Blocks until at least one more answer has been received. */
  private waitForAnswer(): void {
    const before = this.received;
    while (this.received === before) {
      const seen = Atomics.load(this.answered, 0);
      if (seen <= this.received && Atomics.wait(this.answered, 0, seen, ANSWER_TIMEOUT_S * 1000) === 'timed-out') {
        throw new LthError(`the evaluation thread did not answer for ${ANSWER_TIMEOUT_S} s`);
      }
      this.receive();
    }
  }

  /** Stops the thread (also after an error). */
  close(): void {
    this.port.close();
    void this.worker.terminate();
  }

  private point(message: unknown): EvalPoint {
    this.received++;
    const m = message as EvalPoint | { error: string };
    if ('error' in m) throw new LthError(`evaluation thread: ${m.error}`);
    return m;
  }
}

function plain(d: Dataset): DatasetData {
  return { images: d.images, labels: d.labels, sampleShape: d.sampleShape, numClasses: d.numClasses, labelShape: d.labelShape };
}
