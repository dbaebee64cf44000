/**
 * Bitfield: which pieces a peer has. Bit i is piece i, most significant bit first in each byte (BitTorrent order),
 * so `toBytes()` is the wire form. Keeps a running count so "complete?" and "how many left?" are O(1).
 */
export class Bitfield {
  readonly size: number;
  readonly #bytes: Uint8Array;
  #count = 0;

  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bitfield size must be a non-negative integer, got ${size}`);
    this.size = size;
    this.#bytes = new Uint8Array(Math.ceil(size / 8));
  }

  static full(size: number): Bitfield {
    const b = new Bitfield(size);
    for (let i = 0; i < size; i++) b.set(i);
    return b;
  }

  static of(size: number, pieces: Iterable<number>): Bitfield {
    const b = new Bitfield(size);
    for (const p of pieces) b.set(p);
    return b;
  }

  /**
   * Parse the wire form. Throws RangeError on a wrong length or set spare bits (a peer that sends either is broken;
   * the shell closes it). The shell maps this to its protocol error code.
   */
  static fromBytes(bytes: Uint8Array, size: number): Bitfield {
    const b = new Bitfield(size);
    if (bytes.byteLength !== b.#bytes.byteLength) {
      throw new RangeError(`bitfield of ${bytes.byteLength} bytes for ${size} pieces`);
    }
    const spare = b.#bytes.byteLength * 8 - size;
    const last = bytes[bytes.byteLength - 1];
    if (spare > 0 && last !== undefined && (last & ((1 << spare) - 1)) !== 0) {
      throw new RangeError('bitfield has spare bits set');
    }
    b.#bytes.set(bytes);
    for (const byte of bytes) b.#count += popcount8(byte);
    return b;
  }

  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  get count(): number {
    return this.#count;
  }

  get complete(): boolean {
    return this.#count === this.size;
  }

  has(i: number): boolean {
    if (i < 0 || i >= this.size) return false;
    return ((this.#bytes[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0;
  }

  /** Set bit i; returns true when it was not set before. */
  set(i: number): boolean {
    this.#check(i);
    if (this.has(i)) return false;
    this.#bytes[i >> 3] = (this.#bytes[i >> 3] ?? 0) | (0x80 >> (i & 7));
    this.#count++;
    return true;
  }

  /** Clear bit i; returns true when it was set before. */
  clear(i: number): boolean {
    this.#check(i);
    if (!this.has(i)) return false;
    this.#bytes[i >> 3] = (this.#bytes[i >> 3] ?? 0) & ~(0x80 >> (i & 7));
    this.#count--;
    return true;
  }

  clone(): Bitfield {
    return Bitfield.fromBytes(this.#bytes, this.size);
  }

  /** Indices of set bits, ascending. */
  *pieces(): Generator<number> {
    for (let i = 0; i < this.size; i++) if (this.has(i)) yield i;
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new RangeError(`piece ${i} out of range 0..${this.size - 1}`);
  }
}

function popcount8(byte: number): number {
  let n = 0;
  for (let b = byte; b !== 0; b &= b - 1) n++;
  return n;
}
