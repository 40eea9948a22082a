/**
 * lth's public API. The CLI (src/cli) is a thin client of exactly these exports.
 */
export { LthError } from './core/errors.js';
export { Rng } from './core/rng.js';
export { parseStep, stepToIterations, formatStep, type Step } from './core/steps.js';
export { LTH_VERSION } from './core/version.js';
export {
  resolveContext, activeContext, getBackend, loadNative, referenceBackend, referenceSparseMlp, referenceDenseMlp,
  type Backend, type RunContext, type RunSettings, type SettingsRequest, type SparseMlpKernels, type DenseMlpKernels,
} from './backend/index.js';
export { Tensor, noGrad, BufferArena } from './tensor/tensor.js';
export { linear, relu, softmaxCrossEntropy } from './tensor/ops.js';
export { gradCheck } from './tensor/gradcheck.js';
export { conv2d, conv2dMaxPool, poolsInOne, maxPool2d, flatten, dropout } from './tensor/conv.js';
export { batchNorm2d, add, globalAvgPool2d, type BatchNormOptions } from './tensor/norm.js';
export { embedding, addPositions, lstm, causalAttention, layerNorm, maxOverTime, meanOverTime, reshape, swapLastAxes } from './tensor/seq.js';
export { sparseLinear, sparseLinearPanels, toPanels, fromPanels, Panels, maskPattern, packValues, unpackValues, SPARSE_DENSITY_THRESHOLD } from './tensor/sparse.js';
export { Module, Sequential, type ModuleDesc, type StateDict } from './nn/module.js';
export { Linear, Conv2d, MaxPool2d, Flatten, Dropout, type WeightInit } from './nn/layers.js';
export { BatchNorm2d, GlobalAvgPool2d } from './nn/norm.js';
export { BasicBlock } from './nn/residual.js';
export { Embedding, PositionEmbedding, Conv1d, LSTM, LayerNorm, SelfAttention, TransformerBlock, SwapAxes, MaxOverTime, MeanOverTime, FlattenTime } from './nn/seq-layers.js';
export { Model, type PrunableLayer } from './nn/model.js';
export { buildModule, buildModel } from './nn/build.js';
export { Optimizer, updateRule, type OptimizerSettings, type ParamSlot } from './nn/optim.js';
export { compileProgram, withMasks } from './program/compile.js';
export { weightMacs, stepFlops, type WeightMacs, type StepFlops } from './nn/flops.js';
export { GraphProgram } from './program/graph.js';
export { SparseMlpProgram } from './program/sparse-mlp.js';
export { DenseMlpProgram } from './program/dense-mlp.js';
export type { Program, ProgramKind, Minibatches, EvalResult, CompileOptions } from './program/program.js';
export { getModel, modelNames, type ModelSpec } from './models/registry.js';
export { Dataset, type Splits } from './data/dataset.js';
export { getDataset, datasetNames, type DatasetSpec } from './data/registry.js';
export { readIdx } from './data/idx.js';
export { readCifarFiles } from './data/cifar.js';
export { bitsPerCharacter } from './data/moby-dick.js';
export { AugmentedEpoch, augmentationFor, AUGMENTATIONS, type Augmentation } from './data/augment.js';
export { train, earlyStopPoint, type TrainOptions, type TrainResult, type EvalPoint } from './training/train.js';
export { TRAINING_SCHEMA, resolveTraining, type TrainingHparams } from './training/hparams.js';
export { runTraining, type TrainSummary, type SparseSetup } from './training/run.js';
export type { MaskSchedule, MaskAction, MaskScheduleState, LiveTraining } from './training/mask-schedule.js';
export { SparseTraining, SPARSE_TRAIN_METHODS, type SparseTrainMethod, type SparseTrainSettings } from './dynamic/sparse-training.js';
export { EarlyBird, maskDistance, EARLY_BIRD_EPSILON, type EarlyBirdSettings, type EarlyBirdPoint } from './dynamic/early-bird.js';
export { layerDensities, randomMaskAt, DENSITY_RULES, type DensityRule } from './dynamic/densities.js';
export { sparseTrainingSetup, sparseSchedule } from './dynamic/setup.js';
export { SPARSE_TRAIN_SCHEMA, resolveSparseTrain, type SparseTrainHparams } from './dynamic/hparams.js';
export { density, layerCounts, onesMask, randomMaskLike, type Mask } from './pruning/mask.js';
export { getStrategy, strategyNames } from './pruning/registry.js';
export { ratesForTarget } from './pruning/rates.js';
export type { Strategy, PruningContext } from './pruning/strategy.js';
export { LOTTERY_SCHEMA, resolveLottery, runHash, type LotteryHparams } from './lottery/hparams.js';
export { planLottery, type StageSpec } from './lottery/plan.js';
export { runStage, experimentOf, type Experiment, type StageOptions, type LotteryProgress } from './lottery/stage.js';
export { runLottery, prepareRun, summarizeRun, describePlan, listRuns } from './lottery/runner.js';
export { pruningRates } from './lottery/rates.js';
export { runStability, interpolate, type StabilityOptions, type StabilityResult, type PathPoint } from './lottery/stability.js';
export { verifyRun, repairRun } from './lottery/verify.js';
export { controlNames, getBranch } from './lottery/branches.js';
export type { Branch, BranchContext } from './lottery/branch.js';
export { type LotterySummary } from './lottery/summary.js';
export { loadSafetensors, saveSafetensors } from './store/safetensors.js';
export { writeReport } from './report/lazy.js';
export { stageDir, stagePath, listStages, readMetrics, FILES, type StageResult } from './store/layout.js';
export { MAX_SWEEP_RUNS, readSweepFile, resolveSweep, expandSweep, loadSweep, runSweep, describeSweep, queueExecutor, SWEEP_JSON, type SweepSpec, type SweepRun, type ResolvedSweep, type SweepOptions, type SweepResult, type SweepExecutor } from './sweep/index.js';
