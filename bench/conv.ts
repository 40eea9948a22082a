/**
 * Conv-net training-step benchmark: the median time of one training step of a CIFAR-10
 * model — Conv-2/4/6 (batch 60, Adam) or a ResNet/VGG with batch norm (cifar_resnet_20,
 * cifar_vgg_16, ...: batch 128, SGD with momentum and weight decay), forward, softmax
 * cross-entropy, backward, the model's optimiser — on the current backend (native unless
 * LTH_BACKEND says otherwise).
 *
 *   node dist/bench/conv.js [--model conv2] [--batch B] [--steps 10] [--warmup 3] [--threads N]
 *                           [--kernels] [--cpu] [--vs-torch [--rounds N]] [--json]
 *
 * The batch is fixed random data (no CIFAR files needed); weights are the model's θ0
 * (seed 0), in training mode. Each step runs in a BufferArena as the graph program's do
 * (its tensors reuse the previous step's buffers), is timed on its own and split into
 * forward (incl. loss), backward and optimiser; the figures are medians over --steps steps
 * after --warmup untimed ones. --kernels also totals the time spent in each backend kernel
 * (wrapping them adds a little overhead). --cpu times everything in the process's CPU time
 * (user + system, all threads; with --kernels a few microseconds per call more) instead of
 * wall-clock time: on a machine other jobs share, one thread's CPU time moves far less
 * than its wall time (not with --vs-torch: PyTorch's step is wall-clock time). --vs-torch
 * then runs bench/torch_conv2.py (or bench/torch_cifar.py for the ResNets and VGGs; not
 * concurrently) with the same model,
 * batch and optimiser, at 1 thread and at all cores with OpenBLAS on this CPU's own
 * kernels (bench/torch.ts), and prints the ratio lth/torch of the median step times
 * against the faster. --rounds N times lth's steps and PyTorch's in turn N times and
 * reports the median of the rounds' ratios (and of their step times): on a machine others
 * share, one round's ratio moves with the minute.
 *
 * --levels 0,10 times, instead, the step of the graph program that training runs at those
 * IMP levels: each prunable weight masked at its level density (1 - rate)^N with the
 * model's per-layer rates (Conv-2/4/6: conv, fc, the output layer at half the fc rate; the
 * ResNets and VGGs: global pruning's 20% a level spread evenly over every layer but the
 * output layer it leaves alone), positions drawn at random (seeded); the levels' steps are
 * interleaved (step r of every level, then r + 1) and each level's median is compared with
 * the first level's. --sparse (auto, on, off) chooses which masked layers run on sparse
 * kernels, as in training. --fc-share (Conv-2/4/6) also times the fully connected layers
 * alone (their forward, backward and Adam, on the flattened features; dense, as at level
 * 0) as a share of the first level's step.
 *
 * Prints a table; with --json, one JSON object as the last stdout line (and no progress).
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveContext, type Backend } from '../src/backend/index.js';
import { parseArgs, helpText } from '../src/cli/args.js';
import type { Schema } from '../src/core/hparams.js';
import { LthError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { getModel } from '../src/models/registry.js';
import type { ModelSpec } from '../src/models/spec.js';
import { Dataset } from '../src/data/dataset.js';
import { Linear } from '../src/nn/layers.js';
import { Model } from '../src/nn/model.js';
import { GraphProgram } from '../src/program/graph.js';
import { Optimizer } from '../src/nn/optim.js';
import { softmaxCrossEntropy } from '../src/tensor/ops.js';
import { BufferArena, Tensor } from '../src/tensor/tensor.js';
import { TorchSteps, findTorchPython, inTurn } from './torch.js';
import { cpuModel, machineLine, runBench } from './run.js';
import { median } from './stats.js';

const SCHEMA = {
  model: { type: 'string', help: 'conv2, conv4 or conv6 (or a _dropout variant), cifar_resnet_20/56, cifar_vgg_11/16/19', default: 'conv2' },
  steps: { type: 'integer', help: 'timed steps; the median is reported', default: 10 },
  warmup: { type: 'integer', help: 'untimed steps first', default: 3 },
  batch: { type: 'integer', help: "batch size (default: the model's, 60 or 128)" },
  threads: { type: 'integer', help: "native backend threads (default: the addon's own)" },
  kernels: { type: 'boolean', help: 'also total the time per backend kernel', default: false },
  cpu: { type: 'boolean', help: 'time in process CPU time (user + system, all threads) instead of wall-clock time: robust to other jobs on the machine', default: false },
  vsTorch: { type: 'boolean', help: 'also time the same step in PyTorch (bench/torch_conv2.py)', default: false },
  torchSteps: { type: 'integer', help: 'timed steps for --vs-torch (default: --steps)' },
  rounds: { type: 'integer', help: "with --vs-torch: lth's --steps steps and PyTorch's --torch-steps in turn this many times, PyTorch kept running between them; the median of the rounds' ratios is reported (on a shared machine each side's speed moves with the minute: steps timed close together meet the same machine)", default: 1 },
  levels: { type: 'string', help: 'IMP levels to time the masked step of, interleaved, e.g. 0,10' },
  sparse: { type: 'string', help: 'with --levels: auto, on or off (which masked layers run on sparse kernels)', default: 'auto' },
  fcShare: { type: 'boolean', help: 'with --levels (Conv-2/4/6): also time the fully connected layers alone', default: false },
} as const satisfies Schema;

const USAGE = 'usage: node dist/bench/conv.js [options]';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Milliseconds on the clock in use: wall-clock, or the process's CPU time with --cpu. */
let now = (): number => performance.now();
const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Wraps every kernel of `be` to total its time (ms, on `now`) and calls. */
function instrument(be: Backend): Map<string, { ms: number; calls: number }> {
  const totals = new Map<string, { ms: number; calls: number }>();
  const target = be as unknown as Record<string, unknown>;
  for (const [name, fn] of Object.entries(target)) {
    if (typeof fn !== 'function' || ['simdPath', 'setThreads', 'getThreads'].includes(name)) continue;
    const entry = { ms: 0, calls: 0 };
    totals.set(name, entry);
    target[name] = (...args: unknown[]) => {
      const t0 = now();
      const r = (fn as (...a: unknown[]) => unknown).apply(be, args);
      entry.ms += now() - t0;
      entry.calls++;
      return r;
    };
  }
  return totals;
}

async function main(): Promise<void> {
  const { values, common } = parseArgs(process.argv.slice(2), SCHEMA);
  if (common.help) {
    process.stdout.write(`${helpText(USAGE, SCHEMA)}\n`);
    return;
  }
  if (values.cpu === true) {
    if (values.vsTorch === true) throw new LthError("--cpu cannot go with --vs-torch: PyTorch's step is timed on the wall clock");
    now = cpuNow;
  }
  if (values.levels !== undefined) {
    levelsBench(values, common.json);
    return;
  }
  const modelName = (values.model as string | undefined) ?? SCHEMA.model.default;
  const steps = (values.steps as number | undefined) ?? SCHEMA.steps.default;
  const warmup = (values.warmup as number | undefined) ?? SCHEMA.warmup.default;
  const batch = (values.batch as number | undefined) ?? getModel(modelName).training.batchSize;
  const torchSteps = (values.torchSteps as number | undefined) ?? steps;
  const rounds = (values.rounds as number | undefined) ?? SCHEMA.rounds.default;
  if (!(steps >= 1)) throw new LthError(`--steps must be at least 1, got ${steps}`);
  if (!(rounds >= 1)) throw new LthError(`--rounds must be at least 1, got ${rounds}`);
  if (rounds > 1 && values.vsTorch !== true) throw new LthError('--rounds goes with --vs-torch (without it, raise --steps)');
  const progress = (line: string) => { if (!common.json) process.stderr.write(`${line}\n`); };

  const spec = getModel(modelName);
  if (spec.training.dataset !== 'cifar10') throw new LthError(`--model: ${modelName} is not a CIFAR-10 conv net`);
  const context = resolveContext({ threads: values.threads as number | undefined });
  const be = context.backend;
  const { threads } = context.settings;
  const simd = context.settings.simd === 'none' ? null : context.settings.simd;

  const model = spec.build();
  model.initialize(new Rng(0, 'init'));
  const t = spec.training;
  const settings = { name: t.optimizer, lr: t.lr, momentum: t.optimizer === 'sgd' ? t.momentum ?? 0 : 0, weightDecay: t.optimizer === 'sgd' ? t.weightDecay ?? 0 : 0 };
  const optimizer = new Optimizer(model.namedParameters().map(([, tensor]) => ({ tensor, mask: null })), settings);
  const arena = new BufferArena();
  const rng = new Rng(1, 'bench_data');
  const x = Tensor.zeros([batch, 3, 32, 32]);
  for (let i = 0; i < x.size; i++) x.data[i] = rng.normal();
  const labels = Int32Array.from({ length: batch }, () => rng.int(10));

  const phases = { forward: [] as number[], backward: [] as number[], optimizer: [] as number[], step: [] as number[] };
  const step = (record: boolean) => arena.run(() => {
    const t0 = now();
    const loss = softmaxCrossEntropy(model.forward(x), labels);
    if (!Number.isFinite(loss.data[0])) throw new LthError(`bench: loss is ${loss.data[0]}`);
    const t1 = now();
    loss.backward();
    const t2 = now();
    optimizer.step();
    const t3 = now();
    if (record) {
      phases.forward.push(t1 - t0);
      phases.backward.push(t2 - t1);
      phases.optimizer.push(t3 - t2);
      phases.step.push(t3 - t0);
    }
  });
  /** PyTorch's step script kept running at each of its thread counts, warmed up, or why it could not start. */
  const startTorch = async () => {
    const found = findTorchPython();
    if ('note' in found) return new Error(found.note);
    const base = modelName.replace(/_dropout$/, '');
    const cifar = modelName.startsWith('cifar_');
    progress(`torch: ${torchSteps} steps a round, at 1 thread and at all cores, in turn with lth's...`);
    const script = path.join(ROOT, 'bench', cifar ? 'torch_cifar.py' : 'torch_conv2.py');
    const optimizerArgs = cifar ? ['--momentum', String(settings.momentum), '--weight-decay', String(settings.weightDecay)] : [];
    return TorchSteps.start(found.python, script, ['--model', base, '--warmup', String(Math.max(1, Math.min(warmup, 3))), '--batch', String(batch),
      '--lr', String(spec.training.lr), ...optimizerArgs]);
  };

  // PyTorch first, so that lth's warm-up steps come right before its timed ones.
  const started = values.vsTorch === true ? await startTorch() : null;
  progress(`${be.name}${simd ? ` (${simd})` : ''}, ${threads} thread(s): ${modelName}, batch ${batch}, ${warmup} warm-up + ${steps} timed steps${rounds > 1 ? ` a round, ${rounds} rounds with PyTorch's in turn` : ''}...`);
  for (let i = 0; i < warmup; i++) step(false);
  let kernels: Map<string, { ms: number; calls: number }> | undefined;
  if (values.kernels === true) kernels = instrument(be);
  /** One round of lth's timed steps: their median, in seconds. */
  const timeLth = (): number => {
    const first = phases.step.length;
    for (let i = 0; i < steps; i++) {
      step(true);
      progress(`  step ${i + 1}/${steps}: ${phases.step[first + i].toFixed(1)} ms`);
    }
    return median(phases.step.slice(first)) / 1000;
  };

  const out: Record<string, unknown> = {
    model: modelName,
    backend: be.name,
    simd,
    threads,
    batch,
    cpu: cpuModel(),
    cores: os.cpus().length,
    node: process.version,
    loadavg1m: Number(os.loadavg()[0].toFixed(2)),
    clock: values.cpu === true ? 'cpu' : 'wall',
    stepsTimed: steps,
  };

  let torchSeconds: number | undefined;
  let torchThreads: number | undefined;
  const { lthRounds, torch, note } = await inTurn(started, rounds, torchSteps, (round) => {
    if (rounds > 1) progress(`round ${round + 1}/${rounds}:`);
    return timeLth();
  });
  // The medians of the rounds' figures (each ratio from its own round).
  const stepSeconds = median(lthRounds);
  if (note) {
    progress(note);
    out.torchNote = note;
  }
  if (torch) {
    torchThreads = torch.threads;
    out.torch = { version: torch.info.torch, threads: torchThreads, blas: torch.info.blas, mkldnn: torch.info.mkldnn, stepRunSeconds: torch.times };
    out.torchStepSecondsByThreads = torch.byThreads;
    if (rounds > 1) {
      out.rounds = lthRounds.map((l, r) => ({ stepSeconds: l, torchStepSeconds: torch.rounds[r], lthOverTorch: torch.ratios[r] }));
      lthRounds.forEach((l, r) => progress(`  round ${r + 1}: lth ${(l * 1000).toFixed(1)} ms, torch ${(torch.rounds[r] * 1000).toFixed(1)} ms, ${torch.ratios[r].toFixed(3)}x`));
    }
    torchSeconds = median(torch.rounds);
    out.torchStepSeconds = torchSeconds;
    out.lthOverTorch = median(torch.ratios);
  }
  out.stepSeconds = stepSeconds;
  out.stepRunSeconds = phases.step.map((ms) => ms / 1000);
  out.phaseSeconds = { forward: median(phases.forward) / 1000, backward: median(phases.backward) / 1000, optimizer: median(phases.optimizer) / 1000 };
  if (kernels) {
    const timed = phases.step.length;
    out.kernelMsPerStep = Object.fromEntries([...kernels].filter(([, v]) => v.calls > 0)
      .sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => [k, { ms: Number((v.ms / timed).toFixed(3)), calls: v.calls / timed }]));
  }

  if (common.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  const lines = [
    `lth ${modelName} training step: batch ${batch} of 3x32x32, ${settings.name === 'sgd' ? `SGD (momentum ${settings.momentum}, weight decay ${settings.weightDecay})` : 'Adam'}; median of ${steps} steps${lthRounds.length > 1 ? `, medians of ${lthRounds.length} rounds` : ''}${values.cpu === true ? ' (CPU time)' : ''}`,
    machineLine(context),
    '',
    `  step       ${ms(stepSeconds)}`,
    `  forward    ${ms(median(phases.forward) / 1000)}`,
    `  backward   ${ms(median(phases.backward) / 1000)}`,
    `  optimizer  ${ms(median(phases.optimizer) / 1000)}`,
  ];
  if (torchSeconds !== undefined) {
    lines.push(`  torch      ${ms(torchSeconds)} (${torchThreads} thread${torchThreads === 1 ? '' : 's'})`,
      `  lth/torch  ${(out.lthOverTorch as number).toFixed(3)}x${torch && rounds > 1 ? ` (rounds: ${torch.ratios.map((x) => x.toFixed(3)).join(', ')})` : ''}`);
  }
  if (kernels) {
    lines.push('', '  kernel            ms/step  calls/step');
    for (const [k, v] of Object.entries(out.kernelMsPerStep as Record<string, { ms: number; calls: number }>)) {
      lines.push(`  ${k.padEnd(18)}${v.ms.toFixed(2).padStart(7)}  ${String(v.calls).padStart(10)}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Masks at IMP level `level` of `spec`'s per-layer rates: each weight keeps round((1 - rate)^level · size) entries at random. */
function levelMasks(model: Model, spec: ModelSpec, level: number, seed: number): Map<string, Float32Array> {
  const rates = spec.pruningRates(model);
  const rng = new Rng(seed, 'bench_masks', level);
  const out = new Map<string, Float32Array>();
  const ignored = spec.pruning?.ignore ?? [];
  for (const l of model.prunableLayers()) {
    if (ignored.includes(l.name)) continue;
    const size = l.shape.reduce((a, b) => a * b, 1);
    const keep = Math.round(size * (1 - rates.get(l.name)!) ** level);
    const mask = new Float32Array(size);
    const perm = rng.permutation(size);
    for (let i = 0; i < keep; i++) mask[perm[i]] = 1;
    out.set(l.name, mask);
  }
  return out;
}

/** --levels: the graph program's training step at IMP levels' densities, interleaved. */
function levelsBench(values: Record<string, unknown>, json: boolean): void {
  const modelName = (values.model as string | undefined) ?? SCHEMA.model.default;
  const steps = (values.steps as number | undefined) ?? SCHEMA.steps.default;
  const warmup = (values.warmup as number | undefined) ?? SCHEMA.warmup.default;
  const spec = getModel(modelName);
  const batch = (values.batch as number | undefined) ?? spec.training.batchSize;
  const levels = String(values.levels).split(',').map((v) => Number(v));
  if (levels.some((l) => !Number.isInteger(l) || l < 0)) throw new LthError(`--levels must be non-negative integers separated by commas, got '${String(values.levels)}'`);
  if (values.fcShare === true && !/^conv[246]/.test(modelName)) throw new LthError(`--fc-share: ${modelName} is not Conv-2/4/6`);
  const sparse = String(values.sparse ?? 'auto');
  const context = resolveContext({ threads: values.threads as number | undefined, sparse });
  const progress = (line: string) => { if (!json) process.stderr.write(`${line}\n`); };
  const t = spec.training;
  const optimizer = { name: t.optimizer, lr: t.lr, momentum: t.momentum ?? 0, weightDecay: t.weightDecay ?? 0 } as const;
  const rng = new Rng(1, 'bench_data');
  const samples = 4 * batch;
  const data = new Dataset(new Float32Array(samples * 3 * 32 * 32).map(() => rng.normal()), Int32Array.from({ length: samples }, () => rng.int(10)), [3, 32, 32], 10);
  const order = new Rng(2, 'bench_order').permutation(samples);
  const runs = levels.map((level) => {
    const model = spec.build();
    model.initialize(new Rng(0, 'init'));
    const masks = levelMasks(model, spec, level, 3);
    const program = new GraphProgram(model, { masks, optimizer, context, sampleShape: data.sampleShape });
    const densities = Object.fromEntries([...masks].map(([n, m]) => [n, Number((m.reduce((a, b) => a + b, 0) / m.length).toFixed(4))]));
    return { level, program, densities, sparse: [...program.sparseWeights], times: [] as number[] };
  });
  const losses = new Float64Array(1);
  const stepOf = (p: GraphProgram, s: number) => p.step({ data, order, from: (s % 4) * batch, batchSize: batch }, losses);
  progress(`${context.backend.name}, ${context.settings.threads} thread(s), sparse ${sparse}: ${modelName} batch ${batch}, levels ${levels.join(', ')}: ${warmup} warm-up + ${steps} timed steps each, interleaved...`);
  for (let s = 0; s < warmup; s++) for (const r of runs) stepOf(r.program, s);
  // The fully connected layers alone: their own model on the flattened features.
  let fc: { step: () => void; times: number[] } | null = null;
  if (values.fcShare === true) {
    const full = spec.build();
    full.initialize(new Rng(0, 'init'));
    const children = full.namedChildren();
    const at = children.findIndex(([n]) => n === 'flatten');
    const head = new Model('fc', children.slice(at + 1));
    const features = (children[at + 1][1] as Linear).inFeatures;
    const x = Tensor.zeros([batch, features]);
    for (let i = 0; i < x.size; i++) x.data[i] = Math.max(0, rng.normal());
    const labels = data.labels.subarray(0, batch);
    const opt = new Optimizer(head.namedParameters().map(([, tensor]) => ({ tensor, mask: null })), optimizer);
    const arena = new BufferArena();
    fc = {
      step: () => arena.run(() => {
        softmaxCrossEntropy(head.forward(x), labels).backward();
        opt.step();
      }),
      times: [],
    };
    for (let s = 0; s < warmup; s++) fc.step();
  }
  for (let s = 0; s < steps; s++) {
    for (const r of runs) {
      const t0 = now();
      stepOf(r.program, warmup + s);
      r.times.push(now() - t0);
    }
    if (fc) {
      const t0 = now();
      fc.step();
      fc.times.push(now() - t0);
    }
    progress(`  round ${s + 1}/${steps}: ${runs.map((r) => `level ${r.level} ${r.times[s].toFixed(1)} ms`).join(', ')}`);
  }
  const base = median(runs[0].times);
  const out = {
    model: modelName, backend: context.backend.name, simd: context.settings.simd, threads: context.settings.threads, sparse, batch, cpu: cpuModel(), cores: os.cpus().length,
    loadavg1m: Number(os.loadavg()[0].toFixed(2)), clock: values.cpu === true ? 'cpu' : 'wall', stepsTimed: steps,
    levels: runs.map((r) => ({
      level: r.level, stepSeconds: median(r.times) / 1000, ratio: median(r.times) / base, stepRunSeconds: r.times.map((ms) => ms / 1000),
      densities: r.densities, sparseWeights: r.sparse,
    })),
    ...(fc ? { fcStepSeconds: median(fc.times) / 1000, fcShareOfFirst: median(fc.times) / base } : {}),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const lines = [
    `lth ${modelName} masked training step (graph program, sparse ${sparse}): batch ${batch}, ${t.optimizer === 'adam' ? 'Adam' : 'SGD'}; median of ${steps} interleaved steps`,
    `${machineLine(context)}; load ${out.loadavg1m}`,
    '',
    '  level  step ms  ratio  sparse layers',
    ...out.levels.map((l) => `  ${String(l.level).padStart(5)}  ${(l.stepSeconds * 1000).toFixed(1).padStart(7)}  ${l.ratio.toFixed(3)}  ${l.sparseWeights.map((n) => n.replace('.weight', '')).join(' ') || '-'}`),
  ];
  if (fc) lines.push('', `  fully connected layers alone: ${(out.fcStepSeconds! * 1000).toFixed(1)} ms, ${(out.fcShareOfFirst! * 100).toFixed(1)}% of level ${levels[0]}'s step`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench('bench', main);
