/**
 * MemoryBlobStore: the BlobStore contract kept in memory, for fast unit tests of the components around the store.
 * Same semantics as FsBlobStore (verification, invisibility until commit, LRU under a cap, pins, deferred deletes,
 * reservations), minus durability. A writer copies every chunk (sources may reuse their buffers).
 */
import { Readable } from 'node:stream';
import type { Digest } from '../../shared/digest.ts';
import { throwIfAborted } from '../../shared/abort.ts';
import { LayerswarmError, toLayerswarmError } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/logging.ts';
import type { BlobInfo, BlobReader, BlobStore, BlobWriter, ByteRange, StoreUsage } from './blob-store.ts';
import { makeReader, sendChunks } from './send.ts';
import { LruIndex } from './lru.ts';
import { VerifyingWriter, storeFullError, type WriterHost } from './writer.ts';

export interface MemoryBlobStoreOptions {
  readonly capBytes: number;
  readonly logger?: Logger;
  /** Clock for LRU bookkeeping (default Date.now). */
  readonly now?: () => number;
  /** Called after every change of usage (commit, eviction, delete), e.g. to update a cache-size gauge. */
  readonly onChange?: (usage: StoreUsage) => void;
}

const READ_CHUNK = 1024 * 1024;

export class MemoryBlobStore implements BlobStore {
  readonly #index: LruIndex;
  readonly #blobs = new Map<string, { info: BlobInfo; data: Buffer }>();
  readonly #writers = new Set<VerifyingWriter>();
  readonly #log: Logger;
  readonly #onChange: ((usage: StoreUsage) => void) | undefined;
  readonly #host: WriterHost;
  #closed = false;

  constructor(options: MemoryBlobStoreOptions) {
    this.#index = new LruIndex({ capBytes: options.capBytes, now: options.now ?? Date.now });
    this.#log = options.logger ?? silentLogger();
    this.#onChange = options.onChange;
    this.#host = {
      log: this.#log,
      reserve: (digest, total, more) => this.#reserve(digest, total, more),
      release: (bytes) => this.#index.release(bytes),
      done: (writer) => this.#writers.delete(writer),
    };
  }

  async init(signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal, 'memory store init');
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    return this.#index.get(digest.hex) ? this.#blobs.get(digest.hex)?.info : undefined;
  }

  async open(digest: Digest, range?: ByteRange): Promise<BlobReader | undefined> {
    this.#checkOpen();
    const blob = this.#blobs.get(digest.hex);
    if (!blob || !this.#index.pin(digest.hex)) return undefined;
    const start = range?.start ?? 0;
    const end = range ? range.end + 1 : blob.data.length;
    if (start < 0 || end > blob.data.length || start > end) {
      this.#unpin(digest.hex);
      throw new LayerswarmError('RANGE_NOT_SATISFIABLE', `range ${start}-${end - 1} is outside blob ${digest.value} (${blob.data.length} bytes)`);
    }
    const data = blob.data;
    const chunks = function* (): Generator<Buffer> {
      for (let at = start; at < end; at += READ_CHUNK) yield data.subarray(at, Math.min(end, at + READ_CHUNK));
    };
    return makeReader(
      end - start,
      () => Readable.from(chunks(), { objectMode: false, highWaterMark: READ_CHUNK }),
      (dest, onProgress) => sendChunks(chunks(), dest, onProgress),
      () => this.#unpin(digest.hex),
    );
  }

  async createWriter(digest: Digest, options: { expectedSize?: number } = {}): Promise<BlobWriter> {
    this.#checkOpen();
    const expected = options.expectedSize;
    if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) {
      throw new LayerswarmError('SIZE_INVALID', `invalid expected size ${expected} for blob ${digest.value}`);
    }
    if (expected) this.#reserve(digest, expected, expected);
    let chunks: Buffer[] = [];
    const writer = new VerifyingWriter(digest, expected, expected ?? 0, {
      write: (chunk) => void chunks.push(Buffer.from(chunk)), // a copy: sources may reuse their buffers
      publish: (size, reserved) => this.#publish(digest, Buffer.concat(chunks, size), reserved),
      discard: () => void (chunks = []),
      error: (err) => toLayerswarmError(err, 'STORE_IO'),
    }, this.#host);
    this.#writers.add(writer);
    return writer;
  }

  async delete(digest: Digest): Promise<boolean> {
    const result = this.#index.delete(digest.hex);
    if (result === 'removed') {
      this.#blobs.delete(digest.hex);
      this.#changed();
    }
    return result !== 'absent';
  }

  usage(): StoreUsage {
    return { bytes: this.#index.bytes, count: this.#index.count, capBytes: this.#index.capBytes };
  }

  /** Bytes promised to writers in progress (not part of usage().bytes). */
  get reservedBytes(): number {
    return this.#index.reserved;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#writers].map((w) => w.abort()));
  }

  #checkOpen(): void {
    if (this.#closed) throw new LayerswarmError('INTERNAL', 'the blob store is closed');
  }

  #reserve(digest: Digest, total: number, more: number): void {
    const room = this.#index.tryReserve(total, more);
    if (!room.fits) throw storeFullError(digest.value, total, this.#index);
    for (const v of room.victims) {
      this.#blobs.delete(v.key);
      this.#log.info({ digest: `sha256:${v.key}`, size: v.size, lastUse: v.lastUse }, 'evicted blob (least recently used)');
    }
    if (room.victims.length > 0) this.#changed();
  }

  #publish(digest: Digest, data: Buffer, reserved: number): BlobInfo {
    this.#index.release(reserved);
    if (this.#index.add(digest.hex, data.length) || !this.#blobs.has(digest.hex)) {
      this.#blobs.set(digest.hex, { info: { digest, size: data.length }, data });
    }
    this.#changed();
    return { digest, size: data.length };
  }

  #unpin(hex: string): void {
    if (this.#index.unpin(hex)) {
      this.#blobs.delete(hex);
      this.#changed();
    }
  }

  #changed(): void {
    if (!this.#onChange) return;
    try {
      this.#onChange(this.usage());
    } catch (err) {
      this.#log.warn({ err }, 'store onChange hook threw');
    }
  }
}
