import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StageSpec } from '../lottery/plan.js';
import { simulateMakespan } from './makespan.js';

const stage = (id: string, deps: string[] = []): StageSpec => ({ id, deps, replicate: 0, seed: 0, level: 0, branch: 'main', inputs: '', keepRewind: false });

test('makespan: a chain takes its length on any number of workers; independent stages spread', () => {
  const chain = [stage('a'), stage('b', ['a']), stage('c', ['b'])];
  for (const w of [1, 2, 4]) assert.deepEqual(simulateMakespan(chain, () => 2, w), { makespan: 6, ideal: 6 });
  const fan = [stage('a'), stage('b', ['a']), stage('c', ['a']), stage('d', ['a']), stage('e', ['a'])];
  assert.deepEqual(simulateMakespan(fan, () => 1, 1), { makespan: 5, ideal: 5 });
  assert.deepEqual(simulateMakespan(fan, () => 1, 2), { makespan: 3, ideal: 2.5 });
  assert.deepEqual(simulateMakespan(fan, () => 1, 4), { makespan: 2, ideal: 2 });
  // Plan order decides: the long stage first.
  const uneven = [stage('long'), stage('s1'), stage('s2')];
  assert.deepEqual(simulateMakespan(uneven, (id) => (id === 'long' ? 4 : 1), 2), { makespan: 4, ideal: 4 });
});
