import fs from 'node:fs';
import zlib from 'node:zlib';
import { LthError } from '../core/errors.js';

/** An IDX array (the MNIST file format): unsigned bytes with their dimensions. */
export interface IdxArray {
  readonly dims: number[];
  readonly data: Uint8Array;
}

/**
 * Parses an IDX file of unsigned bytes (type code 0x08): magic 0x0000 08 <rank>,
 * then `rank` big-endian uint32 dimensions, then the data. Gzip-compressed files are inflated
 * (whatever their name).
 * `expectRank` guards against swapping image and label files.
 */
export function readIdx(file: string, expectRank?: number): IdxArray {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new LthError(`IDX file '${file}' cannot be read: ${(e as Error).message}`);
  }
  // By content, not by name: a browser may have inflated a .gz file and kept its name.
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new LthError(`IDX file '${file}' is gzip-compressed but cannot be inflated: ${(e as Error).message}`);
    }
  }
  return parseIdx(buf, file, expectRank);
}

export function parseIdx(buf: Uint8Array, name: string, expectRank?: number): IdxArray {
  if (buf.length < 4) throw new LthError(`IDX file '${name}' is truncated: ${buf.length} bytes, no header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf[0] !== 0 || buf[1] !== 0) {
    throw new LthError(`IDX file '${name}' has a wrong magic number 0x${view.getUint32(0).toString(16).padStart(8, '0')} (expected 0x000008NN)`);
  }
  if (buf[2] !== 0x08) {
    throw new LthError(`IDX file '${name}' has data type 0x${buf[2].toString(16)}; only unsigned bytes (0x08) are supported`);
  }
  const rank = buf[3];
  if (expectRank !== undefined && rank !== expectRank) {
    throw new LthError(`IDX file '${name}' has rank ${rank}, expected ${expectRank}`);
  }
  const headerBytes = 4 + 4 * rank;
  if (buf.length < headerBytes) throw new LthError(`IDX file '${name}' is truncated inside its header`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const actual = buf.length - headerBytes;
  if (actual < expected) {
    throw new LthError(`IDX file '${name}' is truncated: dimensions [${dims.join(', ')}] need ${expected} bytes of data, found ${actual}`);
  }
  if (actual > expected) {
    throw new LthError(`IDX file '${name}' has ${actual - expected} bytes after the data declared by dimensions [${dims.join(', ')}]`);
  }
  return { dims, data: buf.subarray(headerBytes, headerBytes + expected) };
}
