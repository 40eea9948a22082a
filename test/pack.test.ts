// The package as a user gets it: `npm pack` (prepack builds the prebuilt addon, prepare the
// TypeScript), installed into an empty project with no C++ toolchain, then the CLI, a
// TypeScript consumer, the reference fallback and the from-source build (docs/install.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  name: string; files: string[]; devDependencies: Record<string, string>;
};
const tuple = `${process.platform}-${process.arch}`;

interface Result { code: number | null; stdout: string; stderr: string }

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Result {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tail = (r: Result): string => `${r.stdout}\n${r.stderr}`.trim().slice(-3000);

function ok(r: Result, what: string): Result {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${tail(r)}`);
  return r;
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

/** The environment of every npm call: Node's headers where the from-source builds can find them without the network. */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const nodedir = spawnSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8', env }).stdout?.trim();
  const cached = path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node);
  if ((!nodedir || nodedir === 'null' || nodedir === 'undefined') && fs.existsSync(path.join(cached, 'include', 'node'))) {
    env.npm_config_nodedir = cached;
  }
  return env;
}

/** A directory of compilers, make and python that record their call and fail, first on PATH, and CC/CXX/MAKE pointing at one. */
function noToolchain(dir: string, env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; log: string } {
  const log = path.join(dir, 'called.log');
  fs.mkdirSync(dir, { recursive: true });
  for (const tool of ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'python', 'python3']) {
    fs.writeFileSync(path.join(dir, tool), `#!/bin/sh\necho "$0 $*" >> '${log}'\nexit 1\n`, { mode: 0o755 });
  }
  const failing = path.join(dir, 'g++');
  return { env: { ...env, PATH: `${dir}${path.delimiter}${env.PATH ?? ''}`, CC: failing, CXX: failing, MAKE: path.join(dir, 'make') }, log };
}

/** The library's run settings in the consumer, and the stderr it printed (resolveContext called twice: one warning at most). */
const SETTINGS_SCRIPT = "const m = await import('lth'); m.resolveContext(); console.log(JSON.stringify(m.resolveContext().settings));";

test('npm pack -> npm install in an empty project without a C++ toolchain: the prebuilt addon, the CLI, TypeScript types, the fallbacks', { timeout: 900_000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-pack-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const env = baseEnv();

  // A copy of the package's sources, so that packing rebuilds nothing in this checkout.
  const stage = path.join(tmp, 'stage');
  fs.mkdirSync(stage);
  const sources = ['package.json', 'tsconfig.json', 'src', 'README.md', 'LICENSE',
    ...pkg.files.filter((f) => !f.startsWith('!') && !f.startsWith('dist') && f !== 'prebuilds')];
  for (const f of new Set(sources)) {
    if (fs.existsSync(path.join(root, f))) fs.cpSync(path.join(root, f), path.join(stage, f), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(stage, 'node_modules'), 'dir');
  const packed = path.join(tmp, 'packed');
  fs.mkdirSync(packed);

  let tarball = '';
  await t.test('npm pack builds the TypeScript and the prebuilt addon into the tarball', () => {
    ok(run('npm', ['pack', '--pack-destination', packed], stage, env), 'npm pack');
    const tgz = fs.readdirSync(packed).filter((f) => f.endsWith('.tgz'));
    assert.equal(tgz.length, 1, `one tarball: ${tgz.join(', ')}`);
    tarball = path.join(packed, tgz[0]);
    const list = ok(run('tar', ['tzf', tarball], tmp, env), 'tar tzf').stdout.split('\n').filter(Boolean);
    for (const f of ['package/package.json', 'package/dist/src/index.js', 'package/dist/src/index.d.ts', 'package/dist/src/cli/main.js',
      'package/binding.gyp', 'package/native/lth_native.cc', `package/prebuilds/${tuple}/${pkg.name}.node`]) {
      assert.ok(list.includes(f), `the tarball has ${f}`);
    }
    assert.deepEqual(list.filter((f) => /\.test\.|\.map$|^package\/(build|test|node_modules)\//.test(f)), [], 'no tests, source maps or build outputs');
  });

  const project = path.join(tmp, 'project');
  const nm = path.join(project, 'node_modules', pkg.name);
  const shims = noToolchain(path.join(tmp, 'no-toolchain'), env);
  await t.test('npm install <tarball> succeeds with every compiler, make and python failing, and compiles nothing', () => {
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2)}\n`);
    const r = run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], project, shims.env);
    assert.equal(r.code, 0, `npm install of the packed tarball failed; it takes lth's dependencies from the npm cache or, `
      + `failing that, the registry (is it reachable?):\n${tail(r)}`);
    assert.ok(!fs.existsSync(shims.log), `no compiler, make or python was called:\n${fs.existsSync(shims.log) ? fs.readFileSync(shims.log, 'utf8') : ''}`);
    assert.ok(!fs.existsSync(path.join(nm, 'build')), 'nothing was built in the installed package');
    assert.ok(fs.existsSync(path.join(nm, 'prebuilds', tuple, `${pkg.name}.node`)), 'the prebuilt addon is installed');
  });

  await t.test('npx lth train runs on the native backend (the prebuilt addon)', () => {
    const r = ok(run('npx', ['--no', 'lth', 'train', '--steps', '20it', '--eval-every', '10', '--json'], project, shims.env), 'npx lth train');
    const s = lastJson(r.stdout);
    assert.equal(s.backend, 'native', r.stderr);
    assert.equal(s.iterations, 20);
    assert.doesNotMatch(r.stderr, /warning/);
  });

  await t.test("a TypeScript consumer of import { runLottery, resolveLottery } from 'lth' type-checks (module nodenext)", () => {
    ok(run('npm', ['install', '--save-dev', `@types/node@${pkg.devDependencies['@types/node']}`, '--prefer-offline', '--no-audit', '--no-fund'], project, env),
      'npm install @types/node');
    fs.writeFileSync(path.join(project, 'consumer.ts'), [
      "import { runLottery, resolveLottery } from 'lth';",
      '',
      "const h = resolveLottery({ model: 'lenet_300_100', levels: 2, steps: '20it' });",
      'const levels: number = h.levels;',
      'export function run(): string {',
      '  return runLottery(h, { onProgress: (p) => console.log(p.level) }).runDir;',
      '}',
      '// Typed, not any: a wrong argument is an error.',
      '// @ts-expect-error',
      "runLottery('lenet');",
      'export { levels };',
      '',
    ].join('\n'));
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, types: ['node'] },
      files: ['consumer.ts'],
    }, null, 2));
    ok(run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], project, env), 'tsc on consumer.ts');
  });

  await t.test('with its install script allowed (npm install-scripts approve), node-gyp-build takes the prebuilt addon and compiles nothing', () => {
    // npm 11 runs a dependency's install script only once approved; older npm runs it anyway.
    run('npm', ['install-scripts', 'approve', pkg.name], project, env);
    const r = ok(run('npm', ['rebuild', pkg.name, '--foreground-scripts'], project, shims.env), 'npm rebuild with the install script');
    assert.match(r.stdout + r.stderr, /node-gyp-build/, 'the install script ran');
    assert.ok(!fs.existsSync(shims.log), 'no compiler, make or python was called');
    assert.ok(!fs.existsSync(path.join(nm, 'build')), 'nothing was built');
  });

  await t.test('no addon at all: the reference backend with one warning line; --backend native is an error', () => {
    fs.renameSync(path.join(nm, 'prebuilds'), path.join(tmp, 'prebuilds-aside'));
    const r = ok(run(process.execPath, ['--input-type=module', '-e', SETTINGS_SCRIPT], project, env), 'the library without an addon');
    assert.equal(lastJson(r.stdout).backend, 'reference');
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], new RegExp(`^lth: warning: native addon unavailable \\(no native build for ${tuple}: .*\\); using the slow reference backend$`));
    const explicit = run('npx', ['--no', 'lth', 'train', '--backend', 'native', '--steps', '1it', '--json'], project, env);
    assert.equal(explicit.code, 2, tail(explicit));
    assert.match(explicit.stderr, /lth: error: --backend=native but the native addon cannot load: no native build/);
  });

  await t.test('where no prebuilt addon fits, the install script builds it from source (node-gyp, with a toolchain)', () => {
    const r = ok(run('npm', ['rebuild', pkg.name, '--foreground-scripts'], project, env), 'npm rebuild from source');
    assert.ok(fs.existsSync(path.join(nm, 'build', 'Release', 'lth_native.node')), `built from source:\n${tail(r)}`);
    const s = ok(run(process.execPath, ['--input-type=module', '-e', SETTINGS_SCRIPT], project, env), 'the library with the addon built from source');
    assert.equal(lastJson(s.stdout).backend, 'native', s.stderr);
    assert.equal(s.stderr, '');
  });
});
