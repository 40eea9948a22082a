import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** DESIGN.md's layers, top to bottom: a module may import only from its own layer or those below. */
const LAYERS = ['cli', 'sweep', 'queue', 'export', 'report', 'lottery', 'dynamic', 'pruning', 'training', 'program', 'models', 'data', 'nn', 'tensor', 'backend', 'store', 'core'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path.join(dir, e.name)] : []);
}

/**
 * The files a source file depends on: its imports and re-exports (type-only ones too: a
 * cycle of types is a cycle of design), and the entry points of the worker threads it
 * starts (new Worker(new URL('./x.js', import.meta.url))).
 */
function dependencies(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = [
    ...[...text.matchAll(/from '(\.\.?\/[^']+)'/g)].map((m) => m[1]),
    ...[...text.matchAll(/new Worker\(\s*new URL\('(\.\.?\/[^']+)'/g)].map((m) => m[1]),
  ];
  return specs.map((s) => path.resolve(path.dirname(file), s.replace(/\.js$/, '.ts')));
}

test('imports point downward only (training never imports pruning; report never imports training)', () => {
  const violations: string[] = [];
  for (const file of sources(src)) {
    const rel = path.relative(src, file);
    const layer = rel.split(path.sep)[0];
    const rank = LAYERS.indexOf(layer);
    if (rank < 0) continue; // index.ts: the public surface re-exports everything
    for (const target of dependencies(file)) {
      const targetLayer = path.relative(src, target).split(path.sep)[0];
      const targetRank = LAYERS.indexOf(targetLayer);
      if (targetRank >= 0 && targetRank < rank) violations.push(`${rel} depends on ${path.relative(src, target)} (${targetLayer} is above ${layer})`);
    }
  }
  assert.deepEqual(violations, []);
});

test('no dependency cycles, inside a layer or across, worker entry points followed', () => {
  const files = sources(src);
  const graph = new Map(files.map((f) => [f, dependencies(f).filter((d) => fs.existsSync(d))]));
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => path.relative(src, x)).join(' -> '));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test('nothing below the entry points reads process.env: run settings are resolved once (backend/context.ts)', () => {
  // Test helpers (testing.ts) pass environments to child processes.
  const readers = sources(src).filter((f) => path.basename(f) !== 'testing.ts').filter((f) => /process\.env/.test(fs.readFileSync(f, 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '')))
    .map((f) => path.relative(src, f));
  assert.deepEqual(readers, [path.join('backend', 'context.ts')]);
});
