export type { Backend, ConvPattern, SparsePattern } from './backend.js';
export { panelColumns, panelIndex, reluMaskBytes } from './backend.js';
export { referenceBackend } from './reference.js';
export { loadNative, type NativeAddon, type SimdPath } from './native.js';
export { composedDenseMlp, referenceDenseMlp, type DenseMlpKernels, type DenseMlpLayer, type PreparedDenseMlp } from './dense-mlp.js';
export { referenceSparseMlp, type SparseMlpKernels, type SparseMlpLayer, type PreparedMlp, type UpdateRule } from './sparse-mlp.js';
export {
  resolveContext, checkSettings, contextFor, activeContext, getBackend, describeSettings,
  type RunContext, type RunSettings, type SettingsRequest, type SparseMode, type FusedMode,
} from './context.js';
export { watchStop } from './stop.js';
