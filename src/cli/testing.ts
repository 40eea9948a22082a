import { spawnSync } from 'node:child_process';
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
