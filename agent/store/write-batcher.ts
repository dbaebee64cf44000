/**
 * Coalesces a writer's chunks (network reads are often 16–64 KiB) into 1 MiB writes with one write in flight while
 * the next batch fills (double buffering). A write per small chunk, each awaited before pulling the next, made a
 * download wait on a thread-pool round trip every 64 KiB (~250 MB/s); batched, the disk keeps up with the network.
 * Chunks are copied into the batch buffers, so sources may reuse theirs; a buffer is refilled only after its write
 * settled.
 */
import type { WriterSink } from './writer.ts';

export const WRITE_BATCH_BYTES = 1024 * 1024;

export class WriteBatcher {
  readonly #sink: WriterSink;
  readonly #buffers: [Buffer, Buffer];
  #current = 0;
  #fill = 0;
  /** File position of the current batch's first byte. */
  #position: number;
  #pending: Promise<void> | undefined;

  constructor(sink: WriterSink, position: number, batchBytes = WRITE_BATCH_BYTES) {
    this.#sink = sink;
    this.#position = position;
    this.#buffers = [Buffer.allocUnsafe(batchBytes), Buffer.allocUnsafe(batchBytes)];
  }

  /** Copy `chunk` in; resolves once it is buffered (waiting for an earlier write when both buffers are busy). */
  async add(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const buffer = this.#buffer();
      const n = Math.min(chunk.byteLength - offset, buffer.length - this.#fill);
      buffer.set(chunk.subarray(offset, offset + n), this.#fill);
      this.#fill += n;
      offset += n;
      if (this.#fill === buffer.length) await this.#rotate();
    }
  }

  /** Write what is buffered and wait until every write settled. Rejects with the sink's failure, if any. */
  async flush(): Promise<void> {
    if (this.#fill > 0) await this.#rotate();
    const pending = this.#pending;
    this.#pending = undefined;
    await pending;
  }

  #buffer(): Buffer {
    return this.#current === 0 ? this.#buffers[0] : this.#buffers[1];
  }

  async #rotate(): Promise<void> {
    await this.#pending; // the other buffer's write: both buffers may now be reused
    const data = this.#buffer().subarray(0, this.#fill);
    const write = Promise.resolve(this.#sink.write(data, this.#position));
    write.catch(() => undefined); // observed by the next rotate() or flush()
    this.#pending = write;
    this.#position += this.#fill;
    this.#fill = 0;
    this.#current ^= 1;
  }
}
