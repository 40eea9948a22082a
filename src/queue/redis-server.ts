/**
 * A Redis server of one's own on a free loopback port, with its data in a directory of its
 * own: for the tests and the bench of distributed runs, which never touch a Redis they did
 * not start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Whether `redis-server` can be run here (Debian: apt-get install redis-server). */
export function haveRedisServer(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface LocalRedis {
  readonly port: number;
  /** Stops it (SIGTERM: with append-only persistence, what it holds is saved). */
  stop(): Promise<void>;
  /** Stops it and starts it again on the same port and directory, `downSeconds` later. */
  restart(downSeconds?: number): Promise<void>;
}

/**
 * Starts `redis-server` on 127.0.0.1 and a free port, append-only persistence on, and
 * resolves once it accepts connections. `tls`: the port speaks TLS only (give the
 * certificate options in `extra`).
 */
export async function startRedisServer(extra: string[] = [], tls = false): Promise<LocalRedis> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lth-redis-')), port = await freePort();
  const ports = tls ? ['--port', '0', '--tls-port', String(port)] : ['--port', String(port)];
  const start = async (): Promise<ChildProcess> => {
    const p = spawn('redis-server', [...ports, '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', ...extra], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (await new Promise<boolean>((res) => { const c = net.connect(port, '127.0.0.1', () => { c.end(); res(true); }).on('error', () => res(false)); })) return p;
      await sleep(50);
    }
    p.kill('SIGKILL');
    throw new Error(`redis-server did not start on port ${port}`);
  };
  const halt = async (p: ChildProcess) => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  };
  let proc = await start();
  // A test or bench that ends early must not leave a server behind.
  process.once('exit', () => { proc.kill('SIGKILL'); });
  return {
    port,
    stop: () => halt(proc),
    restart: async (downSeconds = 0.5) => { await halt(proc); await sleep(1000 * downSeconds); proc = await start(); },
  };
}
