/**
 * The blob store: content-addressed, verified, atomic. The interface every store implementation passes
 * (test/unit/store-conformance.ts runs one suite against each).
 *
 * Contract:
 *  - A blob becomes visible (stat/open) only after createWriter(...).commit() verified its sha256 against the digest
 *    and (on disk) fsynced and renamed it. No partial blob is ever visible, also not after a crash or restart.
 *  - open() pins the blob until the returned stream closes (ends, errors or is destroyed); a pinned blob is never
 *    evicted or deleted from under its reader (delete of a pinned blob is deferred until the last reader closes).
 *  - When a commit takes the store over its size cap, least-recently-used unpinned blobs are evicted (open() counts as
 *    a use). A blob larger than the whole cap is refused with STORE_FULL.
 *  - Errors are LayerswarmError: DIGEST_MISMATCH / SIZE_MISMATCH at commit (the temp file is removed, nothing is
 *    cached), STORE_FULL (disk full, ENOSPC, or over cap with nothing evictable), STORE_IO (any other I/O failure).
 */
import type { Readable, Writable } from 'node:stream';
import type { Digest } from '../../shared/digest.ts';

export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

/** Inclusive byte range, already validated against the blob's size by the caller. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * An open blob (or range). Use exactly one of `stream` and `sendTo`; the pin is released when the stream closes or
 * sendTo settles. A reader that is never used keeps its blob pinned: use it or `stream.destroy()` it.
 */
export interface BlobReader {
  readonly size: number;
  /** The bytes as a stream (created on first access). Closing it, in any way, releases the pin. */
  readonly stream: Readable;
  /**
   * Write the bytes to `destination` (not ending it), each write waiting for the previous one to be flushed. The disk
   * store reads into two reused buffers: no allocation per chunk, which keeps serving at disk/socket speed whatever
   * the allocator's state. Resolves with the bytes written; rejects when the destination fails or is closed.
   */
  sendTo(destination: Writable, onProgress?: (bytes: number) => void): Promise<number>;
}

export interface BlobWriter {
  /** Bytes appended so far (a resumed fetch continues from here). */
  readonly bytesWritten: number;
  /**
   * Consume `source` to its end, hashing and writing every chunk (with backpressure). May be called again after a
   * source fails, to continue from bytesWritten. Rejects with ABORTED when the signal aborts.
   */
  append(source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number>;
  /** Verify digest (and expectedSize if given), make durable, publish. Afterwards the writer is finished. */
  commit(signal?: AbortSignal): Promise<BlobInfo>;
  /** Discard the temp data. Safe to call at any time, also after commit (then a no-op). */
  abort(): Promise<void>;
}

export interface StoreUsage {
  readonly bytes: number;
  readonly count: number;
  readonly capBytes: number;
}

export interface BlobStore {
  /** Load the index of existing blobs (disk: scan, remove stale temp files). Call once before use. */
  init(signal?: AbortSignal): Promise<void>;
  stat(digest: Digest): Promise<BlobInfo | undefined>;
  /** Open for reading (the whole blob, or `range`). Undefined when absent. Pins until the stream closes. */
  open(digest: Digest, range?: ByteRange): Promise<BlobReader | undefined>;
  createWriter(digest: Digest, options?: { expectedSize?: number }): Promise<BlobWriter>;
  /** Remove a blob. Returns false when absent. Deferred while pinned. */
  delete(digest: Digest): Promise<boolean>;
  usage(): StoreUsage;
  close(): Promise<void>;
}
