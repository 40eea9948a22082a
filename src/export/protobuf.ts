/**
 * The few Protocol Buffers encodings an ONNX file needs, written by hand: varints,
 * length-delimited fields (strings, bytes, sub-messages) and 32-bit floats. A message is
 * built as a list of encoded fields; nothing is parsed.
 */
export class Message {
  private readonly parts: Uint8Array[] = [];

  /** An int32/int64/enum field (non-negative values: ONNX's dims, types and versions). */
  int(field: number, value: number): this {
    this.parts.push(varint((field << 3) | 0), varint(value));
    return this;
  }

  /** A repeated integer field, one entry per value (unpacked: every proto parser reads it). */
  ints(field: number, values: readonly number[]): this {
    for (const v of values) this.int(field, v);
    return this;
  }

  float(field: number, value: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.parts.push(varint((field << 3) | 5), b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  bytes(field: number, value: Uint8Array): this {
    this.parts.push(varint((field << 3) | 2), varint(value.length), value);
    return this;
  }

  message(field: number, value: Message): this {
    return this.bytes(field, value.encode());
  }

  encode(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Base-128 varint of a non-negative integer up to 2^53. */
function varint(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0) throw new Error(`protobuf: cannot encode ${value} as a varint`);
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Uint8Array.from(bytes);
}
