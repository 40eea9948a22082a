/**
 * Bad input, one test per case, through the CLI as a user meets it: flags, data files, the
 * store's files, the file system, two processes on one run. Each asserts that the message
 * names the problem, that no stack trace is printed, the exit status, and, where a run had
 * finished stages, that they are still there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { killLthWhen } from '../src/cli/testing.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-bad-'));

/**
 * Permissions are only real for a user who is not root (root reads and writes anything):
 * as root, the permission cases run lth as 'nobody'.
 */
const asUnprivileged = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

function lth(args: string[], env: Record<string, string> = {}, as: { uid?: number; gid?: number } = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, ...as });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the command and checks it failed as a user's (status 2) or the machine's (status 3) problem, with `message`, without a stack. */
function fails(args: string[], message: RegExp, status = 2, env: Record<string, string> = {}, as: { uid?: number; gid?: number } = {}): string {
  const r = lth(args, env, as);
  assert.equal(r.code, status, `${args.join(' ')}: status ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, /^lth: error: /m, args.join(' '));
  assert.match(r.stderr, message, args.join(' '));
  assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack for ${args.join(' ')}`);
  return r.stderr;
}

/** A directory with the four MNIST IDX files, `damage` applied to them first. */
function idxDir(damage: (files: Record<string, Buffer>) => void): string {
  const dir = tmp();
  const header = (magic: number[], dims: number[]) => Buffer.from([...magic, ...dims.flatMap((d) => [d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255])]);
  const files: Record<string, Buffer> = {
    'train-images-idx3-ubyte': Buffer.concat([header([0, 0, 8, 3], [20, 28, 28]), Buffer.alloc(20 * 784, 7)]),
    'train-labels-idx1-ubyte': Buffer.concat([header([0, 0, 8, 1], [20]), Buffer.from(Array.from({ length: 20 }, (_, i) => i % 10))]),
    't10k-images-idx3-ubyte': Buffer.concat([header([0, 0, 8, 3], [10, 28, 28]), Buffer.alloc(10 * 784, 9)]),
    't10k-labels-idx1-ubyte': Buffer.concat([header([0, 0, 8, 1], [10]), Buffer.from(Array.from({ length: 10 }, (_, i) => i))]),
  };
  damage(files);
  for (const [name, buf] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), buf);
  return dir;
}

/** A finished small lottery run (levels 0 and 1); its run directory. */
function finishedRun(): string {
  const root = tmp();
  const r = lth(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '1', '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).runDir as string;
}

// ------------------------------------------------------------------ flags

test('flags: an unknown command', () => { fails(['prune'], /unknown command 'prune'. Known: train, lottery, stability, ls, report, verify/); });
test('flags: an unknown flag lists the known ones', () => { fails(['train', '--learning-rate', '0.1'], /unknown flag --learning-rate. Known: .*--lr/); });
test('flags: an argument that is no flag\'s value, a single-dash flag; -h is --help', () => {
  fails(['lottery', '--branches', 'reinit', 'random_prune', '--dry-run'], /unexpected argument 'random_prune': this command takes --flags only; a list is one value with commas: --branches reinit,random_prune/);
  fails(['ls', 'runs'], /unexpected argument 'runs': this command takes --flags only$/m);
  fails(['lottery', '--report', 'maybe', '--dry-run'], /unexpected argument 'maybe'/);
  fails(['train', '-x'], /unknown flag -x: flags start with --/);
  const help = lth(['train', '-h']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: lth train/);
});
test('flags: a model and a data set whose samples do not fit it', () => {
  fails(['train', '--model', 'lenet_300_100', '--dataset', 'moby_dick'], /lenet_300_100 takes samples like mnist's \(\[784\], 10 classes\); moby_dick's are \[64\] with 96 classes/);
  fails(['lottery', '--model', 'text_cnn', '--dataset', 'mnist', '--dry-run'], /text_cnn takes samples like spam's \(\[128\], 2 classes\); mnist's are \[784\] with 10 classes/);
});
test('flags: a budget of nothing or of more than a billion iterations, a number in hex', () => {
  fails(['train', '--steps', '0ep'], /--steps must be at least one iteration, got '0ep'/);
  fails(['train', '--steps', '99999999999999999999it'], /--steps: '99999999999999999999it' is more than 1,000,000,000 epochs or iterations/);
  fails(['train', '--lr', '0x10'], /--lr: expected a number, got '0x10'/);
});
test('flags: a flag without its value', () => { fails(['train', '--lr'], /--lr needs a value/); });
test('flags: a number that is not one', () => { fails(['train', '--lr', 'fast'], /--lr: expected a number, got 'fast'/); });
test('flags: a value outside its choices', () => { fails(['train', '--optimizer', 'rmsprop'], /--optimizer: expected one of adam, sgd, got 'rmsprop'/); });
test('pruning: a mask that empties a layer (SNIP at 0.01%) trains, with a warning naming the layer', () => {
  const r = lth(['lottery', '--at-init', '--strategy', 'snip', '--densities', '0.0001', '--steps', '20it', '--eval-every', '10', '--root', tmp()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /lth: warning: stage replicate_0\/level_1\/main: its mask keeps no weight of fc1\.weight \(layer collapse\)/);
});
test('pruning: whole units that land well below --target-density train, with a warning giving the density reached', () => {
  const r = lth(['lottery', '--strategy', 'neuron_l1', '--levels', '1', '--target-density', '0.01', '--steps', '10it', '--eval-every', '10', '--root', tmp()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /lth: warning: stage replicate_0\/level_1\/main: keeps 0\.\d+% of the weights, against the 1\.00% asked for: neuron_l1 removes whole units/);
});
test('flags: an impossible momentum', () => { fails(['train', '--optimizer', 'sgd', '--momentum', '1'], /--momentum must be in \[0, 1\), got 1/); });
test('flags: a batch larger than the training set', () => { fails(['train', '--batch-size', '60000', '--steps', '1it'], /--batch-size 60000 is more than the 55000 training examples of mnist \(after 5000 went to validation\)/); });
test('flags: a rewind step past the budget', () => { fails(['lottery', '--steps', '100it', '--rewind-step', '2ep', '--root', tmp()], /--rewind-step 2ep \(1832 iterations\) must be before the end of the training budget 100it/); });
test('flags: one-shot without a density', () => { fails(['lottery', '--one-shot'], /--one-shot needs --density D/); });
test('flags: --rate and --target-density together', () => { fails(['lottery', '--rate', '0.2', '--target-density', '0.1', '--levels', '3'], /--rate and --target-density both set the pruning rate; give one/); });
test('flags: a layer in --ignore that the model does not have', () => {
  fails(['lottery', '--strategy', 'magnitude_global', '--ignore', 'fc4.weight'], /--ignore: lenet_300_100 has no prunable weight 'fc4.weight' \(it has fc1.weight, fc2.weight, fc3.weight\)/);
});
test('flags: --ignore of every prunable layer', () => { fails(['lottery', '--strategy', 'magnitude_global', '--ignore', 'fc1.weight,fc2.weight,fc3.weight', '--dry-run'], /--ignore leaves no layer to prune: lenet_300_100's prunable weights are fc1\.weight, fc2\.weight, fc3\.weight/); });
test('flags: --ignore with a strategy it has no effect on', () => { fails(['lottery', '--ignore', 'fc3.weight'], /--ignore names layers a global strategy leaves untouched; it has no effect with --strategy magnitude_layerwise/); });
test('flags: --at-init with a strategy that prunes trained weights', () => { fails(['lottery', '--at-init', '--densities', '0.5'], /--at-init needs a strategy that prunes at initialisation/); });
test('flags: --densities without --at-init', () => { fails(['lottery', '--densities', '0.5,0.2'], /--densities gives the levels of --at-init/); });
test('flags: a bad run setting in the environment names the variable', () => { fails(['train'], /LTH_BACKEND must be 'native' or 'reference', got 'gpu'/, 2, { LTH_BACKEND: 'gpu' }); });

// ------------------------------------------------------------------ data files

test('data: a data directory that does not exist', () => { fails(['train', '--data-dir', path.join(tmp(), 'nope')], /mnist: data directory '.*nope' does not exist/); });
test('data: a directory without the IDX files says how to get them', () => { fails(['train', '--data-dir', tmp()], /mnist: '.*' has no train-images-idx3-ubyte \(or train-images-idx3-ubyte.gz\)\. MNIST ships with lth/); });
test('data: an IDX file with a wrong magic number', () => {
  const dir = idxDir((f) => { f['train-images-idx3-ubyte'][2] = 0x0d; });
  fails(['train', '--data-dir', dir], /train-images-idx3-ubyte' has data type 0xd; only unsigned bytes \(0x08\) are supported/);
});
test('data: a truncated IDX file', () => {
  const dir = idxDir((f) => { f['t10k-images-idx3-ubyte'] = f['t10k-images-idx3-ubyte'].subarray(0, 1000); });
  fails(['train', '--data-dir', dir], /t10k-images-idx3-ubyte' is truncated: dimensions \[10, 28, 28\] need 7840 bytes of data, found 984/);
});
test('data: images and labels that do not match in number', () => {
  const dir = idxDir((f) => { f['train-labels-idx1-ubyte'] = Buffer.concat([Buffer.from([0, 0, 8, 1, 0, 0, 0, 19]), Buffer.alloc(19)]); });
  fails(['train', '--data-dir', dir], /has 20 images but '.*train-labels-idx1-ubyte' has 19 labels/);
});
test('data: images of another size than the data set\'s, and a file with no images', () => {
  const size = idxDir((f) => { f['train-images-idx3-ubyte'] = Buffer.concat([Buffer.from([0, 0, 8, 3, 0, 0, 0, 20, 0, 0, 0, 32, 0, 0, 0, 32]), Buffer.alloc(20 * 1024)]); });
  fails(['train', '--data-dir', size], /train-images-idx3-ubyte' holds 32x32 images; this data set's are 28x28/);
  const empty = idxDir((f) => {
    f['t10k-images-idx3-ubyte'] = Buffer.from([0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]);
    f['t10k-labels-idx1-ubyte'] = Buffer.from([0, 0, 8, 1, 0, 0, 0, 0]);
  });
  fails(['train', '--data-dir', empty], /t10k-images-idx3-ubyte' holds no images/);
});
test('data: a label outside the classes', () => {
  const dir = idxDir((f) => { f['t10k-labels-idx1-ubyte'][8 + 3] = 12; });
  fails(['train', '--data-dir', dir], /t10k-labels-idx1-ubyte': label 12 at index 3 is outside \[0, 10\)/);
});
test('data: compression is read from the bytes, not the name; a damaged gzip file is an error', () => {
  // A .gz file a browser inflated, and a gzip file without .gz, both load.
  const dir = idxDir(() => {});
  fs.renameSync(path.join(dir, 'train-images-idx3-ubyte'), path.join(dir, 'train-images-idx3-ubyte.gz'));
  fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), zlib.gzipSync(fs.readFileSync(path.join(dir, 't10k-images-idx3-ubyte'))));
  const r = lth(['train', '--data-dir', dir, '--steps', '2it', '--batch-size', '5', '--eval-every', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const gz = zlib.gzipSync(fs.readFileSync(path.join(dir, 'train-images-idx3-ubyte.gz')));
  fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), gz.subarray(0, gz.length / 2));
  fails(['train', '--data-dir', dir], /IDX file '.*train-images-idx3-ubyte.gz' is gzip-compressed but cannot be inflated/);
});
test('data: a data directory that is a file, or that cannot be read, says so', () => {
  const file = path.join(tmp(), 'not-a-dir');
  fs.writeFileSync(file, 'x');
  fails(['train', '--data-dir', file], /mnist: data directory '.*not-a-dir' is not a directory/);
  fails(['train', '--model', 'conv2', '--data-dir', file], /cifar10: data directory '.*not-a-dir' is not a directory/);
  const closed = idxDir(() => {});
  fs.chmodSync(closed, 0o700);
  if (asUnprivileged.uid !== undefined || process.getuid?.() !== 0) {
    fails(['train', '--data-dir', closed], /mnist: data directory '.*' cannot be read \(EACCES\)/, 2, {}, asUnprivileged);
  }
});
test('data: too few training examples for a validation split, or for the batch size', () => {
  const one = idxDir((f) => {
    f['train-images-idx3-ubyte'] = Buffer.concat([Buffer.from([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28]), Buffer.alloc(784)]);
    f['train-labels-idx1-ubyte'] = Buffer.from([0, 0, 8, 1, 0, 0, 0, 1, 3]);
  });
  fails(['train', '--data-dir', one], /mnist: 1 training example; a validation split needs at least 2/);
  fails(['train', '--data-dir', idxDir(() => {})], /--batch-size 60 is more than the 10 training examples of mnist \(after 10 went to validation\)/);
});
test('data: a run trained on one data directory refuses another, or the default files, naming the one recorded', () => {
  const dir = idxDir(() => {});
  const root = tmp();
  const args = ['lottery', '--levels', '1', '--steps', '2it', '--batch-size', '5', '--eval-every', '1', '--root', root];
  const first = lth([...args, '--data-dir', dir]);
  assert.equal(first.code, 0, first.stderr);
  fails(args, /its stages were trained on other mnist data than this command loads \(their examples differ\); give the data they were trained on \(recorded: --data-dir .*\), or another --root for a new run/);
  const other = idxDir((f) => { f['train-images-idx3-ubyte'][16 + 5] = 200; });
  fails([...args, '--data-dir', other], /its stages were trained on other mnist data/);
  const again = lth([...args, '--levels', '2', '--data-dir', dir]);
  assert.equal(again.code, 0, again.stderr);
});
test('data: CIFAR-10\'s python version is named as such', () => {
  const dir = tmp();
  fs.mkdirSync(path.join(dir, 'cifar-10-batches-py'));
  fails(['train', '--model', 'conv2', '--data-dir', dir], /cifar10: '.*' holds CIFAR-10's python version \(pickled batches\); lth reads the binary version/);
});
test('data: a CIFAR-10 file that is not whole records', () => {
  const dir = tmp();
  for (const f of ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin']) fs.writeFileSync(path.join(dir, f), Buffer.alloc(3073 * 2));
  fs.writeFileSync(path.join(dir, 'data_batch_3.bin'), Buffer.alloc(3073 + 5));
  fails(['train', '--model', 'conv2', '--data-dir', dir], /CIFAR-10 file '.*data_batch_3.bin' has 3078 bytes, not a whole number of 3073-byte records/);
});

// ------------------------------------------------------------------ the store's files

test('store: a finished stage\'s weight file cut short stops the resumed run, naming it; the other finished stage is kept', () => {
  const runDir = finishedRun();
  const file = path.join(runDir, 'replicate_0/level_1/main/model_final.safetensors');
  fs.truncateSync(file, 100);
  const err = fails(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '2', '--root', path.dirname(runDir)],
    /finished stage replicate_0\/level_1\/main is damaged: .*model_final\.safetensors is damaged/);
  assert.match(err, /lth verify .* --repair/);
  assert.ok(fs.existsSync(path.join(runDir, 'replicate_0/level_0/main/done.json')));
  // The repair redoes the damaged stage and the one after it, which the failed command asked for.
  const repair = lth(['verify', runDir, '--repair']);
  assert.equal(repair.code, 0, repair.stderr);
  assert.match(repair.stdout, /^2 stage\(s\) trained, 2 of them redone \(damaged, or after a damaged one\)/m);
});
test('store: a stage a user\'s mistake stops shows as failed in lth status, with why, until it finishes', () => {
  const diverged = tmp();
  fails(['lottery', '--lr', '1e30', '--steps', '20it', '--eval-every', '10', '--levels', '1', '--root', diverged], /training diverged: loss is NaN/);
  const runDir = path.join(diverged, fs.readdirSync(diverged)[0]);
  const status = lth(['status', runDir]);
  assert.equal(status.code, 1);
  assert.match(status.stdout, /0 done, 0 started .*, 1 failed, 1 to run \(of 2\)\nfailed  replicate_0\/level_0\/main: training diverged: loss is NaN/);

  // A failed stage that then finishes (its cause fixed) is done, its failed.json gone and in none of its checksums.
  const run = finishedRun();
  const failed = path.join(run, 'replicate_0/level_2/main/failed.json');
  fs.mkdirSync(path.dirname(failed), { recursive: true });
  fs.writeFileSync(failed, JSON.stringify({ message: 'a cause since fixed' }));
  fs.writeFileSync(path.join(run, 'hparams.json'), fs.readFileSync(path.join(run, 'hparams.json'), 'utf8').replace('"levels": 1', '"levels": 2'));
  assert.match(lth(['status', run]).stdout, /failed  replicate_0\/level_2\/main: a cause since fixed/);
  fs.writeFileSync(failed, '{ "message": "cut');
  assert.match(lth(['status', run]).stdout, /failed  replicate_0\/level_2\/main: \(.*failed\.json is damaged: /);
  assert.equal(lth(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '2', '--root', path.dirname(run)]).code, 0);
  const after = lth(['status', run]);
  assert.equal(after.code, 0, after.stdout);
  assert.match(after.stdout, /3 done, 0 started .*, 0 failed, 0 to run \(of 3\)/);
  assert.ok(!fs.existsSync(path.join(run, 'replicate_0/level_2/main/failed.json')), 'removed once the stage finished');
  assert.match(lth(['verify', run]).stdout, /3 stages whole, 0 damaged/);
});
test('store: a zero-length mask file', () => {
  const runDir = finishedRun();
  fs.writeFileSync(path.join(runDir, 'replicate_0/level_1/main/mask.safetensors'), '');
  fails(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '2', '--root', path.dirname(runDir)], /mask\.safetensors is damaged/);
});
test('store: a missing file of a finished stage', () => {
  const runDir = finishedRun();
  fs.rmSync(path.join(runDir, 'replicate_0/level_0/main/model_init.safetensors'));
  fails(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '1', '--root', path.dirname(runDir)], /model_init\.safetensors is missing/);
});
test('store: a damaged done.json', () => {
  const runDir = finishedRun();
  fs.writeFileSync(path.join(runDir, 'replicate_0/level_1/main/done.json'), '{"level": 1, "stag');
  fails(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '1', '--root', path.dirname(runDir)], /level_1\/main\/done\.json is damaged/);
});
test('store: a damaged safetensors header in a file lth reads', () => {
  const runDir = finishedRun();
  const file = path.join(runDir, 'replicate_0/level_1/main/mask.safetensors');
  const buf = fs.readFileSync(file);
  buf.write('}', 9);
  fs.writeFileSync(file, buf);
  const r = lth(['verify', runDir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /damaged replicate_0\/level_1\/main: .*mask\.safetensors is damaged/);
});
test('store: a damaged hparams.json or summary.json: report names the file; ls lists the run as damaged and every other run', () => {
  const runDir = finishedRun();
  const root = path.dirname(runDir);
  const other = lth(['lottery', '--steps', '10it', '--eval-every', '10', '--levels', '1', '--seed', '1', '--root', root]);
  assert.equal(other.code, 0, other.stderr);
  fs.writeFileSync(path.join(runDir, 'summary.json'), 'nope');
  const ls = lth(['ls', '--root', root]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(`${path.basename(runDir)}  damaged: .*summary\\.json is damaged \\(.*\\); 'lth verify .*' checks it`));
  assert.match(ls.stdout, /2 of 2 stages done, complete {2}evalEvery=10 levels=1 seed=1 steps=10it/);
  fs.writeFileSync(path.join(runDir, 'hparams.json'), '{ broken');
  fails(['report', runDir], /report: .*hparams\.json is damaged \(/);
});
test('store: verify and report on a directory that is not a run', () => {
  fails(['verify', tmp()], /is not a lottery run directory \(expected hparams\.json in it/);
  fails(['report', tmp()], /not a lottery run directory/);
});

// ------------------------------------------------------------------ the file system

test('file system: a file where the run root should be', () => {
  const file = path.join(tmp(), 'runs');
  fs.writeFileSync(file, '');
  fails(['lottery', '--steps', '10it', '--levels', '1', '--root', file], /cannot mkdir .*runs.* \(ENOTDIR\)/, 3);
});
/** A fresh directory everyone may enter (a test's tmp() is private to its owner). */
function openDir(): string {
  const dir = tmp();
  fs.chmodSync(dir, 0o755);
  return dir;
}

test('file system: a run root the user may not write to', () => {
  const root = path.join(openDir(), 'runs');
  fs.mkdirSync(root, { mode: 0o555 });
  fs.chmodSync(root, 0o555);
  fails(['lottery', '--steps', '10it', '--levels', '1', '--root', root], /cannot (mkdir|open|write) .*runs.* \(EACCES\)/, 3, {}, asUnprivileged);
});

test('file system: a data file the user may not read', () => {
  const dir = idxDir(() => {});
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(path.join(dir, 'train-images-idx3-ubyte'), 0o000);
  fails(['train', '--steps', '1it', '--data-dir', dir], /IDX file '.*train-images-idx3-ubyte' cannot be read: EACCES/, 2, {}, asUnprivileged);
});

test('file system: a read-only file system, for --out and --root and below them (where the tests may mount one)', (t) => {
  const ro = tmp();
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro', 'tmpfs', ro]).status !== 0) {
    t.skip('cannot mount a read-only tmpfs here');
    return;
  }
  try {
    fails(['train', '--steps', '1it', '--out', ro], /cannot access .* \(EROFS\): the file system is read-only/, 3);
    fails(['train', '--steps', '1it', '--out', path.join(ro, 'a', 'b')], /cannot mkdir .*a.b \(EROFS\): the file system is read-only/, 3);
    fails(['lottery', '--steps', '1it', '--levels', '1', '--root', path.join(ro, 'runs')], /cannot mkdir .*runs.* \(EROFS\): the file system is read-only/, 3);
  } finally {
    spawnSync('umount', [ro]);
  }
});
test('file system: lth train --out into a directory that holds earlier results', () => {
  const out = tmp();
  assert.equal(lth(['train', '--steps', '10it', '--eval-every', '10', '--out', out]).code, 0);
  const before = fs.readFileSync(path.join(out, 'summary.json'), 'utf8');
  const err = fails(['train', '--steps', '20it', '--eval-every', '10', '--out', out], /--out .* already holds a training's results \(summary\.json\): choose another directory, or remove them first/);
  assert.doesNotMatch(err, /it 20\/20/, 'nothing trained first');
  assert.equal(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'), before, 'the earlier results are kept');
});
test('file system: lth train --out leaves no directory of its own behind when the data fails to load', () => {
  const parent = tmp(), out = path.join(parent, 'new', 'results');
  fails(['train', '--data-dir', tmp(), '--out', out], /has no train-images-idx3-ubyte/);
  assert.deepEqual(fs.readdirSync(parent), [], 'the directories it made are gone');
  const kept = tmp();
  fails(['train', '--data-dir', tmp(), '--out', kept], /has no train-images-idx3-ubyte/);
  assert.ok(fs.existsSync(kept), 'a directory that was there before stays');
});
test('file system: an --out directory on a read-only path', () => {
  const parent = openDir();
  fs.chmodSync(parent, 0o555);
  fails(['train', '--steps', '1it', '--out', path.join(parent, 'results')], /cannot mkdir .*results.* \(EACCES\)/, 3, {}, asUnprivileged);
});

// ------------------------------------------------------------------ two processes

test('two processes on one run: the second is refused, naming the first; a lock left by a killed process is taken over', async () => {
  const root = tmp();
  const args = ['lottery', '--steps', '1000it', '--eval-every', '100', '--levels', '2', '--branches', 'reinit', '--root', root, '--json'];
  const lockFile = () => {
    const runs = fs.existsSync(root) ? fs.readdirSync(root) : [];
    return runs.length ? path.join(root, runs[0], 'lock.json') : null;
  };
  const a = spawn(process.execPath, [cli, ...args]);
  let aOut = '', aErr = '';
  a.stdout.on('data', (d: Buffer) => { aOut += d.toString(); });
  a.stderr.on('data', (d: Buffer) => { aErr += d.toString(); });
  const aExit = new Promise<number | null>((resolve) => a.on('exit', resolve));
  while (!(lockFile() && fs.existsSync(lockFile()!))) await new Promise((r) => setTimeout(r, 5));
  const runDir = path.dirname(lockFile()!);
  const refused = new RegExp(`is in use: lth \\(training its stages\\) has been running on it since \\S+, process ${a.pid} on ${os.hostname()}\\. Wait for it to finish, or stop it and run this again`);
  fails(args, refused);
  fails(['verify', runDir, '--repair'], refused);
  assert.equal(await aExit, 0, aErr);
  assert.ok(!fs.existsSync(lockFile()!), 'released at the end');
  const again = lth(args);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout.trim().split('\n').pop()!), JSON.parse(aOut.trim().split('\n').pop()!));

  // A process killed with SIGKILL leaves its lock; the next run on this host takes it over.
  const more = [...args.filter((x) => x !== '--json'), '--levels', '3'];
  await killLthWhen(more, () => fs.existsSync(path.join(runDir, 'replicate_0/level_3/main/mask.safetensors')));
  assert.ok(fs.existsSync(lockFile()!), 'the killed process\'s lock is left');
  const resumed = lth([...more, '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(JSON.parse(resumed.stdout.trim().split('\n').pop()!).complete, true);

  // A lock from another host cannot be checked: the message says which file to delete.
  fs.writeFileSync(lockFile()!, JSON.stringify({ pid: 1, host: 'elsewhere', since: '2026-01-01T00:00:00.000Z', what: 'training its stages' }));
  fails(args, new RegExp(`process 1 on elsewhere\\. .*if that process is no longer running, delete ${lockFile()!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  fs.rmSync(lockFile()!);
  const v = lth(['verify', runDir]);
  assert.equal(v.code, 0, v.stdout);
  assert.match(v.stdout, /7 stages whole, 0 damaged/);
});
