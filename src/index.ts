/**
 * lth's public API. The CLI (src/cli) is a thin client of exactly these exports.
 */
export { LthError } from './core/errors.js';
export { Rng } from './core/rng.js';
export { parseStep, stepToIterations, formatStep, type Step } from './core/steps.js';
export { getBackend, loadNative, referenceBackend, type Backend } from './backend/index.js';
export { Tensor, noGrad, BufferArena } from './tensor/tensor.js';
export { linear, relu, softmaxCrossEntropy } from './tensor/ops.js';
export { gradCheck } from './tensor/gradcheck.js';
export { conv2d, maxPool2d, flatten, dropout } from './tensor/conv.js';
export { sparseLinear, maskPattern, denseGrad, SPARSE_DENSITY_THRESHOLD } from './tensor/sparse.js';
export { Linear, Conv2d, MaxPool2d, Flatten, Dropout, type Layer } from './nn/layers.js';
export { Model, type StateDict } from './nn/model.js';
export { Adam, Sgd, type Optimizer } from './nn/optim.js';
export { getModel, modelNames, type ModelSpec } from './models/registry.js';
export { Dataset, type Splits } from './data/dataset.js';
export { getDataset, datasetNames, type DatasetSpec } from './data/registry.js';
export { readIdx } from './data/idx.js';
export { readCifarFiles } from './data/cifar.js';
export { train, trainingStep, trainingSteps, evaluate, earlyStopPoint, type Minibatch, type TrainOptions, type TrainResult, type EvalPoint } from './training/train.js';
export { fusedMlpStep } from './training/fused-mlp.js';
export { TRAINING_SCHEMA, resolveTraining, type TrainingHparams } from './training/hparams.js';
export { runTraining, type TrainSummary } from './training/run.js';
export { density, layerCounts, onesMask, type Mask } from './pruning/mask.js';
export { getStrategy, strategyNames, randomMaskLike, ratesForTarget, type Strategy, type PruneSpec } from './pruning/strategies.js';
export { LOTTERY_SCHEMA, resolveLottery, runHash, type LotteryHparams } from './lottery/hparams.js';
export { runLottery, listRuns, pruningRates, type LotteryProgress } from './lottery/runner.js';
export { type LotterySummary } from './lottery/summary.js';
export { loadSafetensors, saveSafetensors } from './store/safetensors.js';
export { writeReport } from './report/index.js';
export { stageDir, listStages, readMetrics, FILES, type StageResult } from './store/layout.js';
