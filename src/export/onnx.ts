import { LthError } from '../core/errors.js';
import { buildModule } from '../nn/build.js';
import type { ModuleDesc } from '../nn/module.js';
import { LTH_VERSION } from '../core/version.js';
import { Message } from './protobuf.js';

/** ONNX's IR version and operator set the exported graphs use (onnxruntime 1.x reads both). */
const IR_VERSION = 8, OPSET = 13;
const FLOAT = 1;
const ATTR = { FLOAT: 1, INT: 2, INTS: 7 } as const;

/** The graph being written: nodes, initialisers and fresh value names. */
class Graph {
  readonly nodes: Message[] = [];
  readonly initializers: Message[] = [];
  private next = 0;

  value(hint: string): string {
    return `${hint}_${this.next++}`;
  }

  /** A node with one output, named `out` or a fresh name from `hint`. */
  node(op: string, inputs: string[], attrs: Message[] = [], hint = op.toLowerCase(), out = this.value(hint)): string {
    const n = new Message();
    for (const i of inputs) n.string(1, i);
    n.string(2, out).string(3, out).string(4, op);
    for (const a of attrs) n.message(5, a);
    this.nodes.push(n);
    return out;
  }

  initializer(name: string, shape: readonly number[], data: Float32Array): string {
    const t = new Message().ints(1, shape).int(2, FLOAT).string(8, name);
    t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
    this.initializers.push(t);
    return name;
  }
}

const ints = (name: string, values: readonly number[]) => new Message().string(1, name).ints(8, values).int(20, ATTR.INTS);
const float = (name: string, value: number) => new Message().string(1, name).float(2, value).int(20, ATTR.FLOAT);
const int = (name: string, value: number) => new Message().string(1, name).int(3, value).int(20, ATTR.INT);

interface Weights {
  get(name: string): { shape: readonly number[]; data: Float32Array };
}

/**
 * How each module type becomes ONNX nodes: the module's description, its parameter prefix,
 * its input value; returns its output value. A new module type adds its entry here.
 */
const EXPORTERS: Readonly<Record<string, (d: ModuleDesc, prefix: string, x: string, g: Graph, w: Weights) => string>> = {
  linear: (d, p, x, g, w) => {
    const W = w.get(`${p}weight`), B = w.get(`${p}bias`);
    const y = g.node('Gemm', [x, g.initializer(`${p}weight`, W.shape, W.data), g.initializer(`${p}bias`, B.shape, B.data)], [int('transB', 1)], 'linear');
    return d.activation === 'relu' ? g.node('Relu', [y]) : y;
  },
  conv2d: (d, p, x, g, w) => {
    const W = w.get(`${p}weight`);
    // A conv before batch norm has no bias (bias: false); ONNX's Conv takes it as optional.
    const bias = d.bias === false ? [] : [(() => { const B = w.get(`${p}bias`); return g.initializer(`${p}bias`, B.shape, B.data); })()];
    const [ph, pw] = d.padding as number[];
    const y = g.node('Conv', [x, g.initializer(`${p}weight`, W.shape, W.data), ...bias], [
      ints('kernel_shape', d.kernel as number[]), ints('strides', d.stride as number[]), ints('pads', [ph, pw, ph, pw]),
    ], 'conv');
    return d.activation === 'relu' ? g.node('Relu', [y]) : y;
  },
  max_pool2d: (d, _p, x, g) => g.node('MaxPool', [x], [ints('kernel_shape', [d.k as number, d.k as number]), ints('strides', [d.stride as number, d.stride as number])]),
  flatten: (_d, _p, x, g) => g.node('Flatten', [x], [int('axis', 1)]),
  // Evaluation mode: normalised with the running statistics.
  batch_norm2d: (d, p, x, g, w) => {
    const t = (n: string) => { const v = w.get(`${p}${n}`); return g.initializer(`${p}${n}`, v.shape, v.data); };
    const y = g.node('BatchNormalization', [x, t('weight'), t('bias'), t('running_mean'), t('running_var')], [float('epsilon', Number(d.eps ?? 1e-5))], 'batch_norm');
    return d.activation === 'relu' ? g.node('Relu', [y]) : y;
  },
  global_avg_pool2d: (_d, _p, x, g) => g.node('Flatten', [g.node('GlobalAveragePool', [x])], [int('axis', 1)]),
  basic_block: (d, p, x, g, w) => {
    const children = buildModule(d).namedChildren().map(([n, c]) => [n, c.describe()] as const);
    const run = (name: string, input: string) => exportModule(children.find(([n]) => n === name)![1], `${p}${name}.`, input, g, w);
    const main = run('bn2', run('conv2', run('bn1', run('conv1', x))));
    return g.node('Relu', [g.node('Add', [main, run('shortcut', x)])]);
  },
  // Inference: dropout is the identity.
  dropout: (_d, _p, x) => x,
  sequential: (d, p, x, g, w) => chain(d, p, x, g, w),
  model: (d, p, x, g, w) => chain(d, p, x, g, w),
};

function chain(d: ModuleDesc, prefix: string, x: string, g: Graph, w: Weights): string {
  let y = x;
  for (const [name, child] of d.layers as Array<[string, ModuleDesc]>) y = exportModule(child, `${prefix}${name}.`, y, g, w);
  return y;
}

function exportModule(d: ModuleDesc, prefix: string, x: string, g: Graph, w: Weights): string {
  const f = EXPORTERS[d.type];
  if (!f) throw new LthError(`export: no ONNX form for module type '${d.type}' (known: ${Object.keys(EXPORTERS).join(', ')}); --format pt or safetensors exports any model`);
  return f(d, prefix, x, g, w);
}

/** A float tensor's type with a symbolic batch dimension. */
function valueInfo(name: string, shape: readonly (number | string)[]): Message {
  const dims = new Message();
  for (const s of shape) dims.message(1, typeof s === 'number' ? new Message().int(1, s) : new Message().string(2, s));
  const tensor = new Message().int(1, FLOAT).message(2, dims);
  return new Message().string(1, name).message(2, new Message().message(1, tensor));
}

export interface OnnxOptions {
  /** The model's description (Module.describe()). */
  readonly model: ModuleDesc;
  /** Its weights by parameter name, with shapes. */
  readonly weights: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>;
  /** One example's shape, as the model takes it. */
  readonly sampleShape: readonly number[];
  readonly classes: number;
  /** Written into the file's metadata (what the input is, where the ticket came from). */
  readonly metadata: Record<string, string>;
}

/**
 * An ONNX model (one float input 'input' [batch, ...sampleShape], one output 'logits'
 * [batch, classes]) computing the network's forward pass in evaluation mode with its
 * weights as initialisers.
 */
export function onnxModel(o: OnnxOptions): Uint8Array {
  const g = new Graph();
  const weights: Weights = {
    get: (name) => {
      const t = o.weights.get(name);
      if (!t) throw new LthError(`export: the weights have no '${name}'`);
      return t;
    },
  };
  const out = exportModule(o.model, '', 'input', g, weights);
  const logits = g.node('Identity', [out], [], 'logits', 'logits');
  const graph = new Message();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, String(o.model.name ?? 'lth'));
  for (const t of g.initializers) graph.message(5, t);
  graph.message(11, valueInfo('input', ['batch', ...o.sampleShape]));
  graph.message(12, valueInfo(logits, ['batch', o.classes]));
  const model = new Message().int(1, IR_VERSION).string(2, 'lth').string(3, LTH_VERSION).message(7, graph)
    .message(8, new Message().string(1, '').int(2, OPSET));
  for (const [k, v] of Object.entries(o.metadata)) model.message(14, new Message().string(1, k).string(2, v));
  return model.encode();
}
