/**
 * Byte-level framing: a frame is a 4-byte big-endian length N, then N bytes of an encoded `Message` (the header).
 * A Piece header is followed by `Piece.length` raw payload bytes that belong to no frame (see wire.proto).
 *
 * `ByteQueue` reassembles an arbitrarily chunked byte stream without copying: it keeps the received chunks and
 * hands out slices of them. Only a header split across chunks is concatenated (bounded by MAX_HEADER_BYTES);
 * payload bytes are never copied and never allocated ahead of their arrival.
 */

/** Length prefix size in bytes. */
export const FRAME_PREFIX_BYTES = 4;

/** Hard cap on an encoded header (the frame length N): 64 KiB, ample for a 65 536-piece (8 KiB) bitfield. */
export const MAX_HEADER_BYTES = 64 * 1024;

/** One frame: the 4-byte length prefix and `body` in a single Buffer (one allocation, one write). */
export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + body.byteLength);
  out.writeUInt32BE(body.byteLength, 0);
  out.set(body, FRAME_PREFIX_BYTES);
  return out;
}

/** A FIFO of received chunks, read by slicing. */
export class ByteQueue {
  readonly #chunks: Buffer[] = [];
  /** Index of the front chunk in #chunks (consumed ones are dropped in batches: no O(n) shift per chunk). */
  #head = 0;
  /** Read offset into the front chunk. */
  #offset = 0;
  #length = 0;

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.byteLength;
  }

  /** The big-endian uint32 at the front, without consuming it; undefined when fewer than 4 bytes are held. */
  peekUInt32BE(): number | undefined {
    if (this.#length < 4) return undefined;
    const first = this.#chunks[this.#head] as Buffer;
    if (first.byteLength - this.#offset >= 4) return first.readUInt32BE(this.#offset);
    let value = 0;
    let i = this.#head;
    let at = this.#offset;
    for (let n = 0; n < 4; n++) {
      let chunk = this.#chunks[i] as Buffer;
      while (at >= chunk.byteLength) {
        chunk = this.#chunks[++i] as Buffer;
        at = 0;
      }
      value = value * 256 + (chunk[at++] as number);
    }
    return value;
  }

  /** Drop `n` bytes from the front (n ≤ length). */
  skip(n: number): void {
    this.take(n, () => undefined);
  }

  /**
   * Consume `n` bytes (n ≤ length) from the front as slices of the received chunks, in order, calling `each` with
   * every slice; no copying.
   */
  take(n: number, each: (slice: Buffer) => void): void {
    if (n > this.#length) throw new RangeError(`take(${n}) with ${this.#length} bytes held`);
    this.#length -= n;
    while (n > 0) {
      const chunk = this.#chunks[this.#head] as Buffer;
      const available = chunk.byteLength - this.#offset;
      if (n < available) {
        each(chunk.subarray(this.#offset, this.#offset + n));
        this.#offset += n;
        return;
      }
      each(this.#offset === 0 ? chunk : chunk.subarray(this.#offset));
      this.#head++;
      this.#offset = 0;
      n -= available;
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Consume `n` bytes as one Buffer: a slice when they lie in one chunk, else a copy (callers bound `n`). */
  takeContiguous(n: number): Buffer {
    const slices: Buffer[] = [];
    this.take(n, (slice) => slices.push(slice));
    return slices.length === 1 ? (slices[0] as Buffer) : Buffer.concat(slices, n);
  }
}
