import { panelColumns, panelIndex as at, reluMaskBytes, type Backend, type ConvPattern, type SparsePattern } from './backend.js';

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

  selectByMagnitude(values, mask, among, count, largest, out) {
    const fn = 'selectByMagnitude';
    if (mask.length !== values.length) throw new RangeError(`${fn}: mask has ${mask.length} elements, values has ${values.length}`);
    if (out.length < count) throw new RangeError(`${fn}: out has ${out.length} elements, needs count = ${count}`);
    const key = (i: number) => {
      const m = Number.isNaN(values[i]) ? Infinity : Math.abs(values[i]);
      return largest ? -m : m;
    };
    const eligible: number[] = [];
    for (let i = 0; i < values.length; i++) if ((mask[i] !== 0 ? 1 : 0) === among) eligible.push(i);
    if (count > eligible.length) throw new RangeError(`${fn}: asked for ${count} of ${eligible.length} eligible entries`);
    eligible.sort((i, j) => key(i) - key(j) || i - j);
    out.set(eligible.slice(0, count).sort((i, j) => i - j));
  },

  selectByMagnitudeAt(values, at, count, largest, out) {
    const fn = 'selectByMagnitudeAt';
    if (at.length !== values.length) throw new RangeError(`${fn}: at has ${at.length} elements, values has ${values.length}`);
    if (count > values.length) throw new RangeError(`${fn}: asked for ${count} of ${values.length} entries`);
    if (out.length < count) throw new RangeError(`${fn}: out has ${out.length} elements, needs count = ${count}`);
    at.forEach((f, i) => {
      if (f < 0) throw new RangeError(`${fn}: at[${i}] = ${f} is negative`);
    });
    const key = (i: number) => {
      const m = Number.isNaN(values[i]) ? Infinity : Math.abs(values[i]);
      return largest ? -m : m;
    };
    const order = Array.from(values, (_, i) => i).sort((i, j) => key(i) - key(j) || at[i] - at[j]);
    const chosen = order.slice(0, count).map((i) => at[i]).sort((x, y) => x - y);
    if (chosen.some((f, j) => j > 0 && f === chosen[j - 1])) throw new RangeError(`${fn}: at repeats an index among the ${count} entries chosen`);
    out.set(chosen);
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
      const g = grad[i];
      grad[i] = 0;
      if (mask && mask[i] === 0) {
        param[i] = 0; m[i] = 0; v[i] = 0;
        continue;
      }
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      param[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  },

  sgd(param, grad, buf, mask, n, lr, momentum, weightDecay) {
    for (let i = 0; i < n; i++) {
      const g = grad[i] + weightDecay * param[i];
      grad[i] = 0;
      if (mask && mask[i] === 0) {
        param[i] = 0; buf[i] = 0;
        continue;
      }
      buf[i] = momentum * buf[i] + g;
      param[i] -= lr * buf[i];
    }
  },

  adviseHugePages() {
    return false;
  },

  gatherRows(src, rowSize, indices, from, count, dst) {
    if (!(Number.isInteger(rowSize) && rowSize >= 1)) throw new RangeError(`gatherRows: rowSize must be a positive integer, got ${rowSize}`);
    const rows = src.length / rowSize;
    for (let b = 0; b < count; b++) {
      const i = indices[from + b];
      if (!(i >= 0 && i < rows)) throw new RangeError(`gatherRows: indices[${from + b}] = ${i} is not a row of src (${rows} rows)`);
      dst.set(src.subarray(i * rowSize, (i + 1) * rowSize), b * rowSize);
    }
  },

  applyMask(x, mask, n) {
    for (let i = 0; i < n; i++) if (mask[i] === 0) x[i] = 0;
  },

  im2col(x, col, channels, height, width, kh, kw, strideH, strideW, padH, padW) {
    const outH = convOut(height, kh, strideH, padH), outW = convOut(width, kw, strideW, padW);
    let r = 0;
    for (let c = 0; c < channels; c++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++, r++) {
          for (let oy = 0; oy < outH; oy++) {
            const y = oy * strideH - padH + i;
            for (let ox = 0; ox < outW; ox++) {
              const xx = ox * strideW - padW + j;
              const inside = y >= 0 && y < height && xx >= 0 && xx < width;
              col[(r * outH + oy) * outW + ox] = inside ? x[(c * height + y) * width + xx] : 0;
            }
          }
        }
      }
    }
  },

  conv2d(x, weight, bias, out, n, inChannels, outChannels, height, width, kh, kw, strideH, strideW, padH, padW, relu, reluMask) {
    const outH = convOut(height, kh, strideH, padH), outW = convOut(width, kw, strideW, padW);
    if (outH < 1 || outW < 1) throw new RangeError(`conv2d: a ${kh}x${kw} kernel with padding ${padH}x${padW} does not fit a ${height}x${width} image`);
    if (reluMask && !relu) throw new TypeError('conv2d: reluMask goes with relu');
    const g: DirectConv = { x, n, inChannels, outChannels, height, width, kh, kw, strideH, strideW, padH, padW, outH, outW };
    const k = (o: number, c: number, i: number, j: number) => weight[((o * inChannels + c) * kh + i) * kw + j];
    for (let b = 0; b < n; b++) {
      for (let o = 0; o < outChannels; o++) {
        for (let oy = 0; oy < outH; oy++) {
          for (let ox = 0; ox < outW; ox++) {
            let v = Math.fround(directConvSum(g, k, b, o, oy, ox));
            if (bias || relu) v = Math.fround(v + (bias ? bias[o] : 0));
            out[((b * outChannels + o) * outH + oy) * outW + ox] = relu && v < 0 ? 0 : v;
          }
        }
      }
    }
    if (reluMask) writeReluMask(out, reluMask, n, outChannels * outH * outW);
  },

  conv2dBackward(x, weight, gradOut, gradIn, gradWeight, n, inChannels, outChannels, height, width, kh, kw, strideH, strideW, padH, padW, accumulateIn, reluMask, gradBias) {
    const outH = convOut(height, kh, strideH, padH), outW = convOut(width, kw, strideW, padW);
    if (outH < 1 || outW < 1) throw new RangeError(`conv2dBackward: a ${kh}x${kw} kernel with padding ${padH}x${padW} does not fit a ${height}x${width} image`);
    if (reluMask || gradBias) {
      // The activation's backward on a copy: gradOut is only read.
      gradOut = gradOut.slice();
      if (reluMask) applyReluMask(gradOut, reluMask, n, outChannels * outH * outW);
      if (gradBias) referenceBackend.sumChannels(gradOut, gradBias, n, outChannels, outH * outW, true);
    }
    const gy = (b: number, o: number, oy: number, ox: number) => gradOut[((b * outChannels + o) * outH + oy) * outW + ox];
    const g: DirectConv = { x, n, inChannels, outChannels, height, width, kh, kw, strideH, strideW, padH, padW, outH, outW };
    if (gradWeight) directConvWeightGrad(g, gradOut, gradWeight);
    if (gradIn) {
      // Gather form: each input entry sums (in float64) every product it took part in.
      for (let b = 0; b < n; b++) {
        for (let c = 0; c < inChannels; c++) {
          for (let y = 0; y < height; y++) {
            for (let xx = 0; xx < width; xx++) {
              let s = 0;
              forEachTapOfInput(y, xx, g, (i, j, oy, ox) => {
                for (let o = 0; o < outChannels; o++) s += gy(b, o, oy, ox) * weight[((o * inChannels + c) * kh + i) * kw + j];
              });
              const at = ((b * inChannels + c) * height + y) * width + xx;
              gradIn[at] = accumulateIn ? gradIn[at] + s : s;
            }
          }
        }
      }
    }
  },

  conv3x3(x, weight, out, n, inChannels, outChannels, height, width, pad, flip, accumulate, tile, bias, relu) {
    if (tile !== 2 && tile !== 4) throw new RangeError(`conv3x3: tile must be 2 or 4, got ${tile}`);
    const outH = height + 2 * pad - 2, outW = width + 2 * pad - 2;
    if (outH < 1 || outW < 1) throw new RangeError(`conv3x3: a 3x3 kernel with padding ${pad} does not fit a ${height}x${width} image`);
    const k = (o: number, c: number, i: number, j: number) =>
      flip ? weight[(c * outChannels + o) * 9 + (2 - i) * 3 + (2 - j)] : weight[(o * inChannels + c) * 9 + i * 3 + j];
    const g: DirectConv = { x, n, inChannels, outChannels, height, width, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: pad, padW: pad, outH, outW };
    for (let b = 0; b < n; b++) {
      for (let o = 0; o < outChannels; o++) {
        for (let oy = 0; oy < outH; oy++) {
          for (let ox = 0; ox < outW; ox++) {
            const s = directConvSum(g, k, b, o, oy, ox);
            const at = ((b * outChannels + o) * outH + oy) * outW + ox;
            let v = Math.fround(accumulate ? out[at] + s : s);
            if (bias) v = Math.fround(v + bias[o]);
            out[at] = relu && v < 0 ? 0 : v;
          }
        }
      }
    }
  },

  conv3x3Pool(x, weight, pooled, argmax, n, inChannels, outChannels, height, width, pad, tile, bias, relu) {
    if (tile !== 2 && tile !== 4) throw new RangeError(`conv3x3Pool: tile must be 2 or 4, got ${tile}`);
    const outH = height + 2 * pad - 2, outW = width + 2 * pad - 2;
    if (outH % 2 !== 0 || outW % 2 !== 0) throw new RangeError(`conv3x3Pool: 2x2 pooling needs an even output, got ${outH}x${outW}`);
    if (outH % tile !== 0 || outW % tile !== 0) {
      throw new RangeError(`conv3x3Pool: pooling F(4x4) tiles needs an output whose sides are multiples of 4, got ${outH}x${outW}`);
    }
    const y = new Float32Array(n * outChannels * outH * outW);
    referenceBackend.conv3x3(x, weight, y, n, inChannels, outChannels, height, width, pad, false, false, tile, bias, relu);
    const planes = n * outChannels, ph = outH / 2, pw = outW / 2;
    for (let p = 0; p < planes; p++) {
      for (let oy = 0; oy < ph; oy++) {
        for (let ox = 0; ox < pw; ox++) {
          const at = windowArgmax(y, p, outH, outW, 2, 2 * oy, 2 * ox), i = (p * ph + oy) * pw + ox;
          pooled[i] = y[at];
          // The winner's offset from the window's first entry: 0 or 1 in its first row, outW or outW + 1 in its second.
          const d = at - ((p * outH + 2 * oy) * outW + 2 * ox);
          argmax[i] = d >= outW ? 2 + d - outW : d;
        }
      }
    }
  },

  maxPool2dActBackward(gradPooled, pooled, argmax, gradOut, gradBias, n, channels, height, width, relu) {
    if (height % 2 !== 0 || width % 2 !== 0) throw new RangeError(`maxPool2dActBackward: 2x2 pooling needs an even height and width, got ${height}x${width}`);
    const ph = height / 2, pw = width / 2;
    gradOut.fill(0, 0, n * channels * height * width);
    for (let p = 0; p < n * channels; p++) {
      for (let oy = 0; oy < ph; oy++) {
        for (let ox = 0; ox < pw; ox++) {
          const i = (p * ph + oy) * pw + ox, k = argmax[i];
          if (relu && !(pooled[i] > 0)) continue;
          gradOut[(p * height + 2 * oy + (k >> 1)) * width + 2 * ox + (k & 1)] += gradPooled[i];
        }
      }
    }
    if (gradBias) referenceBackend.sumChannels(gradOut, gradBias, n, channels, height * width, true);
  },

  conv3x3ThroughConv2d(gradOut, weight, x, reluMask, gradWeight, gradBias, n, outChannels, channels, height, width, pad, tile,
    inChannels, inHeight, inWidth, kh, kw, strideH, strideW, padH, padW) {
    if (pad > 2) throw new RangeError(`conv3x3ThroughConv2d: pad must be 0, 1 or 2, got ${pad}`);
    const fh = convOut(inHeight, kh, strideH, padH), fw = convOut(inWidth, kw, strideW, padW);
    if (fh !== height || fw !== width) {
      throw new RangeError(`conv3x3ThroughConv2d: the first convolution's output is ${fh}x${fw}, the 3x3 convolution's input ${height}x${width}`);
    }
    const gy = new Float32Array(n * channels * height * width);
    referenceBackend.conv3x3(gradOut, weight, gy, n, outChannels, channels, height + 2 * pad - 2, width + 2 * pad - 2, 2 - pad, true, false, tile, null, false);
    // Without an input gradient conv2dBackward never reads the first layer's weight.
    const unread = new Float32Array(channels * inChannels * kh * kw);
    referenceBackend.conv2dBackward(x, unread, gy, null, gradWeight, n, inChannels, channels, inHeight, inWidth, kh, kw, strideH, strideW, padH, padW,
      false, reluMask, gradBias);
  },

  conv3x3WeightGrad(x, gradOut, gradWeight, n, inChannels, outChannels, height, width, pad, tile) {
    if (tile !== 2 && tile !== 4) throw new RangeError(`conv3x3WeightGrad: tile must be 2 or 4, got ${tile}`);
    const outH = height + 2 * pad - 2, outW = width + 2 * pad - 2;
    if (outH < 1 || outW < 1) throw new RangeError(`conv3x3WeightGrad: a 3x3 kernel with padding ${pad} does not fit a ${height}x${width} image`);
    directConvWeightGrad({ x, n, inChannels, outChannels, height, width, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: pad, padW: pad, outH, outW }, gradOut, gradWeight);
  },

  col2im(col, x, channels, height, width, kh, kw, strideH, strideW, padH, padW) {
    // Gather form: each x entry sums (in float64, fixed order) the col entries copied from it.
    const outH = convOut(height, kh, strideH, padH), outW = convOut(width, kw, strideW, padW);
    const g = { kh, kw, strideH, strideW, padH, padW, outH, outW };
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < height; y++) {
        for (let xx = 0; xx < width; xx++) {
          let s = 0;
          forEachTapOfInput(y, xx, g, (i, j, oy, ox) => {
            s += col[((((c * kh + i) * kw + j) * outH) + oy) * outW + ox];
          });
          x[(c * height + y) * width + xx] += s;
        }
      }
    }
  },

  channelBiasAct(x, bias, out, n, channels, size, relu) {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const o = (i * channels + c) * size;
        for (let k = 0; k < size; k++) {
          const v = x[o + k] + bias[c];
          out[o + k] = relu && v < 0 ? 0 : v;
        }
      }
    }
  },

  channelBiasActBackward(gradOut, y, gradBias, n, channels, size, relu) {
    if (relu) referenceBackend.reluBackward(gradOut, y, gradOut, n * channels * size);
    if (gradBias) referenceBackend.sumChannels(gradOut, gradBias, n, channels, size, true);
  },

  sumChannels(x, out, n, channels, size, accumulate) {
    for (let c = 0; c < channels; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const o = (i * channels + c) * size;
        for (let k = 0; k < size; k++) s += x[o + k];
      }
      out[c] = accumulate ? out[c] + s : s;
    }
  },

  maxPool2d(x, out, planes, height, width, k, stride) {
    const outH = poolOut(height, k, stride), outW = poolOut(width, k, stride);
    for (let p = 0; p < planes; p++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          out[(p * outH + oy) * outW + ox] = x[windowArgmax(x, p, height, width, k, oy * stride, ox * stride)];
        }
      }
    }
  },

  maxPool2dBackward(x, gradOut, gradIn, planes, height, width, k, stride) {
    const outH = poolOut(height, k, stride), outW = poolOut(width, k, stride);
    for (let p = 0; p < planes; p++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          gradIn[windowArgmax(x, p, height, width, k, oy * stride, ox * stride)] += gradOut[(p * outH + oy) * outW + ox];
        }
      }
    }
  },

  channelMoments(x, mean, variance, n, channels, size) {
    const m = n * size;
    for (let c = 0; c < channels; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) for (let k = 0, o = (i * channels + c) * size; k < size; k++) s += x[o + k];
      const mu = s / m;
      let ss = 0;
      for (let i = 0; i < n; i++) for (let k = 0, o = (i * channels + c) * size; k < size; k++) ss += (x[o + k] - mu) ** 2;
      mean[c] = mu;
      variance[c] = ss / m;
    }
  },

  channelAffineAct(x, scale, shift, residual, out, n, channels, size, relu) {
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        const o = (i * channels + c) * size;
        for (let k = 0; k < size; k++) {
          const a = Math.fround(Math.fround(x[o + k] * scale[c]) + shift[c]);
          const v = residual ? a + residual[o + k] : a;
          out[o + k] = relu && v < 0 ? 0 : v;
        }
      }
    }
  },

  batchNormBackward(x, y, gradOut, mean, invstd, weight, gradIn, gradWeight, gradBias, gradResidual, n, channels, size, training, relu,
    accumulateIn, accumulateResidual, shift) {
    if (relu && !y && !shift) throw new TypeError('batchNormBackward: y or shift is required with relu');
    const m = n * size;
    // Without y, the ReLU's input as channelAffineAct computed it.
    const positive = (j: number) => {
      if (y) return y[j] > 0;
      const c = Math.floor(j / size) % channels;
      return Math.fround(Math.fround(x[j] * Math.fround(weight[c] * invstd[c])) + shift![c]) > 0;
    };
    const g = (j: number) => (relu && !positive(j) ? 0 : gradOut[j]);
    if (gradResidual) for (let j = 0; j < n * channels * size; j++) gradResidual[j] = accumulateResidual ? gradResidual[j] + g(j) : g(j);
    if (gradIn && !accumulateIn) gradIn.fill(0, 0, n * channels * size);
    for (let c = 0; c < channels; c++) {
      const mu = mean[c], is = invstd[c];
      let sg = 0, sgx = 0;
      for (let i = 0; i < n; i++) {
        for (let k = 0, o = (i * channels + c) * size; k < size; k++) {
          const gj = g(o + k);
          sg += gj;
          sgx += gj * (x[o + k] - mu) * is;
        }
      }
      if (gradBias) gradBias[c] += sg;
      if (gradWeight) gradWeight[c] += sgx;
      if (!gradIn) continue;
      const a = weight[c] * is, mg = training ? sg / m : 0, mgx = training ? sgx / m : 0;
      for (let i = 0; i < n; i++) {
        for (let k = 0, o = (i * channels + c) * size; k < size; k++) {
          gradIn[o + k] += a * (g(o + k) - mg - (x[o + k] - mu) * is * mgx);
        }
      }
    }
  },

  addAct(a, b, out, n, relu) {
    for (let i = 0; i < n; i++) {
      const v = a[i] + b[i];
      out[i] = relu && v < 0 ? 0 : v;
    }
  },

  addActBackward(gradOut, y, gradA, gradB, n, relu, accumulateA, accumulateB) {
    if (relu && !y) throw new TypeError('addActBackward: y is required with relu');
    for (let i = 0; i < n; i++) {
      const g = relu && !(y![i] > 0) ? 0 : gradOut[i];
      if (gradA) gradA[i] = accumulateA ? gradA[i] + g : g;
      if (gradB) gradB[i] = accumulateB ? gradB[i] + g : g;
    }
  },

  meanPlanes(x, out, planes, size) {
    for (let p = 0; p < planes; p++) {
      let s = 0;
      for (let k = 0; k < size; k++) s += x[p * size + k];
      out[p] = s / size;
    }
  },

  meanPlanesBackward(gradOut, gradIn, planes, size) {
    for (let p = 0; p < planes; p++) {
      const g = gradOut[p] / size;
      for (let k = 0; k < size; k++) gradIn[p * size + k] += g;
    }
  },

  lstmSequence(gates, weightHh, c, h, n, steps, hidden) {
    const G = 4 * hidden, zeros = new Float32Array(n * hidden);
    for (let t = 0; t < steps; t++) {
      const g = gates.subarray(t * n * G, (t + 1) * n * G);
      if (t > 0) referenceBackend.matmul(h.subarray((t - 1) * n * hidden, t * n * hidden), weightHh, g, n, hidden, G, false, true, true);
      lstmCell(g, t > 0 ? c.subarray((t - 1) * n * hidden, t * n * hidden) : zeros, c.subarray(t * n * hidden), h.subarray(t * n * hidden), n, hidden);
    }
  },

  lstmSequenceBackward(gates, c, weightHh, gradH, gradGates, n, steps, hidden) {
    const G = 4 * hidden, zeros = new Float32Array(n * hidden), gradC = new Float32Array(n * hidden);
    for (let t = steps - 1; t >= 0; t--) {
      const dg = gradGates.subarray(t * n * G, (t + 1) * n * G);
      lstmCellBackward(gates.subarray(t * n * G), t > 0 ? c.subarray((t - 1) * n * hidden) : zeros, c.subarray(t * n * hidden),
        gradH.subarray(t * n * hidden), gradC, dg, n, hidden);
      if (t > 0) referenceBackend.matmul(dg, weightHh, gradH.subarray((t - 1) * n * hidden, t * n * hidden), n, G, hidden, false, false, true);
    }
  },

  softmaxRows(x, out, rows, cols, causal) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols, seen = causal ? (r % cols) + 1 : cols;
      let max = -Infinity;
      for (let j = 0; j < seen; j++) max = Math.max(max, x[o + j]);
      let sum = 0;
      for (let j = 0; j < seen; j++) sum += Math.exp(x[o + j] - max);
      for (let j = 0; j < seen; j++) out[o + j] = Math.exp(x[o + j] - max) / sum;
      for (let j = seen; j < cols; j++) out[o + j] = 0;
    }
  },

  softmaxRowsBackward(y, gradOut, gradIn, rows, cols) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += gradOut[o + j] * y[o + j];
      for (let j = 0; j < cols; j++) gradIn[o + j] = y[o + j] * (gradOut[o + j] - dot);
    }
  },

  causalAttention(qkv, out, q, k, v, p, n, T, heads, dim) {
    const dh = dim / heads, per = T * dh, scale = 1 / Math.sqrt(dh);
    const o = new Float32Array(per);
    for (let b = 0; b < n; b++) {
      for (let h = 0; h < heads; h++) {
        const i = b * heads + h;
        const qi = q.subarray(i * per, (i + 1) * per), ki = k.subarray(i * per, (i + 1) * per), vi = v.subarray(i * per, (i + 1) * per);
        const pi = p.subarray(i * T * T, (i + 1) * T * T);
        for (let t = 0; t < T; t++) {
          const src = (b * T + t) * 3 * dim + h * dh;
          for (let j = 0; j < dh; j++) {
            qi[t * dh + j] = qkv[src + j] * scale;
            ki[t * dh + j] = qkv[src + dim + j];
            vi[t * dh + j] = qkv[src + 2 * dim + j];
          }
        }
        referenceBackend.matmul(qi, ki, pi, T, dh, T, false, true, false);
        referenceBackend.softmaxRows(pi, pi, T, T, true);
        referenceBackend.matmul(pi, vi, o, T, T, dh, false, false, false);
        for (let t = 0; t < T; t++) out.set(o.subarray(t * dh, (t + 1) * dh), (b * T + t) * dim + h * dh);
      }
    }
  },

  causalAttentionBackward(gradOut, q, k, v, p, gradQkv, n, T, heads, dim, accumulate) {
    if (!accumulate) gradQkv.fill(0, 0, n * T * 3 * dim);
    const dh = dim / heads, per = T * dh, scale = 1 / Math.sqrt(dh);
    const go = new Float32Array(per), ds = new Float32Array(T * T), dq = new Float32Array(per), dk = new Float32Array(per), dv = new Float32Array(per);
    for (let b = 0; b < n; b++) {
      for (let h = 0; h < heads; h++) {
        const i = b * heads + h;
        const qi = q.subarray(i * per, (i + 1) * per), ki = k.subarray(i * per, (i + 1) * per), vi = v.subarray(i * per, (i + 1) * per);
        const pi = p.subarray(i * T * T, (i + 1) * T * T);
        for (let t = 0; t < T; t++) go.set(gradOut.subarray((b * T + t) * dim + h * dh, (b * T + t) * dim + (h + 1) * dh), t * dh);
        referenceBackend.matmul(go, vi, ds, T, dh, T, false, true, false);
        referenceBackend.matmul(pi, go, dv, T, T, dh, true, false, false);
        referenceBackend.softmaxRowsBackward(pi, ds, ds, T, T);
        referenceBackend.matmul(ds, ki, dq, T, T, dh, false, false, false);
        referenceBackend.matmul(ds, qi, dk, T, T, dh, true, false, false);
        for (let t = 0; t < T; t++) {
          const g = (b * T + t) * 3 * dim + h * dh;
          for (let j = 0; j < dh; j++) {
            // dQ = dS·K·scale (Q entered scaled); dK = dSᵀ·(Q·scale) is already right.
            gradQkv[g + j] += dq[t * dh + j] * scale;
            gradQkv[g + dim + j] += dk[t * dh + j];
            gradQkv[g + 2 * dim + j] += dv[t * dh + j];
          }
        }
      }
    }
  },

  layerNorm(x, gamma, beta, out, mean, rstd, rows, cols, eps) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let j = 0; j < cols; j++) s += x[o + j];
      const mu = s / cols;
      let v = 0;
      for (let j = 0; j < cols; j++) v += (x[o + j] - mu) * (x[o + j] - mu);
      const rs = 1 / Math.sqrt(v / cols + eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (let j = 0; j < cols; j++) out[o + j] = (x[o + j] - mu) * rs * gamma[j] + beta[j];
    }
  },

  layerNormBackward(x, gamma, mean, rstd, gradOut, gradX, gradGamma, gradBeta, rows, cols, accumulateX) {
    for (let r = 0; r < rows; r++) {
      const o = r * cols, mu = mean[r], rs = rstd[r];
      // With x̂ = (x - μ)·rstd and d = gradOut⊙γ: gradX = rstd·(d - mean(d) - x̂·mean(d⊙x̂)).
      let sd = 0, sdx = 0;
      for (let j = 0; j < cols; j++) {
        const d = gradOut[o + j] * gamma[j], xh = (x[o + j] - mu) * rs;
        sd += d;
        sdx += d * xh;
      }
      sd /= cols;
      sdx /= cols;
      for (let j = 0; j < cols; j++) {
        const xh = (x[o + j] - mu) * rs;
        const v = rs * (gradOut[o + j] * gamma[j] - sd - xh * sdx);
        gradX[o + j] = accumulateX ? gradX[o + j] + v : v;
        if (gradGamma) gradGamma[j] += gradOut[o + j] * xh;
        if (gradBeta) gradBeta[j] += gradOut[o + j];
      }
    }
  },

  sparsePattern(mask, rows, cols) {
    if (mask.length !== rows * cols) throw new RangeError(`sparsePattern: mask has ${mask.length} elements, expected rows*cols = ${rows * cols}`);
    return referencePattern(mask, rows, cols);
  },

  sparsePatternFrom(pattern, prevFlat, grown, from) {
    const fn = 'sparsePatternFrom';
    const p = asReference(pattern), total = p.rows * p.cols;
    if (from.length < p.nnz) throw new RangeError(`${fn}: from has ${from.length} elements, needs nnz = ${p.nnz}`);
    const inRange = (name: string, a: Int32Array) => a.forEach((f, j) => {
      if (!(f >= 0 && f < total)) throw new RangeError(`${fn}: ${name}[${j}] = ${f} is outside [0, ${total})`);
    });
    inRange('prevFlat', prevFlat);
    if (grown) inRange('grown', grown);
    const where = new Map<number, number>();
    prevFlat.forEach((f, j) => where.set(f, j));
    grown?.forEach((f) => where.delete(f));
    for (let k = 0; k < p.nnz; k++) from[k] = where.get(p.flat[k]) ?? -1;
  },

  sparsePatternMoved(old, mask, grown) {
    const { rows, cols, flat } = asReference(old);
    const pattern = referenceBackend.sparsePattern(mask, rows, cols), from = new Int32Array(pattern.nnz);
    referenceBackend.sparsePatternFrom(pattern, flat, grown, from);
    return { pattern, from };
  },

  sparsePatternChanged(old, dropped, grown, ...packed) {
    const fn = 'sparsePatternChanged';
    const { rows, cols, flat, nnz } = asReference(old), total = rows * cols;
    packed.forEach((a, i) => {
      if (a.length !== nnz) throw new RangeError(`${fn}: packed array ${i} has ${a.length} elements, old has nnz = ${nnz}`);
    });
    if (packed.length && (dropped?.length ?? 0) !== (grown?.length ?? 0)) {
      throw new RangeError(`${fn}: packed arrays move in place only at the same count: ${dropped?.length ?? 0} dropped, ${grown?.length ?? 0} grown`);
    }
    const mask = new Float32Array(total);
    for (const f of flat) mask[f] = 1;
    dropped?.forEach((f, j) => {
      if (!(f >= 0 && f < total)) throw new RangeError(`${fn}: dropped[${j}] = ${f} is outside [0, ${total})`);
      if (mask[f] !== 1) throw new RangeError(`${fn}: dropped must be distinct nonzeros of old: dropped[${j}] = ${f} is not`);
      mask[f] = 0;
    });
    grown?.forEach((f, j) => {
      if (!(f >= 0 && f < total)) throw new RangeError(`${fn}: grown[${j}] = ${f} is outside [0, ${total})`);
      if (mask[f] === 1) throw new RangeError(`${fn}: grown[${j}] = ${f} is already a nonzero (kept, or grown twice)`);
      mask[f] = 1;
    });
    const moved = referenceBackend.sparsePatternMoved(old, mask, grown);
    for (const a of packed) {
      const before = a.slice();
      moved.from.forEach((j, k) => { a[k] = j >= 0 ? before[j] : 0; });
    }
    return moved;
  },

  sparseForward(pattern, vals, inT, outT, bias, n, ld, relu) {
    const p = asReference(pattern);
    for (let r = 0; r < p.rows; r++) {
      for (let c = 0; c < ld; c++) {
        let s = bias ? bias[r] : 0;
        for (let k = p.rowPtr[r]; k < p.rowPtr[r + 1]; k++) s += vals[k] * inT[at(p.colIdx[k], c, p.cols)];
        outT[at(r, c, p.rows)] = c >= n ? 0 : relu && s < 0 ? 0 : s;
      }
    }
  },

  sparseInputGrad(pattern, vals, gyT, gxT, ld) {
    const p = asReference(pattern);
    for (let i = 0; i < p.cols; i++) for (let c = 0; c < ld; c++) gxT[at(i, c, p.cols)] = 0;
    for (let r = 0; r < p.rows; r++) {
      for (let k = p.rowPtr[r]; k < p.rowPtr[r + 1]; k++) {
        for (let c = 0; c < ld; c++) gxT[at(p.colIdx[k], c, p.cols)] += vals[k] * gyT[at(r, c, p.rows)];
      }
    }
  },

  sparseWeightGrad(pattern, gyT, xT, gvals, gbias, ld) {
    const p = asReference(pattern);
    for (let r = 0; r < p.rows; r++) {
      if (gbias) {
        let s = 0;
        for (let c = 0; c < ld; c++) s += gyT[at(r, c, p.rows)];
        gbias[r] += s;
      }
      if (!gvals) continue;
      for (let k = p.rowPtr[r]; k < p.rowPtr[r + 1]; k++) {
        let s = 0;
        for (let c = 0; c < ld; c++) s += gyT[at(r, c, p.rows)] * xT[at(p.colIdx[k], c, p.cols)];
        gvals[k] += s;
      }
    }
  },

  sparseConvForward(pattern, vals, x, y, bias, n, height, width, padH, padW, relu) {
    const g = convGeometry('sparseConvForward', pattern, height, width, padH, padW);
    const { outChannels: cout, inChannels: cin, kh, kw, rowPtr, colIdx } = pattern;
    for (let b = 0; b < n; b++) {
      for (let o = 0; o < cout; o++) {
        for (let oy = 0; oy < g.outH; oy++) {
          for (let ox = 0; ox < g.outW; ox++) {
            let s = 0;
            for (let k = rowPtr[o]; k < rowPtr[o + 1]; k++) {
              const c = Math.floor(colIdx[k] / (kh * kw)), t = colIdx[k] % (kh * kw);
              const iy = oy - padH + Math.floor(t / kw), ix = ox - padW + (t % kw);
              if (iy >= 0 && iy < height && ix >= 0 && ix < width) s = Math.fround(s + vals[k] * x[((b * cin + c) * height + iy) * width + ix]);
            }
            s = Math.fround(s + (bias ? bias[o] : 0));
            y[((b * cout + o) * g.outH + oy) * g.outW + ox] = relu && s < 0 ? 0 : s;
          }
        }
      }
    }
  },

  sparseConvInputGrad(pattern, vals, gradOut, gradIn, n, height, width, padH, padW) {
    const g = convGeometry('sparseConvInputGrad', pattern, height, width, padH, padW);
    const { outChannels: cout, inChannels: cin, kh, kw, rowPtr, colIdx } = pattern;
    for (let b = 0; b < n; b++) {
      for (let o = 0; o < cout; o++) {
        for (let k = rowPtr[o]; k < rowPtr[o + 1]; k++) {
          const c = Math.floor(colIdx[k] / (kh * kw)), t = colIdx[k] % (kh * kw);
          const di = Math.floor(t / kw) - padH, dj = (t % kw) - padW;
          for (let oy = 0; oy < g.outH; oy++) {
            const iy = oy + di;
            if (iy < 0 || iy >= height) continue;
            for (let ox = 0; ox < g.outW; ox++) {
              const ix = ox + dj;
              if (ix >= 0 && ix < width) gradIn[((b * cin + c) * height + iy) * width + ix] += vals[k] * gradOut[((b * cout + o) * g.outH + oy) * g.outW + ox];
            }
          }
        }
      }
    }
  },

  sparseConvWeightGrad(pattern, x, gradOut, gradVals, n, height, width, padH, padW) {
    const g = convGeometry('sparseConvWeightGrad', pattern, height, width, padH, padW);
    const { outChannels: cout, inChannels: cin, kh, kw, rowPtr, colIdx } = pattern;
    for (let o = 0; o < cout; o++) {
      for (let k = rowPtr[o]; k < rowPtr[o + 1]; k++) {
        const c = Math.floor(colIdx[k] / (kh * kw)), t = colIdx[k] % (kh * kw);
        const di = Math.floor(t / kw) - padH, dj = (t % kw) - padW;
        let s = 0;
        for (let b = 0; b < n; b++) {
          for (let oy = 0; oy < g.outH; oy++) {
            const iy = oy + di;
            if (iy < 0 || iy >= height) continue;
            for (let ox = 0; ox < g.outW; ox++) {
              const ix = ox + dj;
              if (ix >= 0 && ix < width) s += gradOut[((b * cout + o) * g.outH + oy) * g.outW + ox] * x[((b * cin + c) * height + iy) * width + ix];
            }
          }
        }
        gradVals[k] += s;
      }
    }
  },

  toPanels(x, out, n, features, ld) {
    for (let c = 0; c < panelColumns(ld); c++) {
      for (let i = 0; i < features; i++) out[at(i, c, features)] = c < n ? x[c * features + i] : 0;
    }
  },

  fromPanels(panels, y, n, features, ld, accumulate) {
    for (let c = 0; c < n; c++) {
      for (let i = 0; i < features; i++) y[c * features + i] = (accumulate ? y[c * features + i] : 0) + panels[at(i, c, features)];
    }
  },
};

/** Output size of a convolution along one axis. */
/** A direct convolution's input and geometry, as the conv oracles above read them. */
interface DirectConv {
  x: Float32Array;
  n: number;
  inChannels: number;
  outChannels: number;
  height: number;
  width: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  outH: number;
  outW: number;
}

/** Output (b, o, oy, ox) of the convolution with taps k(o, c, i, j): Σ over c, i, j in float64. */
/** One LSTM step's cell for n rows (lstmSequence): the gates' activations in place, then c and h. */
function lstmCell(gates: Float32Array, cPrev: Float32Array, c: Float32Array, h: Float32Array, n: number, hidden: number): void {
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
  for (let b = 0; b < n; b++) {
    const g = b * 4 * hidden, o = b * hidden;
    for (let j = 0; j < hidden; j++) {
      const ig = (gates[g + j] = sigmoid(gates[g + j]));
      const fg = (gates[g + hidden + j] = sigmoid(gates[g + hidden + j]));
      const gg = (gates[g + 2 * hidden + j] = Math.tanh(gates[g + 2 * hidden + j]));
      const og = (gates[g + 3 * hidden + j] = sigmoid(gates[g + 3 * hidden + j]));
      const cv = (c[o + j] = fg * cPrev[o + j] + ig * gg);
      h[o + j] = og * Math.tanh(cv);
    }
  }
}

/** The cell's gradient for one step: gradGates from gradH and gradC (c's gradient from later steps), which becomes c_{t-1}'s in place. */
function lstmCellBackward(gates: Float32Array, cPrev: Float32Array, c: Float32Array, gradH: Float32Array, gradC: Float32Array,
  gradGates: Float32Array, n: number, hidden: number): void {
  for (let b = 0; b < n; b++) {
    const g = b * 4 * hidden, o = b * hidden;
    for (let j = 0; j < hidden; j++) {
      const ig = gates[g + j], fg = gates[g + hidden + j], gg = gates[g + 2 * hidden + j], og = gates[g + 3 * hidden + j];
      const tc = Math.tanh(c[o + j]), gh = gradH[o + j];
      const dc = gradC[o + j] + gh * og * (1 - tc * tc);
      gradGates[g + j] = dc * gg * ig * (1 - ig);
      gradGates[g + hidden + j] = dc * cPrev[o + j] * fg * (1 - fg);
      gradGates[g + 2 * hidden + j] = dc * ig * (1 - gg * gg);
      gradGates[g + 3 * hidden + j] = gh * tc * og * (1 - og);
      gradC[o + j] = dc * fg;
    }
  }
}

function directConvSum(g: DirectConv, k: (o: number, c: number, i: number, j: number) => number, b: number, o: number, oy: number, ox: number): number {
  const { x, inChannels, height, width, kh, kw, strideH, strideW, padH, padW } = g;
  let s = 0;
  for (let c = 0; c < inChannels; c++) {
    for (let i = 0; i < kh; i++) {
      const y = oy * strideH - padH + i;
      if (y < 0 || y >= height) continue;
      for (let j = 0; j < kw; j++) {
        const xx = ox * strideW - padW + j;
        if (xx >= 0 && xx < width) s += x[((b * inChannels + c) * height + y) * width + xx] * k(o, c, i, j);
      }
    }
  }
  return s;
}

/** gradWeight [outChannels, inChannels, kh, kw] += each tap's Σ over images and outputs of gradOut·x, in float64. */
function directConvWeightGrad(g: DirectConv, gradOut: Float32Array, gradWeight: Float32Array): void {
  const { x, n, inChannels, outChannels, height, width, kh, kw, strideH, strideW, padH, padW, outH, outW } = g;
  for (let o = 0; o < outChannels; o++) {
    for (let c = 0; c < inChannels; c++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          let s = 0;
          for (let b = 0; b < n; b++) {
            for (let oy = 0; oy < outH; oy++) {
              const y = oy * strideH - padH + i;
              if (y < 0 || y >= height) continue;
              for (let ox = 0; ox < outW; ox++) {
                const xx = ox * strideW - padW + j;
                if (xx >= 0 && xx < width) s += gradOut[((b * outChannels + o) * outH + oy) * outW + ox] * x[((b * inChannels + c) * height + y) * width + xx];
              }
            }
          }
          gradWeight[((o * inChannels + c) * kh + i) * kw + j] += s;
        }
      }
    }
  }
}

/**
 * Calls visit(i, j, oy, ox) for each kernel tap (i, j) through which input (y, x) reaches
 * output (oy, ox), taps in row-major order: the gather form of a convolution's transpose.
 */
function forEachTapOfInput(y: number, x: number, g: Pick<DirectConv, 'kh' | 'kw' | 'strideH' | 'strideW' | 'padH' | 'padW' | 'outH' | 'outW'>,
  visit: (i: number, j: number, oy: number, ox: number) => void): void {
  for (let i = 0; i < g.kh; i++) {
    const ty = y + g.padH - i;
    if (ty < 0 || ty % g.strideH !== 0 || ty / g.strideH >= g.outH) continue;
    for (let j = 0; j < g.kw; j++) {
      const tx = x + g.padW - j;
      if (tx < 0 || tx % g.strideW !== 0 || tx / g.strideW >= g.outW) continue;
      visit(i, j, ty / g.strideH, tx / g.strideW);
    }
  }
}

/** A ReLU's mask as bits (see Backend.conv2d): value k of image b is bit k % 8 of byte b·⌈size/8⌉ + ⌊k/8⌋, y > 0. */
function writeReluMask(y: Float32Array, mask: Uint8Array, n: number, size: number): void {
  const bytes = reluMaskBytes(1, size);
  if (mask.length < n * bytes) throw new RangeError(`reluMask has ${mask.length} bytes, needs ${n * bytes}`);
  mask.fill(0, 0, n * bytes);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < size; k++) if (y[b * size + k] > 0) mask[b * bytes + (k >> 3)] |= 1 << (k & 7);
  }
}

/** g set to 0 where the mask's bit is clear (the ReLU's backward, as reluBackward with y > 0 as bits). */
function applyReluMask(g: Float32Array, mask: Uint8Array, n: number, size: number): void {
  const bytes = reluMaskBytes(1, size);
  if (mask.length < n * bytes) throw new RangeError(`reluMask has ${mask.length} bytes, needs ${n * bytes}`);
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < size; k++) if (!((mask[b * bytes + (k >> 3)] >> (k & 7)) & 1)) g[b * size + k] = 0;
  }
}

function convOut(size: number, k: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - k) / stride) + 1;
}

/** The output size of a sparse convolution, after checking its padding as the native kernels do. */
function convGeometry(fn: string, p: ConvPattern, height: number, width: number, padH: number, padW: number): { outH: number; outW: number } {
  if (padH >= p.kh || padW >= p.kw) throw new RangeError(`${fn}: kernel ${p.kh}x${p.kw} needs padding below it, got ${padH}x${padW}`);
  const outH = height + 2 * padH - p.kh + 1, outW = width + 2 * padW - p.kw + 1;
  if (outH < 1 || outW < 1) throw new RangeError(`${fn}: a ${p.kh}x${p.kw} kernel with padding ${padH}x${padW} does not fit a ${height}x${width} image`);
  return { outH, outW };
}

/** Output size of an unpadded pooling along one axis. */
function poolOut(size: number, k: number, stride: number): number {
  return Math.floor((size - k) / stride) + 1;
}

/** Flat index into x of the first maximum of the k×k window at (y0, x0) of plane p; the first NaN wins. */
function windowArgmax(x: Float32Array, p: number, height: number, width: number, k: number, y0: number, x0: number): number {
  let best = (p * height + y0) * width + x0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const idx = (p * height + y0 + i) * width + x0 + j;
      const v = x[idx], b = x[best];
      if (v > b || (v !== v && b === b)) best = idx;
    }
  }
  return best;
}

/** The reference backend's pattern: CSR arrays in plain sight. */
interface ReferencePattern extends SparsePattern {
  readonly rowPtr: Int32Array;
  readonly colIdx: Int32Array;
}

function referencePattern(mask: Float32Array, rows: number, cols: number): ReferencePattern {
  const rowPtr = new Int32Array(rows + 1);
  const cols_: number[] = [], flat: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (mask[r * cols + c] !== 0) {
        cols_.push(c);
        flat.push(r * cols + c);
      }
    }
    rowPtr[r + 1] = flat.length;
  }
  return { rows, cols, nnz: flat.length, flat: Int32Array.from(flat), rowPtr, colIdx: Int32Array.from(cols_) };
}

function asReference(p: SparsePattern): ReferencePattern {
  if (!('rowPtr' in p)) throw new TypeError("pattern must be an object made by this backend's sparsePattern()");
  return p as ReferencePattern;
}
