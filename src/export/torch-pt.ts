import { crc32 } from 'node:zlib';

/**
 * A state dict in PyTorch's own file format (what torch.save writes and torch.load reads,
 * weights_only included): a zip archive, stored uncompressed, of a pickle (protocol 2) of
 * an OrderedDict name -> tensor, each tensor rebuilt by torch._utils._rebuild_tensor_v2
 * from a storage kept as its own record data/<i>, plus the 'version' and 'byteorder'
 * records. Written from the format, without PyTorch. Storages are float32, but a batch
 * norm's num_batches_tracked, which PyTorch keeps as int64 (a count), is written so.
 */
export function torchStateDict(tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, archive = 'archive'): Uint8Array {
  const records: Array<[string, Uint8Array]> = [['data.pkl', statePickle(tensors)], ['byteorder', ascii('little')]];
  [...tensors].forEach(([name, t], i) => {
    const data = isCount(name) ? BigInt64Array.from(t.data, (v) => BigInt(Math.round(v))) : t.data;
    records.push([`data/${i}`, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
  });
  records.push(['version', ascii('3\n')]);
  return zipStored(records.map(([n, b]) => [`${archive}/${n}`, b]));
}

const ascii = (s: string) => new TextEncoder().encode(s);

/** A tensor PyTorch keeps as int64: a batch norm's count of batches seen. */
const isCount = (name: string) => name === 'num_batches_tracked' || name.endsWith('.num_batches_tracked');

/** Pickle opcodes (protocol 2) the state dict needs. */
const OP = {
  PROTO: 0x80, GLOBAL: 0x63, EMPTY_TUPLE: 0x29, REDUCE: 0x52, MARK: 0x28, TUPLE: 0x74, BINUNICODE: 0x58,
  BININT: 0x4a, NEWFALSE: 0x89, BINPERSID: 0x51, SETITEMS: 0x75, STOP: 0x2e,
} as const;

class Pickler {
  private readonly bytes: number[] = [];
  op(code: number): this { this.bytes.push(code); return this; }
  raw(b: Uint8Array): this { for (const x of b) this.bytes.push(x); return this; }
  global(module: string, name: string): this { return this.op(OP.GLOBAL).raw(ascii(`${module}\n${name}\n`)); }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.op(OP.BINUNICODE).u32(b.length).raw(b);
  }
  int(v: number): this {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new Error(`pickle: ${v} does not fit a 32-bit int`);
    return this.op(OP.BININT).u32(v >>> 0);
  }
  tuple(items: (p: Pickler) => void): this { this.op(OP.MARK); items(this); return this.op(OP.TUPLE); }
  orderedDict(): this { return this.global('collections', 'OrderedDict').op(OP.EMPTY_TUPLE).op(OP.REDUCE); }
  encode(): Uint8Array { return Uint8Array.from(this.bytes); }
  private u32(v: number): this { this.bytes.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff); return this; }
}

function statePickle(tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>): Uint8Array {
  const p = new Pickler().op(OP.PROTO).op(2).orderedDict().op(OP.MARK);
  [...tensors].forEach(([name, t], i) => {
    const stride = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
    p.str(name).global('torch._utils', '_rebuild_tensor_v2').tuple((q) => {
      // The storage, by persistent id: ('storage', torch.FloatStorage, key, location, numel).
      q.tuple((s) => s.str('storage').global('torch', isCount(name) ? 'LongStorage' : 'FloatStorage').str(String(i)).str('cpu').int(t.data.length)).op(OP.BINPERSID);
      q.int(0).tuple((s) => t.shape.forEach((d) => s.int(d))).tuple((s) => stride.forEach((d) => s.int(d))).op(OP.NEWFALSE).orderedDict();
    }).op(OP.REDUCE);
  });
  return p.op(OP.SETITEMS).op(OP.STOP).encode();
}

/**
 * A zip archive of `records`, stored (no compression), each record's data aligned to 64
 * bytes as PyTorch's writer aligns them (its reader can then map them).
 */
function zipStored(records: Array<[string, Uint8Array]>): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of records) {
    const nameBytes = ascii(name);
    const crc = crc32(data);
    const headerEnd = offset + 30 + nameBytes.length + 4;
    const pad = (64 - (headerEnd % 64)) % 64;
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, nameBytes.length, true);
    local.setUint16(28, 4 + pad, true);
    // Extra field: an unregistered id with `pad` bytes, only to align the data.
    const extra = new DataView(new ArrayBuffer(4 + pad));
    extra.setUint16(0, 0x4654, true);
    extra.setUint16(2, pad, true);
    chunks.push(new Uint8Array(local.buffer), nameBytes, new Uint8Array(extra.buffer), data);
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 20, true);
    c.setUint16(6, 20, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, data.length, true);
    c.setUint32(24, data.length, true);
    c.setUint16(28, nameBytes.length, true);
    c.setUint32(42, offset, true);
    central.push(new Uint8Array(c.buffer), nameBytes);
    offset += 30 + nameBytes.length + 4 + pad + data.length;
  }
  const centralSize = central.reduce((a, b) => a + b.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, records.length, true);
  end.setUint16(10, records.length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  const all = [...chunks, ...central, new Uint8Array(end.buffer)];
  const out = new Uint8Array(all.reduce((a, b) => a + b.length, 0));
  let at = 0;
  for (const b of all) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
