import { getBackend } from '../backend/index.js';
import { check } from '../core/errors.js';
import { Tensor, isGradEnabled, recordOp, scratchArray, zeroArray } from './tensor.js';

/**
 * y = x·Wᵀ + b, then ReLU when `activation` is 'relu' (fused: one pass over y).
 * x: [n, in], weight: [out, in] (PyTorch layout), bias: [out].
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, activation: 'none' | 'relu' = 'none'): Tensor {
  check(x.shape.length === 2, () => `linear: input must be rank 2 [batch, features], got shape [${x.shape.join(', ')}]`);
  check(weight.shape.length === 2 && weight.shape[1] === x.shape[1],
    () => `linear: weight shape [${weight.shape.join(', ')}] does not match input features ${x.shape[1]}`);
  const be = getBackend();
  const [n, inF] = x.shape;
  const outF = weight.shape[0];
  const y = Tensor.empty([n, outF]);
  be.matmul(x.data, weight.data, y.data, n, inF, outF, false, true, false);
  if (bias) be.biasAct(y.data, bias.data, y.data, n, outF, activation === 'relu');
  else if (activation === 'relu') be.biasAct(y.data, zeroArray(outF), y.data, n, outF, true);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return recordOp(y, inputs, () => {
    let gy = y.grad!;
    if (activation === 'relu') {
      const masked = scratchArray(gy.length);
      be.reluBackward(gy, y.data, masked, gy.length);
      gy = masked;
    }
    if (weight.requiresGrad) {
      // Right after an optimiser step the weight's gradient is known zero: overwritten, not read and added to.
      const sink = weight.gradSink();
      be.matmul(gy, x.data, sink.grad, outF, n, inF, true, false, !sink.overwrite);
    }
    if (bias?.requiresGrad) be.sumRows(gy, bias.ensureGrad(), n, outF, true);
    if (x.requiresGrad) {
      // The input gradient overwrites x's when nothing has reached it yet (no zeroing pass).
      const sink = x.gradSink();
      be.matmul(gy, weight.data, sink.grad, n, outF, inF, false, false, !sink.overwrite);
    }
  });
}

/** max(0, x) elementwise. */
export function relu(x: Tensor): Tensor {
  const be = getBackend();
  const y = Tensor.zeros(x.shape);
  be.biasAct(x.data, zeroArray(x.size), y.data, 1, x.size, true);
  return recordOp(y, [x], () => {
    const gx = new Float32Array(x.size);
    be.reluBackward(y.grad!, y.data, gx, x.size);
    x.addGrad(gx);
  });
}

/** Mean softmax cross-entropy of logits [n, classes] against integer labels; a scalar. */
export function softmaxCrossEntropy(logits: Tensor, labels: Int32Array): Tensor {
  check(logits.shape.length === 2, () => `softmaxCrossEntropy: logits must be rank 2, got shape [${logits.shape.join(', ')}]`);
  const [n, classes] = logits.shape;
  check(labels.length === n, () => `softmaxCrossEntropy: ${labels.length} labels for ${n} rows of logits`);
  for (let i = 0; i < n; i++) {
    check(labels[i] >= 0 && labels[i] < classes, () => `softmaxCrossEntropy: label ${labels[i]} at row ${i} is outside [0, ${classes})`);
  }
  const be = getBackend();
  const needGrad = isGradEnabled() && logits.requiresGrad;
  const gradLogits = needGrad ? scratchArray(logits.size) : null;
  const total = be.softmaxXent(logits.data, labels, n, classes, gradLogits, 1 / n);
  const loss = new Tensor(Float32Array.of(total / n), []);
  return recordOp(loss, [logits], () => {
    const g = loss.grad![0];
    const { grad: gx, overwrite } = logits.gradSink();  // overwritten when nothing has reached it yet
    for (let i = 0; i < gx.length; i++) gx[i] = overwrite ? g * gradLogits![i] : gx[i] + g * gradLogits![i];
  });
}
