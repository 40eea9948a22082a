import type { Backend } from './backend.js';

/**
 * Plain TypeScript kernels: simple loops with a fixed summation order (float64
 * accumulators). Slow, obviously correct, and the oracle for every fast kernel.
 */
export const referenceBackend: Backend = {
  name: 'reference',

  matmul(a, b, c, m, k, n, transA, transB, accumulate) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[p * m + i] : a[i * k + p];
          const bv = transB ? b[j * k + p] : b[p * n + j];
          s += av * bv;
        }
        c[i * n + j] = accumulate ? c[i * n + j] + s : s;
      }
    }
  },

  biasAct(x, bias, out, rows, cols, relu) {
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const v = x[i * cols + j] + bias[j];
        // `v > 0 ? v : 0` would turn NaN into 0; keep NaN visible.
        out[i * cols + j] = relu && v < 0 ? 0 : v;
      }
    }
  },

  reluBackward(gradOut, y, gradIn, n) {
    for (let i = 0; i < n; i++) gradIn[i] = y[i] > 0 ? gradOut[i] : 0;
  },

  sumRows(x, out, rows, cols, accumulate) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += x[i * cols + j];
      out[j] = accumulate ? out[j] + s : s;
    }
  },

  softmaxXent(logits, labels, rows, cols, grad, gradScale) {
    let total = 0;
    for (let i = 0; i < rows; i++) {
      const o = i * cols;
      let max = -Infinity;
      for (let j = 0; j < cols; j++) max = Math.max(max, logits[o + j]);
      let sum = 0;
      for (let j = 0; j < cols; j++) sum += Math.exp(logits[o + j] - max);
      const label = labels[i];
      total += Math.log(sum) - (logits[o + label] - max);
      if (grad) {
        for (let j = 0; j < cols; j++) {
          const p = Math.exp(logits[o + j] - max) / sum;
          grad[o + j] = (p - (j === label ? 1 : 0)) * gradScale;
        }
      }
    }
    return total;
  },

  countCorrect(logits, labels, rows, cols) {
    let correct = 0;
    for (let i = 0; i < rows; i++) {
      let best = 0;
      for (let j = 1; j < cols; j++) if (logits[i * cols + j] > logits[i * cols + best]) best = j;
      if (best === labels[i]) correct++;
    }
    return correct;
  },

  adam(param, grad, m, v, mask, n, lr, beta1, beta2, eps, step) {
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
    const stepSize = lr / bc1;
    for (let i = 0; i < n; i++) {
      if (mask && mask[i] === 0) {
        param[i] = 0; m[i] = 0; v[i] = 0;
        continue;
      }
      const g = grad[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      param[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  },

  sgd(param, grad, buf, mask, n, lr, momentum, weightDecay) {
    for (let i = 0; i < n; i++) {
      if (mask && mask[i] === 0) {
        param[i] = 0; buf[i] = 0;
        continue;
      }
      const g = grad[i] + weightDecay * param[i];
      buf[i] = momentum * buf[i] + g;
      param[i] -= lr * buf[i];
    }
  },

  applyMask(x, mask, n) {
    for (let i = 0; i < n; i++) if (mask[i] === 0) x[i] = 0;
  },
};
