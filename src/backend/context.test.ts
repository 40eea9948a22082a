import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveContext, simdNote } from './context.js';

test('run context: flags win over variables, bad values name their source, defaults are the machine\'s', () => {
  const ctx = resolveContext({ threads: 1, fused: 'off' }, { LTH_THREADS: '2', LTH_FUSED: 'auto', LTH_SPARSE: 'on' });
  assert.deepEqual([ctx.settings.threads, ctx.settings.fused, ctx.settings.sparse], [1, 'off', 'on']);
  assert.throws(() => resolveContext({}, { LTH_THREADS: 'many' }), /LTH_THREADS must be an integer from 1 to 256, got 'many'/);
  assert.throws(() => resolveContext({ fused: 'yes' }, {}), /--fused must be 'auto' or 'off', got 'yes'/);
  assert.throws(() => resolveContext({}, { LTH_SIMD: 'sse9' }), /LTH_SIMD must be 'avx512', 'avx2' or 'scalar', got 'sse9'/);
  resolveContext({}, {});
});

test('run context: a CPU without AVX2 is said so, unless the scalar path was asked for', () => {
  assert.match(simdNote('avx512', false, 'scalar')!, /this CPU has no AVX2: the native kernels run their portable path/);
  assert.match(simdNote('avx2', true, 'scalar')!, /no AVX2/);
  assert.equal(simdNote('scalar', true, 'scalar'), null);
  assert.equal(simdNote('avx512', false, 'avx2'), null);
  assert.equal(simdNote('avx512', false, 'avx512'), null);
});
