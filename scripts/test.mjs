// `npm test`: the whole suite (node --test over dist/), with TMPDIR pointed at a directory
// of its own that is removed afterwards. Tests make their run directories under the
// system's temporary directory (lotteries, checkpoints, exports: up to 150 MB each); one
// suite leaves gigabytes behind otherwise.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-test-'));
// Open to every user as /tmp is: some tests run a command as an unprivileged user.
fs.chmodSync(dir, 0o1777);
let status = 1;
try {
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...process.argv.slice(2), 'dist/'], {
    stdio: 'inherit', env: { ...process.env, TMPDIR: dir },
  });
  status = r.status ?? 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
