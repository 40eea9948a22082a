import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI's entry point in the build (dist/src/cli/main.js). */
export const CLI_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');

/** Runs `lth args...` as a user would, in a child process, with `env` added to this process's environment. */
export function runLth(args: readonly string[], env: Readonly<Record<string, string>> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The last line of a command's stdout, parsed: what --json prints. */
export function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * Starts `lth args...` and kills it with SIGKILL at the first moment `ready()` holds (polled
 * every 5 ms), whatever it is writing then; resolves once it has exited, rejects if it
 * finishes before it could be killed.
 */
export async function killLthWhen(args: readonly string[], ready: () => boolean): Promise<void> {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], { stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (!ready()) return;
      clearInterval(poll);
      child.kill('SIGKILL');
      resolve();
    }, 5);
    child.on('exit', () => { clearInterval(poll); reject(new Error('the run finished before it could be killed')); });
  });
  await exited;
}
