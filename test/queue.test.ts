/**
 * Distributed runs on a real Redis (started by the tests on a free loopback port, with a
 * temporary directory and append-only persistence): workers as users start them (`lth
 * worker`), runs submitted with `lth lottery --queue`. Compared with the local executor's
 * results, through a killed worker, a restarted Redis, malformed jobs and a password.
 * Skipped where redis-server is not installed (.ci/run installs it).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { resolveLottery } from '../src/lottery/hparams.js';
import { runLottery } from '../src/lottery/runner.js';
import { QUEUE_NAME } from '../src/queue/jobs.js';
import { readDone } from '../src/store/layout.js';
import { haveRedisServer, startRedisServer } from '../src/queue/redis-server.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'lth-queue-'));
const haveRedis = haveRedisServer();
const skip = haveRedis ? false : 'redis-server is not installed (apt-get install redis-server)';
const children: ChildProcess[] = [];
after(() => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL'); });

const startRedis = startRedisServer;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `lth worker` in its own process; its log lines collected. */
function startWorker(queue: string, root: string, extra: string[] = [], env: Record<string, string> = {}, detached = false) {
  const p = spawn(process.execPath, [cli, 'worker', '--queue', queue, '--root', root, '--lock-seconds', '2', '--threads', '1', ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached });
  children.push(p);
  const log: string[] = [];
  p.stderr!.setEncoding('utf8').on('data', (c: string) => log.push(...c.split('\n').filter(Boolean)));
  p.stdout!.setEncoding('utf8').on('data', (c: string) => log.push(...c.split('\n').filter(Boolean)));
  return { p, log, stop: () => p.kill('SIGTERM') };
}

/** `lth lottery ... --queue Q --json` (with --wait unless `wait` is false); its status and last JSON line. */
function submit(args: string[], queue: string, wait = true, env: Record<string, string> = {}): Promise<{ code: number | null; out: Record<string, unknown>; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, 'lottery', ...args, '--queue', queue, ...(wait ? ['--wait'] : []), '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    children.push(p);
    let out = '', err = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    p.stderr.setEncoding('utf8').on('data', (c: string) => { err += c; });
    p.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '{}';
      let parsed: Record<string, unknown> = {};
      try { parsed = JSON.parse(last); } catch { /* reported by the caller's assertion */ }
      resolve({ code, out: parsed, stderr: err });
    });
  });
}

/** A summary without what differs between machines and runs (timings, paths). */
function comparable(summary: unknown): unknown {
  return JSON.parse(JSON.stringify(summary, (k, v) => (k === 'seconds' || k === 'run' || k === 'root' ? undefined : v)));
}

const RUN = ['--steps', '40it', '--eval-every', '20', '--levels', '3', '--branches', 'reinit,random_prune', '--replicates', '2'];

test('three workers finish a run with controls and replicates; its summary is the local executor\'s; submitting again adds nothing', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  const workers = [0, 1, 2].map(() => startWorker(queue, root));
  const r = await submit([...RUN, '--root', root], queue);
  assert.equal(r.code, 0, r.stderr);
  const local = runLottery(resolveLottery({ steps: '40it', evalEvery: 20, levels: 3, branches: ['reinit', 'random_prune'], replicates: 2, root: tmp() }));
  const { runDir, ...summary } = r.out;
  assert.deepEqual(comparable(summary), comparable(local.summary));
  // Every stage committed once, by one of the workers, which says so in done.json.
  const committed = workers.flatMap((w) => w.log.filter((l) => l.includes(' committed ')).map((l) => l.replace(/.* committed (\S+).*/, '$1')));
  assert.equal(committed.length, 2 * (1 + 3 * 3));
  assert.equal(new Set(committed).size, committed.length, 'no stage committed twice');
  for (const id of committed) assert.match(readDone(path.join(root, id))!.worker ?? '', /^.+:\d+$/);
  assert.ok(workers.filter((w) => w.log.some((l) => l.includes(' committed '))).length >= 2, 'the work was shared');
  const again = await submit([...RUN, '--root', root], queue, false);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual([again.out.runDir, again.out.enqueued], [runDir, 0]);
  for (const w of workers) w.stop();
  await redis.stop();
});

test('a worker killed with SIGKILL mid-stage: its stage goes to another worker, the run finishes with the same results', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  const args = ['--steps', '600it', '--eval-every', '100', '--levels', '1', '--root', root];
  const victim = startWorker(queue, root);
  const pending = submit(args, queue);
  // Kill it as soon as it has started the dense stage (the only runnable one).
  for (let i = 0; i < 400 && !victim.log.some((l) => l.includes(' started ')); i++) await sleep(25);
  assert.ok(victim.log.some((l) => l.includes(' started ')), victim.log.join('\n'));
  victim.p.kill('SIGKILL');
  const rescuer = startWorker(queue, root);
  const r = await pending;
  assert.equal(r.code, 0, r.stderr);
  const local = runLottery(resolveLottery({ steps: '600it', evalEvery: 100, levels: 1, root: tmp() }));
  const { runDir: _runDir, ...summary } = r.out;
  assert.deepEqual(comparable(summary), comparable(local.summary));
  assert.ok(!victim.log.some((l) => l.includes(' committed ')), 'the killed worker committed nothing');
  const committed = rescuer.log.filter((l) => l.includes(' committed '));
  assert.equal(committed.length, 2, rescuer.log.join('\n'));
  rescuer.stop();
  await redis.stop();
});

test('a worker that lost its job\'s lock (paused past it while another took the stage) does not commit', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  const paused = startWorker(queue, root);
  const pending = submit(['--steps', '2000it', '--eval-every', '500', '--levels', '0', '--root', root], queue);
  // Once its stage's process has begun writing the stage, pause the worker: it renews no
  // lock, while that process trains on and finishes meanwhile.
  const begun = () => fs.readdirSync(root).some((d) => fs.existsSync(path.join(root, d, 'replicate_0/level_0/main/model_init.safetensors')));
  for (let i = 0; i < 800 && !begun(); i++) await sleep(25);
  assert.ok(begun(), paused.log.join('\n'));
  paused.p.kill('SIGSTOP');
  const other = startWorker(queue, root);
  const r = await pending;
  assert.equal(r.code, 0, r.stderr);
  paused.p.kill('SIGCONT');
  for (let i = 0; i < 400 && !paused.log.some((l) => /lost the job's lock/.test(l)); i++) await sleep(25);
  assert.ok(paused.log.some((l) => l.includes('not committed: this worker lost the job\'s lock')), paused.log.join('\n'));
  assert.ok(!paused.log.some((l) => l.includes(' committed ')), 'the paused worker committed nothing');
  assert.ok(other.log.some((l) => l.includes(' committed ')), other.log.join('\n'));
  const runDir = String(r.out.runDir);
  assert.equal(readDone(path.join(runDir, 'replicate_0/level_0/main'))!.worker, other.log.find((l) => l.includes(' committed '))!.replace(/^lth worker (\S+):.*/, '$1'));
  paused.stop();
  other.stop();
  await redis.stop();
});

test('Redis stopped and restarted mid-run: the workers reconnect and the run finishes', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  const worker = startWorker(queue, root);
  const pending = submit(['--steps', '200it', '--eval-every', '50', '--levels', '3', '--root', root], queue);
  for (let i = 0; i < 400 && !worker.log.some((l) => l.includes(' committed ')); i++) await sleep(25);
  await redis.restart();
  const r = await pending;
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.out as { complete?: boolean }).complete, true);
  assert.equal(worker.p.exitCode, null, 'the worker is still serving');
  worker.stop();
  await redis.stop();
});

test('Redis down for 12 s while a submitter waits: it says so, and the run finishes once Redis is back', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  const worker = startWorker(queue, root);
  const p = spawn(process.execPath, [cli, 'lottery', '--steps', '100it', '--eval-every', '50', '--levels', '2', '--root', root, '--queue', queue, '--wait'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(p);
  let stderr = '';
  p.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  p.stdout.resume();
  const exited = new Promise<number | null>((resolve) => p.on('close', resolve));
  for (let i = 0; i < 400 && !worker.log.some((l) => l.includes(' committed ')); i++) await sleep(25);
  await redis.restart(12);
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /the queue at redis:\/\/127\.0\.0\.1:\d+ has not answered for 1\d s .*; waiting for it/);
  worker.stop();
  await redis.stop();
});

test('malformed jobs and jobs naming paths outside the store fail with their error; the worker goes on; a password appears nowhere', { skip }, async () => {
  const password = 'pw-that-must-not-leak';
  const redis = await startRedis(['--requirepass', password]);
  const queue = `redis://:${password}@127.0.0.1:${redis.port}`;
  const root = tmp();
  const worker = startWorker(queue, root);
  const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port, password, maxRetriesPerRequest: null } });
  const bad = [
    { v: 1, run: '../../../../etc', stage: 'replicate_0/level_0/main' },
    { v: 1, run: '0123456789abcdef', stage: '../../../tmp/x' },
    { v: 1, run: '0123456789abcdef', stage: 'replicate_0/level_0/main', path: '/etc/passwd' },
    'not an object',
    { v: 1, run: '0123456789abcdef', stage: 'replicate_0/level_0/main' }, // a run the store does not have
  ];
  const jobs = await Promise.all(bad.map((data, i) => q.add('stage', data, { jobId: `bad-${i}` })));
  for (let i = 0; i < 400; i++) {
    const states = await Promise.all(jobs.map((j) => j.getState()));
    if (states.every((s) => s === 'failed')) break;
    await sleep(25);
  }
  const reasons = await Promise.all(jobs.map(async (j) => (await q.getJob(j.id!))!.failedReason ?? ''));
  assert.match(reasons[0], /'run' must be a run hash/);
  assert.match(reasons[1], /'stage' must be a stage path/);
  assert.match(reasons[2], /expected exactly the fields run, stage, v/);
  assert.match(reasons[3], /the payload is not an object/);
  assert.match(reasons[4], /run 0123456789abcdef is not in this worker's store .* \(no hparams\.json\): a worker's --root must be the directory the submitter's --root names/);
  assert.ok(!fs.existsSync(path.join(root, '0123456789abcdef')), 'nothing written for a run the store lacks');
  await q.close();
  // Still serving: a real run through the password-protected queue finishes.
  const r = await submit(['--steps', '20it', '--eval-every', '10', '--levels', '1', '--root', root], queue);
  assert.equal(r.code, 0, r.stderr);
  worker.stop();
  await new Promise((res) => worker.p.once('exit', res));
  const texts = [r.stderr, JSON.stringify(r.out), worker.log.join('\n')];
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  for (const f of walk(root)) texts.push(fs.readFileSync(f, 'latin1'));
  for (const t of texts) assert.ok(!t.includes(password), 'the password leaked');
  assert.ok(worker.log.some((l) => l.includes('redis://127.0.0.1:')), 'the worker names the queue without its password');
  await redis.stop();
});

test('a stage that fails for a user error (a damaged input) is failed with its message, shown by lth status, and not retried', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  // The dense stage finished here, then its trained weights damaged: level 1 cannot start from them.
  const { runDir } = runLottery(resolveLottery({ steps: '20it', evalEvery: 10, levels: 0, root }));
  fs.truncateSync(path.join(runDir, 'replicate_0/level_0/main/model_final.safetensors'), 100);
  const worker = startWorker(queue, root);
  const r = await submit(['--steps', '20it', '--eval-every', '10', '--levels', '1', '--root', root], queue);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /failed: replicate_0\/level_1\/main: finished stage replicate_0\/level_0\/main is damaged/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack');
  const status = spawnSync(process.execPath, [cli, 'status', runDir], { encoding: 'utf8' });
  assert.equal(status.status, 1);
  assert.match(status.stdout, /failed  replicate_0\/level_1\/main: finished stage replicate_0\/level_0\/main is damaged/);
  const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null } });
  const job = (await q.getJob(`${path.basename(runDir)}/replicate_0/level_1/main`))!;
  assert.deepEqual([await job.getState(), job.attemptsMade], ['failed', 1]);
  await q.close();
  worker.stop();
  await redis.stop();
});

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

test('TLS: workers and the submitter reach a Redis that only speaks TLS (rediss://), trusting its CA', { skip: skip || (haveOpenssl ? false : 'openssl is not installed') }, async () => {
  // A CA and a server certificate for 127.0.0.1, made here; Node trusts the CA through NODE_EXTRA_CA_CERTS.
  const certs = tmp();
  const ssl = (args: string[]) => assert.equal(spawnSync('openssl', args, { cwd: certs, stdio: 'ignore' }).status, 0, `openssl ${args.join(' ')}`);
  ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=lth test CA']);
  ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(path.join(certs, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
  const redis = await startRedis(['--tls-cert-file', path.join(certs, 'server.crt'), '--tls-key-file', path.join(certs, 'server.key'),
    '--tls-ca-cert-file', path.join(certs, 'ca.crt'), '--tls-auth-clients', 'no'], true);
  const queue = `rediss://127.0.0.1:${redis.port}`;
  const env = { NODE_EXTRA_CA_CERTS: path.join(certs, 'ca.crt') };
  const root = tmp();
  const worker = startWorker(queue, root, [], env);
  const r = await submit(['--steps', '20it', '--eval-every', '10', '--levels', '1', '--root', root], queue, true, env);
  assert.equal(r.code, 0, `${r.stderr}\n${worker.log.join('\n')}`);
  assert.equal((r.out as { complete?: boolean }).complete, true);
  assert.equal(worker.log.filter((l) => l.includes(' committed ')).length, 2);
  worker.stop();
  await redis.stop();
});

test('no Redis at the address: the submitter stops with an error naming it; a worker waiting for it stops on the first SIGTERM', async () => {
  const root = tmp();
  const started = Date.now();
  const r = await submit(['--steps', '20it', '--levels', '1', '--root', root], 'redis://127.0.0.1:1', false);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^lth: error: --queue: cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(connect ECONNREFUSED 127\.0\.0\.1:1\) within 10 s/m);
  assert.ok(Date.now() - started < 60_000);
  assert.deepEqual(fs.readdirSync(root), [], 'no run recorded for a queue never reached');
  const w = startWorker('redis://127.0.0.1:1', root);
  while (!w.log.some((l) => /ECONNREFUSED/.test(l))) await sleep(20);
  const exited = new Promise<number | null>((resolve) => w.p.on('exit', resolve));
  w.stop();
  assert.equal(await Promise.race([exited, sleep(10_000).then(() => 'still running')]), 0, w.log.join('\n'));
});

test('a stage whose files were removed after its job completed is queued again; Ctrl-C to a worker\'s process group lets its stage finish; --report with --wait', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  // A worker in a process group of its own, as a terminal's foreground job is.
  const w = startWorker(queue, root, [], {}, true);
  const args = ['--steps', '40it', '--eval-every', '20', '--levels', '1', '--root', root];
  const first = await submit([...args, '--report'], queue);
  assert.equal(first.code, 0, first.stderr);
  const runDir = String(first.out.runDir);
  assert.ok(fs.existsSync(path.join(runDir, 'report.html')), 'the report, written after --wait');
  fs.rmSync(path.join(runDir, 'replicate_0', 'level_1'), { recursive: true });
  const again = await submit(args, queue);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(readDone(path.join(runDir, 'replicate_0', 'level_1', 'main')), 'trained again');
  // A longer stage, then SIGINT to the worker's whole group mid-stage.
  const long = ['--steps', '1500it', '--eval-every', '500', '--levels', '0', '--seed', '7', '--root', root];
  const pending = submit(long, queue, false);
  for (let i = 0; i < 800 && w.log.filter((l) => l.includes(' started ')).length < 3; i++) await sleep(25);
  assert.equal(w.log.filter((l) => l.includes(' started ')).length, 3, w.log.join('\n'));
  const exited = new Promise<number | null>((resolve) => w.p.on('exit', resolve));
  process.kill(-w.p.pid!, 'SIGINT');
  assert.equal(await exited, 0, w.log.join('\n'));
  assert.equal((await pending).code, 0);
  assert.ok(!w.log.some((l) => / failed /.test(l)), w.log.join('\n'));
  assert.equal(w.log.filter((l) => l.includes(' committed ')).length, 3, 'the stage running at the signal finished and was committed');
  await redis.stop();
});

test('a worker with settings its stages would refuse does not start; a submission its workers would fail is refused', { skip }, async () => {
  const redis = await startRedis();
  const queue = `redis://127.0.0.1:${redis.port}`;
  const root = tmp();
  const w = spawnSync(process.execPath, [cli, 'worker', '--queue', queue, '--root', root, '--threads', '0'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(w.status, 2, w.stderr);
  assert.match(w.stderr, /--threads must be an integer from 1 to 256, got '0'/);
  const big = await submit(['--steps', '20it', '--levels', '1', '--batch-size', '100000', '--root', root], queue, false);
  assert.equal(big.code, 2);
  assert.match(big.stderr, /--batch-size 100000 is more than the 55000 training examples of mnist/);
  const db = await submit(['--steps', '20it', '--levels', '1', '--root', root], `${queue}/99`, false);
  assert.equal(db.code, 2);
  assert.match(db.stderr, /--queue: Redis at redis:\/\/127\.0\.0\.1:\d+\/99 has no database 99/);
  const report = await submit(['--steps', '20it', '--levels', '1', '--root', root, '--report'], queue, false);
  assert.equal(report.code, 2);
  assert.match(report.stderr, /--report with --queue writes the report once the run is finished: add --wait/);
  const q = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });
  assert.equal(await q.count(), 0, 'nothing queued');
  await q.close();
  await redis.stop();
});
