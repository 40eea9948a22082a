import fs from 'node:fs';
import { LthError } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';

export interface NamedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * safetensors: 8-byte little-endian header length N, an N-byte JSON header
 * ({name: {dtype, shape, data_offsets: [begin, end]}}, offsets relative to the data),
 * then the raw little-endian data. Readable by PyTorch (safetensors.torch.load_file)
 * and NumPy. Only F32 is written.
 */
export function encodeSafetensors(tensors: ReadonlyMap<string, NamedTensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8); // align the data to 8 bytes
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

export function decodeSafetensors(buf: Uint8Array, name = 'safetensors'): Map<string, NamedTensor> {
  if (buf.length < 8) throw new LthError(`${name}: truncated (${buf.length} bytes, no header length)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > buf.length) throw new LthError(`${name}: header length ${n} runs past the end of the file (${buf.length} bytes)`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(Buffer.from(buf.subarray(8, 8 + n)).toString('utf8'));
  } catch (e) {
    throw new LthError(`${name}: header is not valid JSON: ${(e as Error).message}`);
  }
  const dataStart = 8 + n;
  const out = new Map<string, NamedTensor>();
  for (const [key, info] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new LthError(`${name}: tensor '${key}' has dtype ${info.dtype}; only F32 is supported`);
    const [begin, end] = info.data_offsets;
    const count = info.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > buf.length) {
      throw new LthError(`${name}: tensor '${key}' has bad offsets [${begin}, ${end}] for shape [${info.shape.join(', ')}]`);
    }
    // Copy: the data may be unaligned for a Float32Array view.
    const bytes = buf.slice(dataStart + begin, dataStart + end);
    out.set(key, { shape: info.shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, count) });
  }
  return out;
}

export function saveSafetensors(file: string, tensors: ReadonlyMap<string, NamedTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

export function loadSafetensors(file: string): Map<string, NamedTensor> {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new LthError(err.code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file} (${err.code ?? err.message})`);
  }
  return decodeSafetensors(bytes, file);
}
