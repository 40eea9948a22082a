import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** DESIGN.md's layers, top to bottom: a module may import only from its own layer or those below. */
const LAYERS = ['cli', 'report', 'lottery', 'pruning', 'training', 'models', 'data', 'nn', 'tensor', 'backend', 'store', 'core'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path.join(dir, e.name)] : []);
}

test('imports point downward only (training never imports pruning; report never imports training)', () => {
  const violations: string[] = [];
  for (const file of sources(src)) {
    const rel = path.relative(src, file);
    const layer = rel.split(path.sep)[0];
    const rank = LAYERS.indexOf(layer);
    if (rank < 0) continue; // index.ts: the public surface re-exports everything
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/from '(\.\.?\/[^']+)'/g)) {
      const target = path.relative(src, path.resolve(path.dirname(file), m[1])).split(path.sep)[0];
      const targetRank = LAYERS.indexOf(target);
      if (targetRank >= 0 && targetRank < rank) violations.push(`${rel} imports ${m[1]} (${target} is above ${layer})`);
    }
  }
  assert.deepEqual(violations, []);
});
