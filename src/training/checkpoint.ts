import fs from 'node:fs';
import path from 'node:path';
import { LthError, check } from '../core/errors.js';
import { stableStringify } from '../core/hparams.js';
import type { RngState } from '../core/rng.js';
import { formatStep, parseStep, stepToIterations, type Step } from '../core/steps.js';
import type { StateDict } from '../nn/module.js';
import type { OptimizerState } from '../nn/optim.js';
import { sha256File, writeJsonAtomic } from '../store/atomic.js';
import { loadSafetensors, saveSafetensors, type NamedTensor } from '../store/safetensors.js';
import type { EvalPoint } from './curve.js';
import type { MaskScheduleState } from './mask-schedule.js';

/**
 * Checkpoints within a training run: everything training carries from one run of steps to
 * the next, so that a run resumed from one (in this process or another, on this machine or
 * another with the same run settings) goes on to the same bytes as one never interrupted.
 * That is: the live weights (Program.state), the optimiser's state and step count
 * (Program.optimizerState), the positions of the model's random streams (dropout,
 * Module.randomState), the curve so far (evaluation delivered up to the checkpoint's
 * iteration, so the early-stop point follows from it) and the kept rewind weights once
 * taken. The data order needs nothing: epoch e's is drawn from (seed, 'data', e), and a
 * resumed run draws it again. train() takes and resumes them; a lottery stage keeps them in
 * its directory (writeCheckpoint, readCheckpoint).
 */
export interface TrainCheckpoint {
  /** The iteration training resumes at: every update before it is made. */
  readonly iteration: number;
  /** Which program made it ('graph', 'sparse_mlp'). */
  readonly program: string;
  /** The live parameters and buffers (Program.state()). */
  readonly weights: StateDict;
  readonly optimizer: OptimizerState;
  /** The model's random streams by module path (Module.randomState()). */
  readonly random: Readonly<Record<string, RngState>>;
  /** Every evaluation point up to `iteration`, in order. */
  readonly curve: readonly EvalPoint[];
  /** The weights kept at keepStateAt (rewind weights), once training has passed it. */
  readonly keptState?: StateDict;
  /** Training time so far (seconds, evaluations included), summed over the processes that trained it. */
  readonly seconds: number;
  /** The training's FLOPs so far (TrainResult.flops). */
  readonly flops?: { readonly actual: number; readonly dense: number };
  /** With a mask schedule: the masks trained with at `iteration`, and the schedule's own state. */
  readonly masks?: StateDict;
  readonly schedule?: MaskScheduleState;
}

// ---------------------------------------------------------------------------------------
// --checkpoint-every

/** The default of --checkpoint-every: at the first epoch's end at least 10 minutes after the last checkpoint (or the start). */
export const CHECKPOINT_EVERY_DEFAULT = '1ep+10min';

/**
 * When checkpoints are taken (--checkpoint-every): at multiples of `step` (absolute
 * iterations, counted from the start of the schedule), and only once `seconds` have passed
 * since the last checkpoint (or since training started in this process). Either may be
 * missing: a step alone takes one at every multiple, a duration alone at the first run of
 * steps ending after it (runs end at evaluation points and epochs' ends).
 */
export interface CheckpointEvery {
  readonly step: Step | null;
  readonly seconds: number | null;
}

const DURATION_RE = /^(\d+(?:\.\d+)?)(s|min|h)$/;
const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, min: 60, h: 3600 };
const SYNTAX = "expected a step ('1ep', '500it', '2ep100it'), a duration ('30s', '10min', '1.5h'), both joined by '+' ('1ep+10min': the first step multiple at least that long after the last checkpoint), or 'off'";

/** Parses --checkpoint-every: null for 'off'. Errors are LthErrors naming `what`. */
export function parseCheckpointEvery(text: string, what = '--checkpoint-every'): CheckpointEvery | null {
  const t = text.trim();
  if (t === 'off') return null;
  let step: Step | null = null, seconds: number | null = null;
  const parts = t.split('+').map((p) => p.trim());
  for (const part of parts) {
    const d = DURATION_RE.exec(part);
    if (d) {
      if (seconds !== null) throw new LthError(`${what}: two durations in '${text}'; ${SYNTAX}`);
      seconds = Number(d[1]) * UNIT_SECONDS[d[2]];
      continue;
    }
    let s: Step;
    try {
      s = parseStep(part, what);
    } catch {
      throw new LthError(`${what}: cannot parse '${text}'; ${SYNTAX}`);
    }
    if (step !== null) throw new LthError(`${what}: two steps in '${text}'; ${SYNTAX}`);
    if (s.epochs === 0 && s.iterations === 0) throw new LthError(`${what}: the step must be at least one iteration, got '${part}'`);
    step = s;
  }
  if (parts.length > 2 || (step === null && seconds === null)) throw new LthError(`${what}: cannot parse '${text}'; ${SYNTAX}`);
  return { step, seconds };
}

/** The canonical text of a parsed --checkpoint-every ('off', '1ep', '600s', '1ep+600s'). */
export function formatCheckpointEvery(every: CheckpointEvery | null): string {
  if (!every) return 'off';
  return [every.step ? formatStep(every.step) : null, every.seconds !== null ? `${every.seconds}s` : null].filter(Boolean).join('+');
}

/**
 * When a training run takes its checkpoints: at the end of a run of steps (train() also ends
 * runs at the step's multiples, which changes no number: a run of steps gives the bytes of
 * one step a call) where the step and the time since the last checkpoint allow.
 */
export class CheckpointSchedule {
  private readonly stepIterations: number | null;
  private lastMs: number;

  /** `nowMs`: the clock's reading when training starts (or resumes) in this process. */
  constructor(private readonly every: CheckpointEvery, perEpoch: number, nowMs: number) {
    this.stepIterations = every.step ? stepToIterations(every.step, perEpoch) : null;
    check(this.stepIterations === null || this.stepIterations >= 1, `--checkpoint-every ${formatCheckpointEvery(every)}: the step is 0 iterations with ${perEpoch} iterations per epoch`);
    this.lastMs = nowMs;
  }

  /** Where a run of steps starting at `it` must end at the latest: the next multiple of the step (Infinity without one). */
  boundaryAfter(it: number): number {
    const s = this.stepIterations;
    return s === null ? Infinity : (Math.floor(it / s) + 1) * s;
  }

  /** Whether to take a checkpoint at `it`, the end of a run of steps, at clock reading `nowMs`. */
  due(it: number, nowMs: number): boolean {
    if (this.stepIterations !== null && it % this.stepIterations !== 0) return false;
    return this.every.seconds === null || nowMs - this.lastMs >= this.every.seconds * 1000;
  }

  /** A checkpoint was taken at clock reading `nowMs`. */
  taken(nowMs: number): void {
    this.lastMs = nowMs;
  }
}

// ---------------------------------------------------------------------------------------
// In a stage's directory

/**
 * The files of a stage's checkpoint: checkpoint.json (written last: the checkpoint exists
 * once it does) names the tensors file it goes with, checkpoint-<iteration>.safetensors,
 * and its SHA-256.
 */
export const CHECKPOINT_JSON = 'checkpoint.json';
const FORMAT = 'lth-checkpoint-1';
const TENSORS_RE = /^checkpoint-(\d+)\.safetensors$/;

export function checkpointTensorsFile(iteration: number): string {
  return `checkpoint-${iteration}.safetensors`;
}

/** Whether a stage directory's file belongs to a checkpoint (never one of the stage's results). */
export function isCheckpointFile(name: string): boolean {
  return name === CHECKPOINT_JSON || TENSORS_RE.test(name);
}

/**
 * What must be the same for a checkpoint to be resumed: plain JSON values by name (for a
 * lottery stage: its id, the run's hash, the budget, the lth version, the run settings,
 * the checksums of the files it starts from). A checkpoint made under other values is
 * ignored, with a warning naming them.
 */
export type CheckpointIdentity = Readonly<Record<string, unknown>>;

/** What readCheckpoint expects in the tensors file besides the weights' names: every tensor's name and size. */
export interface CheckpointExpectation {
  /** The parameters and buffers by name, with their sizes. */
  readonly weights: ReadonlyMap<string, number>;
  /** The optimiser's state arrays by name (`<parameter>.<state name>`), with their sizes. */
  readonly optimizer: ReadonlyMap<string, number>;
}

interface CheckpointJson {
  format: string;
  identity: Record<string, unknown>;
  iteration: number;
  program: string;
  optimizerSteps: number;
  random: Record<string, RngState>;
  curve: Array<Record<keyof EvalPoint, number | string>>;
  rewind: boolean;
  seconds: number;
  flops?: { actual: number; dense: number };
  /** The mask schedule's JSON state, when there is one (its arrays are schedule/* tensors, the masks masks/*). */
  schedule?: { json: unknown };
  tensors: { file: string; sha256: string };
}

/**
 * Writes a checkpoint into `dir`, atomically: the tensors (weights, optimiser state and
 * kept rewind weights, with the model's shapes) to checkpoint-<iteration>.safetensors,
 * then checkpoint.json, then removes the tensors files of earlier checkpoints. Whatever
 * moment the process is killed at, checkpoint.json names a whole tensors file: the new
 * checkpoint's or the previous one's.
 */
export function writeCheckpoint(dir: string, identity: CheckpointIdentity, cp: TrainCheckpoint, shapes: ReadonlyMap<string, readonly number[]>): void {
  const tensors = new Map<string, NamedTensor>();
  const shaped = (name: string, data: Float32Array) => ({ shape: shapes.get(name) ?? [data.length], data });
  for (const [n, v] of cp.weights) tensors.set(`weights/${n}`, shaped(n, v));
  for (const [n, v] of cp.optimizer.arrays) tensors.set(`optimizer/${n}`, shaped(n.slice(0, n.lastIndexOf('.')), v));
  for (const [n, v] of cp.keptState ?? []) tensors.set(`rewind/${n}`, shaped(n, v));
  for (const [n, v] of cp.masks ?? []) tensors.set(`masks/${n}`, shaped(n, v));
  for (const [n, v] of cp.schedule?.arrays ?? []) tensors.set(`schedule/${n}`, { shape: [v.length], data: v });
  const file = checkpointTensorsFile(cp.iteration);
  saveSafetensors(path.join(dir, file), tensors);
  const json: CheckpointJson = {
    format: FORMAT, identity: { ...identity }, iteration: cp.iteration, program: cp.program, optimizerSteps: cp.optimizer.steps,
    random: { ...cp.random }, curve: cp.curve.map(encodePoint), rewind: cp.keptState !== undefined, seconds: cp.seconds,
    ...(cp.flops ? { flops: { ...cp.flops } } : {}), ...(cp.schedule ? { schedule: { json: cp.schedule.json } } : {}),
    tensors: { file, sha256: sha256File(path.join(dir, file)) },
  };
  writeJsonAtomic(path.join(dir, CHECKPOINT_JSON), json);
  for (const name of fs.readdirSync(dir)) {
    const m = TENSORS_RE.exec(name);
    if (m && Number(m[1]) < cp.iteration) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** The outcome of looking for a stage's checkpoint. */
export type CheckpointFound =
  | { readonly kind: 'none' }
  | { readonly kind: 'ignored'; readonly reason: string }
  | { readonly kind: 'resume'; readonly checkpoint: TrainCheckpoint };

/**
 * The checkpoint in `dir`, if there is one: 'none' without checkpoint.json; 'ignored' (with
 * why) when it was made under another identity (e.g. other run settings, another lth
 * version) or in another format; else the checkpoint, checked whole. A damaged checkpoint
 * (checkpoint.json unreadable, its tensors file missing, changed or incomplete) is an
 * LthError saying so and how to start the stage over: nothing is trained from it, and hours
 * of training are not thrown away silently either.
 */
export function readCheckpoint(dir: string, identity: CheckpointIdentity, expected: CheckpointExpectation): CheckpointFound {
  const jsonFile = path.join(dir, CHECKPOINT_JSON);
  if (!fs.existsSync(jsonFile)) return { kind: 'none' };
  const damaged = (what: string) => new LthError(`the checkpoint in ${dir} is damaged: ${what}. Delete ${jsonFile} to train the stage from its start`);
  let json: CheckpointJson;
  try {
    json = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as CheckpointJson;
  } catch (e) {
    throw damaged(`${CHECKPOINT_JSON} is not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw damaged(`${CHECKPOINT_JSON} is not a checkpoint`);
  if (json.format !== FORMAT) return { kind: 'ignored', reason: `it is in another format (${JSON.stringify(json.format)}, this lth writes ${FORMAT})` };
  if (!json.identity || typeof json.identity !== 'object') throw damaged(`${CHECKPOINT_JSON} has no identity`);
  const differs = [...new Set([...Object.keys(identity), ...Object.keys(json.identity)])].sort()
    .filter((k) => stableStringify(identity[k]) !== stableStringify(json.identity[k]));
  if (differs.length) {
    const was = (k: string) => describeValue(json.identity[k]), now = (k: string) => describeValue(identity[k]);
    return { kind: 'ignored', reason: `it was made with ${differs.map((k) => `${k} ${was(k)} (now ${now(k)})`).join(', ')}` };
  }
  const wellFormed = Number.isInteger(json.iteration) && json.iteration >= 0 && typeof json.program === 'string'
    && Number.isInteger(json.optimizerSteps) && json.optimizerSteps >= 0 && json.random !== null && typeof json.random === 'object'
    && Array.isArray(json.curve) && typeof json.rewind === 'boolean' && typeof json.seconds === 'number'
    && json.tensors !== null && typeof json.tensors === 'object' && typeof json.tensors.file === 'string' && typeof json.tensors.sha256 === 'string';
  if (!wellFormed) throw damaged(`${CHECKPOINT_JSON} lacks a field or has one of the wrong type`);
  if (!TENSORS_RE.test(json.tensors.file)) throw damaged(`${CHECKPOINT_JSON} names ${JSON.stringify(json.tensors.file)}, not a checkpoint's tensors file`);
  const tensorsFile = path.join(dir, json.tensors.file);
  if (!fs.existsSync(tensorsFile)) throw damaged(`${json.tensors.file} is missing`);
  if (sha256File(tensorsFile) !== json.tensors.sha256) throw damaged(`${json.tensors.file} has changed (its SHA-256 differs from the one in ${CHECKPOINT_JSON})`);
  let curve: EvalPoint[];
  try {
    curve = json.curve.map(decodePoint);
  } catch (e) {
    throw damaged(`its curve: ${(e as Error).message}`);
  }
  if (curve.length === 0 || curve.some((p, i) => p.iteration > json.iteration || (i > 0 && p.iteration <= curve[i - 1].iteration))) {
    throw damaged(`its curve is not a run of evaluations up to iteration ${json.iteration}`);
  }
  const all = loadSafetensors(tensorsFile);
  const group = (prefix: string, sizes: ReadonlyMap<string, number>): Map<string, Float32Array> => {
    const out = new Map<string, Float32Array>();
    for (const [n, t] of all) if (n.startsWith(prefix)) out.set(n.slice(prefix.length), t.data);
    const missing = [...sizes.keys()].filter((n) => !out.has(n)), unexpected = [...out.keys()].filter((n) => !sizes.has(n));
    if (missing.length || unexpected.length) {
      throw damaged(`${json.tensors.file}: ${[missing.length ? `missing ${prefix}${missing.join(`, ${prefix}`)}` : '', unexpected.length ? `unexpected ${prefix}${unexpected.join(`, ${prefix}`)}` : ''].filter(Boolean).join('; ')}`);
    }
    for (const [n, size] of sizes) if (out.get(n)!.length !== size) throw damaged(`${json.tensors.file}: ${prefix}${n} has ${out.get(n)!.length} values, expected ${size}`);
    return out;
  };
  const weights = group('weights/', expected.weights);
  const optimizer = group('optimizer/', expected.optimizer);
  const kept = group('rewind/', json.rewind ? expected.weights : new Map());
  const prefixed = (prefix: string) => new Map([...all].filter(([n]) => n.startsWith(prefix)).map(([n, t]) => [n.slice(prefix.length), t.data]));
  const masks = prefixed('masks/'), scheduleArrays = prefixed('schedule/');
  for (const n of all.keys()) if (!/^(weights|optimizer|rewind|masks|schedule)\//.test(n)) throw damaged(`${json.tensors.file}: unexpected tensor ${n}`);
  if (json.flops !== undefined && !(json.flops && typeof json.flops.actual === 'number' && typeof json.flops.dense === 'number')) throw damaged(`${CHECKPOINT_JSON}: flops is not {actual, dense}`);
  return {
    kind: 'resume',
    checkpoint: {
      iteration: json.iteration, program: json.program, weights, optimizer: { steps: json.optimizerSteps, arrays: optimizer },
      random: json.random, curve, keptState: json.rewind ? kept : undefined, seconds: json.seconds,
      ...(json.flops ? { flops: json.flops } : {}),
      ...(json.schedule ? { masks, schedule: { json: json.schedule.json, arrays: scheduleArrays } } : {}),
    },
  };
}

/** The iteration of the checkpoint in `dir` (read from checkpoint.json), or null when there is none or it cannot be read. */
export function checkpointIteration(dir: string): number | null {
  try {
    const it = (JSON.parse(fs.readFileSync(path.join(dir, CHECKPOINT_JSON), 'utf8')) as CheckpointJson).iteration;
    return Number.isInteger(it) ? it : null;
  } catch {
    return null;
  }
}

/**
 * Removes a stage's checkpoint (once the stage has committed its done.json, or to start it
 * over): checkpoint.json first, so a checkpoint is never half there, then every tensors file.
 */
export function removeCheckpoint(dir: string): void {
  if (!fs.existsSync(dir)) return;
  fs.rmSync(path.join(dir, CHECKPOINT_JSON), { force: true });
  for (const name of fs.readdirSync(dir)) if (TENSORS_RE.test(name)) fs.rmSync(path.join(dir, name), { force: true });
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'unset';
  if (v !== null && typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${typeof x === 'string' && x.length > 16 ? `${x.slice(0, 12)}…` : String(x)}`).join(' ');
  }
  return String(v);
}

// JSON has no NaN, infinities or -0: a curve's numbers (a loss may be NaN) go as strings then.
function encodeNumber(x: number): number | string {
  return Number.isFinite(x) && !Object.is(x, -0) ? x : String(x === 0 ? '-0' : x);
}

function decodeNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  if (v === '-0') return -0;
  throw new Error(`${JSON.stringify(v)} is not a number`);
}

const POINT_KEYS = ['iteration', 'valLoss', 'valAccuracy', 'testLoss', 'testAccuracy'] as const;

function encodePoint(p: EvalPoint): Record<keyof EvalPoint, number | string> {
  return Object.fromEntries(POINT_KEYS.map((k) => [k, encodeNumber(p[k])])) as Record<keyof EvalPoint, number | string>;
}

function decodePoint(o: unknown): EvalPoint {
  if (!o || typeof o !== 'object') throw new Error('a point is not an object');
  const r = o as Record<string, unknown>;
  const p = Object.fromEntries(POINT_KEYS.map((k) => [k, decodeNumber(r[k])])) as unknown as EvalPoint;
  if (!Number.isInteger(p.iteration) || p.iteration < 0) throw new Error(`iteration ${String(r.iteration)} is not an iteration`);
  return p;
}
