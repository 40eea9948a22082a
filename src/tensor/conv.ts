/**
 * Convolutional ops on NCHW tensors, forward and backward together (like ops.ts):
 * conv2d (im2col + GEMM, with a fused per-channel bias and ReLU), max pooling,
 * flatten and dropout.
 *
 * Stride-1 3×3 convolutions with at least WINOGRAD_MIN_CHANNELS input and output
 * channels run on the backend's conv3x3 and conv3x3WeightGrad (Winograd in the native
 * backend: F(2×2, 3×3) takes 16 multiplications per 2×2 outputs instead of 36,
 * F(4×4, 3×3) 36 per 4×4 outputs instead of 144, and there are no columns): the output,
 * the input gradient (gX += conv3x3 of gY by the flipped, transposed weight) and the
 * weight gradient (tiles: winogradTile). Followed by 2×2 max pooling, such a convolution
 * can run as one op, conv2dMaxPool, which pools as it stores (a Conv2d layer offers it to
 * the Sequential it is in: Module.fusedWith; tile: poolTile).
 *
 * The other convolutions run on the backend's conv2d and conv2dBackward, which work one
 * image at a time (natively, the images spread over the threads): im2col of image b into
 * a scratch buffer [C·kh·kw, OH·OW], then Y_b = W · col (W: [out, C·kh·kw], PyTorch's
 * [out, in, kh, kw] flattened), so the output lands in NCHW order with no transpose and
 * the scratch stays small whatever the batch (evaluation batches of 1000 included).
 * Backward redoes the im2col per image rather than keep the whole batch's columns:
 *   gW += gY_b · col_bᵀ,   gcol = Wᵀ · gY_b,   gX_b += col2im(gcol).
 * Where such a convolution is a first layer (its input needs no gradient) and a
 * convolution on conv3x3 alone reads its output, that one's backward pass takes the first
 * layer's too (conv3x3ThroughConv2d), image block by image block, so the first layer's
 * output gradient is never stored whole (FirstLayer).
 */
import { getBackend, reluMaskBytes } from '../backend/index.js';
import { check } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { Tensor, recordOp, scratchBytes, shapeStr, sizeOf, willRecord } from './tensor.js';

/** Output size of a convolution along one axis: ⌊(size + 2·pad - k) / stride⌋ + 1. */
export function convOutputSize(size: number, k: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - k) / stride) + 1;
}

/** Stride and zero padding of a convolution, per axis. */
export interface Conv2dGeometry {
  readonly strideH: number;
  readonly strideW: number;
  readonly padH: number;
  readonly padW: number;
}

/**
 * Output and gradient buffers that a layer keeps from one training step to the next, so
 * that the hot path does not allocate (a fresh 15 MB Float32Array costs more in page
 * faults than the kernels that fill it). `output(shape)` returns a tensor on the kept
 * buffers — its gradient attached and zeroed — when the tensor handed out last time is
 * no longer part of a graph waiting for backward (backward() clears its backwardFn);
 * otherwise, or when the shape changed, it allocates fresh ones (and keeps those).
 * Only used while gradients are recorded: evaluation passes (large batches, under
 * noGrad) allocate normally, so their buffers are not held on to.
 */
export class Workspace {
  private data: Float32Array | null = null;
  private grad: Float32Array | null = null;
  private last: Tensor | null = null;
  private idx: Uint8Array | null = null;
  private spare: Float32Array | null = null;

  /**
   * A tensor of `shape` on reused buffers (its data is garbage: the op overwrites all of it),
   * its gradient attached stale (Tensor.attachStaleGrad: zero to every reader, and the first
   * op that reaches it through gradSink overwrites it instead of zeroing and adding).
   */
  output(shape: readonly number[]): Tensor {
    const n = sizeOf(shape);
    const busy = this.last !== null && this.last.backwardFn !== null;
    if (busy || this.data === null || this.data.length !== n) {
      this.data = new Float32Array(n);
      this.grad = new Float32Array(n);
      this.idx = null;
    } else {
      // The old tensor is finished with; make sure it no longer aliases the buffers.
      this.last!.grad = null;
    }
    const t = new Tensor(this.data, shape);
    t.attachStaleGrad(this.grad!);
    this.last = t;
    return t;
  }

  /** n bytes that go with the tensor output() handed out last: kept and reused when its buffers are. */
  indices(n: number): Uint8Array {
    if (this.idx === null || this.idx.length !== n) this.idx = new Uint8Array(n);
    return this.idx;
  }

  /** n floats of scratch for one op's backward pass, kept from step to step (garbage on entry). */
  scratch(n: number): Float32Array {
    if (this.spare === null || this.spare.length !== n) this.spare = new Float32Array(n);
    return this.spare;
  }
}

/** Whether an op on `inputs` keeps its output in `ws`: when it has one and gradients are recorded through the op. */
function usesWorkspace(ws: Workspace | undefined, inputs: Tensor[]): ws is Workspace {
  return ws !== undefined && willRecord(inputs);
}

/** The output tensor of an op: from the workspace when gradients are recorded through it, else fresh. */
export function outputTensor(shape: readonly number[], ws: Workspace | undefined, inputs: Tensor[]): Tensor {
  return usesWorkspace(ws, inputs) ? ws.output(shape) : Tensor.zeros(shape);
}

/**
 * Fewest input and output channels for which a stride-1 3×3 convolution runs on conv3x3:
 * with fewer, each of the 16 Winograd products is too shallow or too narrow to keep the
 * GEMM micro-kernel busy (a first layer's 3 input channels), and im2col's single product
 * over all 9·channels columns serves better.
 */
export const WINOGRAD_MIN_CHANNELS = 8;

/** Whether conv2d runs a convolution of this shape on conv3x3 (Winograd) rather than im2col. */
export function usesWinograd(inChannels: number, outChannels: number, kh: number, kw: number, geometry: Conv2dGeometry): boolean {
  const { strideH, strideW, padH, padW } = geometry;
  return kh === 3 && kw === 3 && strideH === 1 && strideW === 1 && padH === padW && padH <= 2
    && inChannels >= WINOGRAD_MIN_CHANNELS && outChannels >= WINOGRAD_MIN_CHANNELS;
}

/**
 * The Winograd tile of the backward passes (the input gradient's conv3x3 with an outH×outW
 * result, the weight gradient of a layer with an outH×outW output): F(4×4, 3×3) (4× fewer
 * multiplications than the direct sum, against 2.25× for F(2×2, 3×3)) from 8×8 up: with
 * the transforms running rows first over a block's whole tiles, two 4×4 tiles a row
 * vectorise as well as sixteen; on 4×4 (one tile) it gains little (docs/performance.md).
 * conv2d's forward pass keeps F(2×2, 3×3): F(4×4)'s rounding error is about 6× larger,
 * and where batch norm follows it flips ReLU decisions that PyTorch's float32 does not,
 * each flip spread over its channel by the normalisation (with an F(4×4) forward the
 * ResNet-20 golden's first stage was 7e-4 to 3e-3 from PyTorch's, 2e-5 allowed).
 */
export function winogradTile(outH: number, outW: number): 2 | 4 {
  return outH >= 8 && outW >= 8 ? 4 : 2;
}

/**
 * The Winograd tile of conv2dMaxPool's forward pass, whose output goes to max pooling with
 * no batch norm in between: F(4×4, 3×3) where the output's sides are multiples of 4 (a
 * tile then holds four whole pooling windows) from 16 up, else F(2×2, 3×3). The pooled
 * F(4×4) call took 0.70–0.74 of F(2×2)'s time at 32×32 and 0.78–0.84 at 16×16; at 8×8
 * (two tiles a row) it was slower, and F(4×4) alone no faster. The Conv-2 golden stays
 * within 3.5× PyTorch's own float32 rounding (docs/performance.md).
 */
export function poolTile(outH: number, outW: number): 2 | 4 {
  return outH >= 16 && outW >= 16 && outH % 4 === 0 && outW % 4 === 0 ? 4 : 2;
}

interface ConvDims {
  n: number; cin: number; h: number; w: number; cout: number; kh: number; kw: number; oh: number; ow: number;
}

/** conv2d's argument checks; the dimensions of its input, weight and output. */
function convDims(op: string, x: Tensor, weight: Tensor, bias: Tensor | null, geometry: Conv2dGeometry): ConvDims {
  check(x.shape.length === 4, () => `${op}: input must be rank 4 [batch, channels, height, width], got rank ${x.shape.length} (shape ${shapeStr(x)})`);
  check(weight.shape.length === 4, () => `${op}: weight must be rank 4 [out, in, kh, kw], got shape ${shapeStr(weight)}`);
  const [n, cin, h, w] = x.shape;
  const [cout, wcin, kh, kw] = weight.shape;
  check(wcin === cin, () => `${op}: weight shape ${shapeStr(weight)} expects ${wcin} input channels, input has ${cin} (shape ${shapeStr(x)})`);
  check(bias === null || (bias.shape.length === 1 && bias.shape[0] === cout),
    () => `${op}: bias must have shape [${cout}], got ${bias ? shapeStr(bias) : ''}`);
  const { strideH, strideW, padH, padW } = geometry;
  check(Number.isInteger(strideH) && strideH >= 1 && Number.isInteger(strideW) && strideW >= 1,
    () => `${op}: stride must be a positive integer, got ${strideH}x${strideW}`);
  check(Number.isInteger(padH) && padH >= 0 && Number.isInteger(padW) && padW >= 0,
    () => `${op}: padding must be a non-negative integer, got ${padH}x${padW}`);
  const oh = convOutputSize(h, kh, strideH, padH), ow = convOutputSize(w, kw, strideW, padW);
  check(oh >= 1 && ow >= 1,
    () => `${op}: a ${kh}x${kw} kernel with padding ${padH}x${padW} does not fit a ${h}x${w} input`);
  return { n, cin, h, w, cout, kh, kw, oh, ow };
}

/**
 * A first layer: a convolution on conv2d's im2col path whose input needs no gradient. The
 * convolution on conv3x3 that is the only reader of its output takes over its backward
 * pass (conv3x3ThroughConv2d: the output's gradient, 15.7 MB in Conv-2, then never goes
 * to memory and back), and `taken` tells its own backward to do nothing.
 */
interface FirstLayer {
  x: Tensor; weight: Tensor; bias: Tensor | null; d: ConvDims; geometry: Conv2dGeometry; reluMask: Uint8Array | null; taken: boolean;
}
/** The first layers of the graphs being recorded, by their outputs. */
const firstLayers = new WeakMap<Tensor, FirstLayer>();

/**
 * Most pixels of a first layer's output for conv3x3ThroughConv2d: its blocks are whole
 * images, and from 64×64 on a block's Winograd tiles would no longer stay near L2.
 */
const THROUGH_MAX_PIXELS = 64 * 64;

/** The input and weight gradients of a convolution on conv3x3 from its output's gradient gy (bias and activation already back-propagated). */
function conv3x3Backward(x: Tensor, weight: Tensor, gy: Float32Array, d: ConvDims, pad: number): void {
  const be = getBackend();
  const gw = weight.requiresGrad ? weight.ensureGrad() : null;
  const first = firstLayers.get(x);
  if (first && x.readers === 1 && d.h * d.w <= THROUGH_MAX_PIXELS) {
    const f = first.d, { strideH, strideW, padH, padW } = first.geometry;
    be.conv3x3ThroughConv2d(gy, weight.data, first.x.data, first.reluMask, first.weight.requiresGrad ? first.weight.ensureGrad() : null,
      first.bias?.requiresGrad ? first.bias.ensureGrad() : null, d.n, d.cout, d.cin, d.h, d.w, pad, winogradTile(d.h, d.w),
      f.cin, f.h, f.w, f.kh, f.kw, strideH, strideW, padH, padW);
    first.taken = true;
    x.skipGrad();
  } else if (x.requiresGrad) {
    // The input gradient overwrites x's when nothing has reached it yet (no zeroing pass).
    const sink = x.gradSink();
    be.conv3x3(gy, weight.data, sink.grad, d.n, d.cout, d.cin, d.oh, d.ow, 2 - pad, true, !sink.overwrite, winogradTile(d.h, d.w), null, false);
  }
  if (gw) be.conv3x3WeightGrad(x.data, gy, gw, d.n, d.cin, d.cout, d.h, d.w, pad, winogradTile(d.oh, d.ow));
}

/**
 * 2-D convolution (cross-correlation, as PyTorch's Conv2d) with optional bias and fused
 * ReLU. x: [n, in, h, w]; weight: [out, in, kh, kw]; bias: [out] or null.
 * Output: [n, out, oh, ow] with oh = ⌊(h + 2·padH - kh)/strideH⌋ + 1 (ow likewise),
 * on the buffers of `ws` when one is given (see Workspace).
 */
export function conv2d(
  x: Tensor, weight: Tensor, bias: Tensor | null, geometry: Conv2dGeometry, activation: 'none' | 'relu' = 'none', ws?: Workspace,
): Tensor {
  const d = convDims('conv2d', x, weight, bias, geometry);
  const { n, cin, h, w, cout, kh, kw, oh, ow } = d;
  const { strideH, strideW, padH, padW } = geometry;
  const be = getBackend();
  const hw = oh * ow;
  const relu = activation === 'relu';
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const y = outputTensor([n, cout, oh, ow], ws, inputs);
  const winograd = usesWinograd(cin, cout, kh, kw, geometry);
  // The backward pass reads the ReLU's mask as bits, not y (32 times the bytes).
  const reluMask = relu && !winograd && willRecord(inputs) ? scratchBytes(reluMaskBytes(n, cout * hw)) : null;
  if (winograd) {
    be.conv3x3(x.data, weight.data, y.data, n, cin, cout, h, w, padH, false, false, 2, bias?.data ?? null, relu);
  } else {
    be.conv2d(x.data, weight.data, bias?.data ?? null, y.data, n, cin, cout, h, w, kh, kw, strideH, strideW, padH, padW, relu, reluMask);
  }

  const first: FirstLayer = { x, weight, bias, d, geometry, reluMask, taken: false };
  recordOp(y, inputs, () => {
    if (first.taken) return;
    const gy = y.grad!;
    const gb = bias?.requiresGrad ? bias.ensureGrad() : null;
    if (winograd) {
      // y.grad belongs to y and nobody reads it after this: mask it in place.
      if (relu || gb) be.channelBiasActBackward(gy, y.data, gb, n, cout, hw, relu);
      return conv3x3Backward(x, weight, gy, d, padH);
    }
    const gw = weight.requiresGrad ? weight.ensureGrad() : null;
    const sink = x.requiresGrad ? x.gradSink() : null;
    if (!gw && !sink && !gb) return;
    be.conv2dBackward(x.data, weight.data, gy, sink?.grad ?? null, gw, n, cin, cout, h, w, kh, kw, strideH, strideW, padH, padW,
      !sink?.overwrite, reluMask, gb);
  });
  if (y.requiresGrad && !winograd && !x.requiresGrad) firstLayers.set(y, first);
  return y;
}

/**
 * Whether conv2dMaxPool computes this convolution of an h×w input followed by 2×2 max
 * pooling with stride 2 in one op: a convolution on conv3x3 whose output has even sides.
 */
export function poolsInOne(inChannels: number, outChannels: number, kh: number, kw: number, geometry: Conv2dGeometry, h: number, w: number): boolean {
  return usesWinograd(inChannels, outChannels, kh, kw, geometry) && (h + 2 * geometry.padH - 2) % 2 === 0 && (w + 2 * geometry.padW - 2) % 2 === 0;
}

/**
 * conv2d (with its bias and activation) followed by maxPool2d(·, 2, 2), as one op where
 * poolsInOne: the backend pools the convolution's outputs as it stores them
 * (conv3x3Pool), so the unpooled output is never written or read back, and the backward
 * pass takes the pooling, activation and bias gradients in one pass
 * (maxPool2dActBackward). The convolution runs on F(poolTile×poolTile, 3×3): with tile 2
 * the values and gradients are bitwise those of the two ops, with tile 4 the values
 * round as F(4×4) does (see poolTile) and the gradients follow the windows' winners.
 * Output [n, out, oh/2, ow/2] on the buffers of `ws` when one is given.
 */
export function conv2dMaxPool(
  x: Tensor, weight: Tensor, bias: Tensor | null, geometry: Conv2dGeometry, activation: 'none' | 'relu' = 'none', ws?: Workspace,
): Tensor {
  const d = convDims('conv2dMaxPool', x, weight, bias, geometry);
  const { n, cin, h, w, cout, kh, kw, oh, ow } = d;
  check(poolsInOne(cin, cout, kh, kw, geometry, h, w),
    () => `conv2dMaxPool: a ${kh}x${kw} convolution of ${cin} to ${cout} channels with stride ${geometry.strideH}x${geometry.strideW} and padding ${geometry.padH}x${geometry.padW} on ${h}x${w} does not pool in one op (see poolsInOne)`);
  const be = getBackend();
  const relu = activation === 'relu';
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const y = outputTensor([n, cout, oh / 2, ow / 2], ws, inputs);
  const argmax = usesWorkspace(ws, inputs) ? ws.indices(y.size) : new Uint8Array(y.size);
  be.conv3x3Pool(x.data, weight.data, y.data, argmax, n, cin, cout, h, w, geometry.padH, poolTile(oh, ow), bias?.data ?? null, relu);
  recordOp(y, inputs, () => {
    const gy = ws ? ws.scratch(n * cout * oh * ow) : new Float32Array(n * cout * oh * ow);
    const gb = bias?.requiresGrad ? bias.ensureGrad() : null;
    be.maxPool2dActBackward(y.grad!, y.data, argmax, gy, gb, n, cout, oh, ow, relu);
    conv3x3Backward(x, weight, gy, d, geometry.padH);
  });
  return y;
}

/** k×k max pooling with the given stride (default k), no padding. x: [n, c, h, w] -> [n, c, ⌊(h-k)/s⌋+1, ⌊(w-k)/s⌋+1]. */
export function maxPool2d(x: Tensor, k: number, stride = k, ws?: Workspace): Tensor {
  check(x.shape.length === 4, () => `maxPool2d: input must be rank 4 [batch, channels, height, width], got rank ${x.shape.length} (shape ${shapeStr(x)})`);
  check(Number.isInteger(k) && k >= 1 && Number.isInteger(stride) && stride >= 1,
    () => `maxPool2d: window and stride must be positive integers, got ${k} and ${stride}`);
  const [n, c, h, w] = x.shape;
  check(h >= k && w >= k, () => `maxPool2d: a ${k}x${k} window does not fit a ${h}x${w} input`);
  const oh = Math.floor((h - k) / stride) + 1, ow = Math.floor((w - k) / stride) + 1;
  const be = getBackend();
  const y = outputTensor([n, c, oh, ow], ws, [x]);
  be.maxPool2d(x.data, y.data, n * c, h, w, k, stride);
  recordOp(y, [x], () => be.maxPool2dBackward(x.data, y.grad!, x.ensureGrad(), n * c, h, w, k, stride));
  return y;
}

/**
 * [n, ...] -> [n, prod(...)], sharing x's data (no copy). Back-propagation through it costs
 * nothing: the output's gradient becomes x's (Tensor.passGrad), and the op that writes it
 * overwrites it rather than adding to zeros.
 */
export function flatten(x: Tensor): Tensor {
  check(x.shape.length >= 1, 'flatten: input must have a batch dimension');
  const n = x.shape[0];
  const y = new Tensor(x.data, [n, n === 0 ? sizeOf(x.shape.slice(1)) : x.size / n]);
  return recordOp(y, [x], () => x.passGrad(y.grad!));
}

/**
 * Inverted dropout with a given multiplier per element: y = x ⊙ keep, where keep[i] is
 * 0 (dropped) or 1/(1-p) (kept). `dropoutMask` draws one from an Rng stream.
 */
export function dropout(x: Tensor, keep: Float32Array): Tensor {
  check(keep.length === x.size, () => `dropout: mask has ${keep.length} entries, input has ${x.size}`);
  const y = Tensor.zeros(x.shape);
  const xd = x.data, yd = y.data;
  for (let i = 0; i < yd.length; i++) yd[i] = xd[i] * keep[i];
  recordOp(y, [x], () => {
    const gy = y.grad!, gx = x.ensureGrad();
    for (let i = 0; i < gx.length; i++) gx[i] += gy[i] * keep[i];
  });
  return y;
}

/**
 * Writes a dropout multiplier mask into `out`: each entry independently 0 with
 * probability p, else 1/(1-p), from 32-bit draws of `rng` (never Math.random).
 */
export function dropoutMask(out: Float32Array, p: number, rng: Rng): Float32Array {
  check(p >= 0 && p < 1, `dropout: probability must be in [0, 1), got ${p}`);
  const threshold = Math.round(p * 4294967296), scale = 1 / (1 - p);
  for (let i = 0; i < out.length; i++) out[i] = rng.nextU32() < threshold ? 0 : scale;
  return out;
}
