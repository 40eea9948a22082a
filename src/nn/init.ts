import type { Rng } from '../core/rng.js';

/**
 * Gaussian Glorot (Xavier normal) initialisation as PyTorch's xavier_normal_:
 * N(0, 2 / (fan_in + fan_out)), untruncated.
 */
export function glorotNormal(data: Float32Array, fanIn: number, fanOut: number, rng: Rng): void {
  const std = Math.sqrt(2 / (fanIn + fanOut));
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
}

/**
 * Gaussian He (Kaiming) initialisation as PyTorch's kaiming_normal_ with its defaults
 * (fan_in mode, ReLU gain √2): N(0, 2 / fan_in), untruncated.
 */
export function kaimingNormal(data: Float32Array, fanIn: number, rng: Rng): void {
  const std = Math.sqrt(2 / fanIn);
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
}
