/**
 * Conv-net training-step benchmark: the median time of one training step of a CIFAR-10
 * model — Conv-2/4/6 (batch 60, Adam) or a ResNet/VGG with batch norm (cifar_resnet_20,
 * cifar_vgg_16, ...: batch 128, SGD with momentum and weight decay), forward, softmax
 * cross-entropy, backward, the model's optimiser — on the current backend (native unless
 * LTH_BACKEND says otherwise).
 *
 *   node dist/bench/conv.js [--model conv2] [--batch B] [--steps 10] [--warmup 3] [--threads N]
 *                           [--kernels] [--vs-torch] [--json]
 *
 * The batch is fixed random data (no CIFAR files needed); weights are the model's θ0
 * (seed 0), in training mode. Each step runs in a BufferArena as the graph program's do
 * (its tensors reuse the previous step's buffers), is timed on its own and split into
 * forward (incl. loss), backward and optimiser; the figures are medians over --steps steps
 * after --warmup untimed ones. --kernels also totals the time spent in each backend kernel
 * (wrapping them adds a little overhead). --vs-torch then runs bench/torch_conv2.py (or
 * bench/torch_cifar.py for the ResNets and VGGs; not concurrently) with the same model,
 * batch and optimiser, at 1 thread and at all cores with OpenBLAS on this CPU's own
 * kernels (bench/torch.ts), and prints the ratio lth/torch of the median step times
 * against the faster.
 *
 * Prints a table; with --json, one JSON object as the last stdout line (and no progress).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveContext, type Backend } from '../src/backend/index.js';
import { parseArgs, helpText } from '../src/cli/args.js';
import type { Schema } from '../src/core/hparams.js';
import { LthError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { getModel } from '../src/models/registry.js';
import { Optimizer } from '../src/nn/optim.js';
import { softmaxCrossEntropy } from '../src/tensor/ops.js';
import { BufferArena, Tensor } from '../src/tensor/tensor.js';
import { findTorchPython, runTorch } from './torch.js';
import { median } from './stats.js';

const SCHEMA = {
  model: { type: 'string', help: 'conv2, conv4 or conv6 (or a _dropout variant), cifar_resnet_20/56, cifar_vgg_11/16/19', default: 'conv2' },
  steps: { type: 'integer', help: 'timed steps; the median is reported', default: 10 },
  warmup: { type: 'integer', help: 'untimed steps first', default: 3 },
  batch: { type: 'integer', help: "batch size (default: the model's, 60 or 128)" },
  threads: { type: 'integer', help: "native backend threads (default: the addon's own)" },
  kernels: { type: 'boolean', help: 'also total the time per backend kernel', default: false },
  vsTorch: { type: 'boolean', help: 'also time the same step in PyTorch (bench/torch_conv2.py)', default: false },
  torchSteps: { type: 'integer', help: 'timed steps for --vs-torch (default: --steps)' },
} as const satisfies Schema;

const USAGE = 'usage: node dist/bench/conv.js [options]';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch { /* not Linux */ }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** Wraps every kernel of `be` to total its wall time (ms) and calls. */
function instrument(be: Backend): Map<string, { ms: number; calls: number }> {
  const totals = new Map<string, { ms: number; calls: number }>();
  const target = be as unknown as Record<string, unknown>;
  for (const [name, fn] of Object.entries(target)) {
    if (typeof fn !== 'function' || ['simdPath', 'setThreads', 'getThreads'].includes(name)) continue;
    const entry = { ms: 0, calls: 0 };
    totals.set(name, entry);
    target[name] = (...args: unknown[]) => {
      const t0 = performance.now();
      const r = (fn as (...a: unknown[]) => unknown).apply(be, args);
      entry.ms += performance.now() - t0;
      entry.calls++;
      return r;
    };
  }
  return totals;
}

function main(): void {
  const { values, common } = parseArgs(process.argv.slice(2), SCHEMA);
  if (common.help) {
    process.stdout.write(`${helpText(USAGE, SCHEMA)}\n`);
    return;
  }
  const modelName = (values.model as string | undefined) ?? SCHEMA.model.default;
  const steps = (values.steps as number | undefined) ?? SCHEMA.steps.default;
  const warmup = (values.warmup as number | undefined) ?? SCHEMA.warmup.default;
  const batch = (values.batch as number | undefined) ?? getModel(modelName).training.batchSize;
  const torchSteps = (values.torchSteps as number | undefined) ?? steps;
  if (!(steps >= 1)) throw new LthError(`--steps must be at least 1, got ${steps}`);
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
    const t0 = performance.now();
    const loss = softmaxCrossEntropy(model.forward(x), labels);
    if (!Number.isFinite(loss.data[0])) throw new LthError(`bench: loss is ${loss.data[0]}`);
    const t1 = performance.now();
    loss.backward();
    const t2 = performance.now();
    optimizer.step();
    const t3 = performance.now();
    if (record) {
      phases.forward.push(t1 - t0);
      phases.backward.push(t2 - t1);
      phases.optimizer.push(t3 - t2);
      phases.step.push(t3 - t0);
    }
  });
  progress(`${be.name}${simd ? ` (${simd})` : ''}, ${threads} thread(s): ${modelName}, batch ${batch}, ${warmup} warm-up + ${steps} timed steps...`);
  for (let i = 0; i < warmup; i++) step(false);
  let kernels: Map<string, { ms: number; calls: number }> | undefined;
  if (values.kernels === true) kernels = instrument(be);
  for (let i = 0; i < steps; i++) {
    step(true);
    progress(`  step ${i + 1}/${steps}: ${phases.step[i].toFixed(1)} ms`);
  }
  const stepSeconds = median(phases.step) / 1000;

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
    stepsTimed: steps,
    stepSeconds,
    stepRunSeconds: phases.step.map((ms) => ms / 1000),
    phaseSeconds: { forward: median(phases.forward) / 1000, backward: median(phases.backward) / 1000, optimizer: median(phases.optimizer) / 1000 },
  };
  if (kernels) {
    out.kernelMsPerStep = Object.fromEntries([...kernels].filter(([, v]) => v.calls > 0)
      .sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => [k, { ms: Number((v.ms / steps).toFixed(3)), calls: v.calls / steps }]));
  }

  let torchSeconds: number | undefined;
  let torchThreads: number | undefined;
  if (values.vsTorch === true) {
    const found = findTorchPython();
    const base = modelName.replace(/_dropout$/, '');
    const cifar = modelName.startsWith('cifar_');
    progress(`torch: ${torchSteps} steps, at 1 thread and at all cores...`);
    const script = path.join(ROOT, 'bench', cifar ? 'torch_cifar.py' : 'torch_conv2.py');
    const optimizerArgs = cifar ? ['--momentum', String(settings.momentum), '--weight-decay', String(settings.weightDecay)] : [];
    const runs = 'note' in found ? new Error(found.note) : runTorch(found.python, script, ['--model', base, '--steps', String(torchSteps),
      '--warmup', String(Math.max(1, Math.min(warmup, 3))), '--batch', String(batch), '--lr', String(spec.training.lr), ...optimizerArgs]);
    if (runs instanceof Error) {
      progress(runs.message);
      out.torchNote = runs.message;
    } else {
      // PyTorch at its best: the faster of its thread counts.
      const best = runs.reduce((a, b) => ((b.result.stepSeconds as number) < (a.result.stepSeconds as number) ? b : a));
      torchSeconds = best.result.stepSeconds as number;
      torchThreads = best.threads;
      const r = best.result;
      out.torch = { version: r.torch, threads: best.threads, blas: r.blas, mkldnn: r.mkldnn, stepRunSeconds: r.stepRunSeconds };
      out.torchStepSecondsByThreads = Object.fromEntries(runs.map((run) => [run.threads, run.result.stepSeconds]));
      out.torchStepSeconds = torchSeconds;
      out.lthOverTorch = stepSeconds / torchSeconds;
    }
  }

  if (common.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  const lines = [
    `lth ${modelName} training step: batch ${batch} of 3x32x32, ${settings.name === 'sgd' ? `SGD (momentum ${settings.momentum}, weight decay ${settings.weightDecay})` : 'Adam'}; median of ${steps} steps`,
    `backend ${be.name}${simd ? ` (${simd})` : ''}, ${threads} thread(s); ${cpuModel()}, ${os.cpus().length} cores; node ${process.version}`,
    '',
    `  step       ${ms(stepSeconds)}`,
    `  forward    ${ms(median(phases.forward) / 1000)}`,
    `  backward   ${ms(median(phases.backward) / 1000)}`,
    `  optimizer  ${ms(median(phases.optimizer) / 1000)}`,
  ];
  if (torchSeconds !== undefined) {
    lines.push(`  torch      ${ms(torchSeconds)} (${torchThreads} threads)`, `  lth/torch  ${(stepSeconds / torchSeconds).toFixed(3)}x`);
  }
  if (kernels) {
    lines.push('', '  kernel            ms/step  calls/step');
    for (const [k, v] of Object.entries(out.kernelMsPerStep as Record<string, { ms: number; calls: number }>)) {
      lines.push(`  ${k.padEnd(18)}${v.ms.toFixed(2).padStart(7)}  ${String(v.calls).padStart(10)}`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

try {
  main();
} catch (e) {
  if (e instanceof LthError) {
    process.stderr.write(`bench: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}
