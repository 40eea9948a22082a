/**
 * Faults of the machine during a run: a disk that fills up in the middle of a stage
 * (ENOSPC injected into the store's writes) loses no finished stage, and the same run
 * continues once space is freed, to the results of an uninterrupted run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';
import { listStages } from '../src/store/layout.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-faults-'));

test('a full disk in the middle of a stage loses no finished stage; the same run continues once space is freed', () => {
  const args = { steps: '20it', evalEvery: 10, levels: 3, branches: ['reinit'] };
  const clean = runLottery(resolveLottery({ ...args, root: tmp() }));
  const root = tmp();
  // The disk fills up at the 20th file write: inside a stage, after some stages finished.
  const write = fs.writeFileSync;
  let writes = 0;
  (fs as { writeFileSync: typeof fs.writeFileSync }).writeFileSync = ((file: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView, options?: fs.WriteFileOptions) => {
    if (typeof file === 'number' && ++writes >= 20) {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    }
    return write(file, data, options);
  }) as typeof fs.writeFileSync;
  let finished: string[];
  try {
    assert.throws(() => runLottery(resolveLottery({ ...args, root })), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
  } finally {
    (fs as { writeFileSync: typeof fs.writeFileSync }).writeFileSync = write;
  }
  const runDir = path.join(root, fs.readdirSync(root)[0]);
  finished = listStages(runDir).map((s) => `${s.level}/${s.stage}`);
  assert.ok(finished.length >= 1 && finished.length < 7, `some stages finished before the disk filled: ${finished.join(', ')}`);
  const leftovers = [];
  for (const f of fs.readdirSync(runDir, { recursive: true }) as string[]) if (f.includes('.tmp-')) leftovers.push(f);
  assert.deepEqual(leftovers, [], 'no temporary file left behind');
  const resumed = runLottery(resolveLottery({ ...args, root }));
  assert.deepEqual(resumed.summary, clean.summary);
});
