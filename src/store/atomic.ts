import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LthError } from '../core/errors.js';

/**
 * Writes a file so that readers see either the old content or the whole new one: write
 * to a temporary name in the same directory (unique across hosts and processes sharing
 * the directory), fsync, rename over the target, fsync the directory (so the rename
 * itself survives a crash).
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${file}.tmp-${os.hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    // A write through a descriptor names no file: name the one being written (a full disk says where).
    const err = e as NodeJS.ErrnoException;
    if (err.path === undefined) err.path = file;
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  syncDirectory(dir);
}

/**
 * Writes a file that must be written once only, whoever tries: the whole content goes to a
 * temporary name, then a hard link creates the target only if it does not exist (atomic
 * on POSIX file systems, NFS included). Returns false, writing nothing, when it exists.
 */
export function writeFileOnce(file: string, data: string | Uint8Array): boolean {
  const dir = path.dirname(file);
  const tmp = `${file}.tmp-${os.hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx');
  try {
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(tmp, file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    syncDirectory(dir);
    return true;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** fsync of a directory, where the platform allows it (not on Windows). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // A directory cannot be opened or synced here: the rename is as durable as the platform makes it.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** SHA-256 of a file's bytes, in hex. */
export function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/** A JSON file of the store, or an LthError saying it is damaged and why (`advice` appended: what to do). */
export function readStoreJson<T>(file: string, advice = ''): T {
  try {
    return readJson<T>(file);
  } catch (e) {
    throw new LthError(`${file} is damaged (${(e as Error).message})${advice}`);
  }
}
