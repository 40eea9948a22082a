import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RUN_LOCK, lockRun } from './run-lock.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-lock-'));

test('lockRun: taken and released; re-entrant in one process; a sweep\'s many runs add one exit hook', () => {
  const dir = tmp();
  const file = path.join(dir, RUN_LOCK);
  const release = lockRun(dir, 'training its stages');
  const held = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.deepEqual([held.pid, held.host, held.what], [process.pid, os.hostname(), 'training its stages']);
  const again = lockRun(dir, 'training its stages');
  again();
  assert.ok(fs.existsSync(file), 'still held by the outer taker');
  release();
  assert.ok(!fs.existsSync(file), 'released');
  const hooks = process.listenerCount('exit');
  for (let i = 0; i < 30; i++) lockRun(path.join(dir, `run${i}`), 'training its stages')();
  assert.ok(process.listenerCount('exit') <= Math.max(hooks, 1) + 1, `exit listeners: ${process.listenerCount('exit')}`);
});

test('lockRun: a lock of a process gone from this host is taken over; a live one is refused by name', () => {
  const dir = tmp();
  const file = path.join(dir, RUN_LOCK);
  fs.writeFileSync(file, JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), since: 'then', what: 'training its stages' }));
  const release = lockRun(dir, 'training its stages');
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
  release();
  fs.writeFileSync(file, JSON.stringify({ pid: process.ppid, host: os.hostname(), since: 'then', what: 'repairing its stages' }));
  assert.throws(() => lockRun(dir, 'training its stages'), new RegExp(`is in use: lth \\(repairing its stages\\) has been running on it since then, process ${process.ppid} on `));
  fs.writeFileSync(file, 'not a lock');
  lockRun(dir, 'training its stages')();
  assert.ok(!fs.existsSync(file), 'a file that is no lock is taken over, then released');
});
