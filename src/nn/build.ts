import { LthError, check } from '../core/errors.js';
import { Conv2d, Dropout, Flatten, Linear, MaxPool2d, type WeightInit } from './layers.js';
import { Model } from './model.js';
import { Conv1d, Embedding, FlattenTime, LSTM, LayerNorm, MaxOverTime, MeanOverTime, PositionEmbedding, SelfAttention, SwapAxes, TransformerBlock } from './seq-layers.js';
import { Sequential, type Module, type ModuleDesc } from './module.js';
import { BatchNorm2d, GlobalAvgPool2d } from './norm.js';
import { BasicBlock } from './residual.js';

/**
 * Every module type by the name its describe() gives, with how to rebuild it from its
 * description: so a model crosses threads and processes as JSON (the evaluation thread,
 * workers) and is rebuilt with fresh parameters, to be loaded with a state dict.
 */
const MODULE_TYPES: Readonly<Record<string, (d: ModuleDesc) => Module>> = {
  linear: (d) => new Linear(num(d, 'in'), num(d, 'out'), d.activation === 'relu' ? 'relu' : 'none', init(d)),
  conv2d: (d) => new Conv2d(num(d, 'in'), num(d, 'out'), pairOf(d, 'kernel'), {
    stride: pairOf(d, 'stride'), padding: pairOf(d, 'padding'), activation: d.activation === 'relu' ? 'relu' : 'none',
    bias: d.bias !== false, init: init(d),
  }),
  batch_norm2d: (d) => new BatchNorm2d(num(d, 'channels'), d.activation === 'relu' ? 'relu' : 'none',
    d.momentum === undefined ? undefined : num(d, 'momentum'), d.eps === undefined ? undefined : num(d, 'eps')),
  global_avg_pool2d: () => new GlobalAvgPool2d(),
  basic_block: (d) => new BasicBlock(num(d, 'in'), num(d, 'out'), d.downsample === true),
  max_pool2d: (d) => new MaxPool2d(num(d, 'k'), num(d, 'stride')),
  flatten: () => new Flatten(),
  dropout: (d) => new Dropout(num(d, 'p'), num(d, 'index')),
  embedding: (d) => new Embedding(num(d, 'vocabulary'), num(d, 'dim')),
  position_embedding: (d) => new PositionEmbedding(num(d, 'length'), num(d, 'dim')),
  conv1d: (d) => new Conv1d(num(d, 'in'), num(d, 'out'), num(d, 'kernel'), num(d, 'padding'), d.activation === 'relu' ? 'relu' : 'none'),
  lstm: (d) => new LSTM(num(d, 'input'), num(d, 'hidden'), num(d, 'layers')),
  layer_norm: (d) => new LayerNorm(num(d, 'dim')),
  self_attention: (d) => new SelfAttention(num(d, 'dim'), num(d, 'heads')),
  transformer_block: (d) => new TransformerBlock(num(d, 'dim'), num(d, 'heads'), num(d, 'ff')),
  swap_axes: () => new SwapAxes(),
  max_over_time: () => new MaxOverTime(),
  mean_over_time: () => new MeanOverTime(),
  flatten_time: () => new FlattenTime(),
  sequential: (d) => new Sequential(children(d)),
  model: (d) => new Model(String(d.name), children(d)),
};

export function buildModule(desc: ModuleDesc): Module {
  const make = MODULE_TYPES[desc.type];
  if (!make) throw new LthError(`Unknown module type '${desc.type}'. Known: ${Object.keys(MODULE_TYPES).join(', ')}`);
  return make(desc);
}

/** The module types in a description that buildModule cannot rebuild (a user's own modules), each once. */
export function unknownModuleTypes(desc: ModuleDesc): string[] {
  const found = new Set<string>();
  const walk = (d: ModuleDesc) => {
    if (!MODULE_TYPES[d.type]) found.add(d.type);
    if (Array.isArray(d.layers)) for (const entry of d.layers as unknown[]) if (Array.isArray(entry) && entry[1]) walk(entry[1] as ModuleDesc);
  };
  walk(desc);
  return [...found];
}

/** The model a description of a Model describes. */
export function buildModel(desc: ModuleDesc): Model {
  const m = buildModule(desc);
  check(m instanceof Model, () => `module description: expected a model, got type '${desc.type}'`);
  return m;
}

function init(d: ModuleDesc): WeightInit {
  const v = d.init ?? 'glorot';
  check(v === 'glorot' || v === 'kaiming', () => `module '${d.type}': 'init' must be 'glorot' or 'kaiming', got ${JSON.stringify(v)}`);
  return v;
}

function num(d: ModuleDesc, key: string): number {
  const v = d[key];
  check(typeof v === 'number', () => `module '${d.type}': '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function pairOf(d: ModuleDesc, key: string): [number, number] {
  const v = d[key];
  check(Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number'), () => `module '${d.type}': '${key}' must be two numbers, got ${JSON.stringify(v)}`);
  return [v[0], v[1]];
}

function children(d: ModuleDesc): Array<[string, Module]> {
  const layers = d.layers;
  check(Array.isArray(layers), () => `module '${d.type}': 'layers' must be a list`);
  return layers.map((entry: unknown) => {
    check(Array.isArray(entry) && entry.length === 2 && typeof entry[0] === 'string', () => `module '${d.type}': a layer must be [name, description]`);
    return [entry[0], buildModule(entry[1] as ModuleDesc)];
  });
}
