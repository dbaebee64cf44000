/**
 * The blob writer both stores use: VerifyingWriter hashes every chunk on its way to a WriterSink (a temp file, or
 * memory), keeps the writer's space reservation growing with its bytes, and at commit verifies size and digest before
 * the sink publishes. Keeping one implementation keeps the two stores' semantics identical:
 *  - append copies chunks into 1 MiB batches written with one write in flight (WriteBatcher: backpressure, and
 *    sources may reuse their buffers); everything in bytesWritten is written when append settles;
 *  - a source error or an aborted signal leaves the writer usable (append again from bytesWritten, or abort());
 *    a store error (STORE_FULL, STORE_IO) or a mismatch at commit discards the data and finishes the writer;
 *  - abort() during a commit waits for it: the blob ends up either published (abort is then a no-op) or discarded.
 */
import { raceAbort, throwIfAborted } from '../../shared/abort.ts';
import { sha256Hasher, type Digest } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { BlobInfo, BlobWriter } from './blob-store.ts';
import type { LruIndex } from './lru.ts';
import { WriteBatcher } from './write-batcher.ts';

/** Where a writer's bytes go. */
export interface WriterSink {
  /** Write `chunk` at `position` (all bytes before it are written). Must not keep `chunk` after settling. */
  write(chunk: Uint8Array, position: number): Promise<void> | void;
  /** Make the verified bytes durable and visible. Takes over `reserved` bytes of reservation when it succeeds. */
  publish(size: number, reserved: number): Promise<BlobInfo> | BlobInfo;
  /** Drop the data. Called at most once, never after a successful publish. */
  discard(): Promise<void> | void;
  /** Turn a write or publish failure into a LayerswarmError (LayerswarmErrors pass as they are). */
  error(err: unknown, what: string): LayerswarmError;
}

/** What a writer needs from its store. */
export interface WriterHost {
  readonly log: Logger;
  /** Reserve `more` bytes synchronously, or throw STORE_FULL; a promise settles when evicted blobs are freed. */
  reserve(digest: Digest, total: number, more: number): Promise<void> | void;
  release(bytes: number): void;
  /** The writer is finished (committed or discarded). */
  done(writer: VerifyingWriter): void;
}

export class VerifyingWriter implements BlobWriter {
  readonly #digest: Digest;
  readonly #expectedSize: number | undefined;
  readonly #sink: WriterSink;
  readonly #host: WriterHost;
  readonly #hash = sha256Hasher();
  #state: 'open' | 'busy' | 'committed' | 'closed' = 'open';
  #why = '';
  #bytes = 0;
  #reserved: number;
  #info: BlobInfo | undefined;
  #committing: Promise<BlobInfo> | undefined;
  #discarding: Promise<void> | undefined;

  /** `reserved`: bytes the store already reserved for this writer (its expected size, when known). */
  constructor(digest: Digest, expectedSize: number | undefined, reserved: number, sink: WriterSink, host: WriterHost) {
    this.#digest = digest;
    this.#expectedSize = expectedSize;
    this.#reserved = reserved;
    this.#sink = sink;
    this.#host = host;
  }

  get bytesWritten(): number {
    return this.#bytes;
  }

  async append(source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number> {
    this.#enter('append');
    let storeError: LayerswarmError | undefined;
    const batcher = new WriteBatcher(this.#sink, this.#bytes);
    const storeFailure = (err: unknown): LayerswarmError => {
      this.#throwIfClosed(); // abort() meanwhile: report that, not the sink's failure
      return (storeError = this.#sink.error(err, `cannot write blob ${this.#digest.value}`));
    };
    try {
      let failure: Error | undefined;
      try {
        await pumpChunks(source, signal, `writing blob ${this.#digest.value}`, async (chunk) => {
          try {
            this.#throwIfClosed();
            const total = this.#bytes + chunk.byteLength;
            if (total > this.#reserved) {
              const evicting = this.#host.reserve(this.#digest, total, total - this.#reserved);
              this.#reserved = total; // reserved already: an abort() while evicting releases it
              await evicting;
              this.#throwIfClosed();
            }
            await batcher.add(chunk);
            this.#hash.update(chunk);
            this.#bytes = total;
          } catch (err) {
            throw storeFailure(err);
          }
        });
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
      // Everything counted in bytesWritten is on disk before append settles, also when the source failed (a resumed
      // append continues from there). A store error already thrown is not overwritten by the flush's.
      if (!storeError) await batcher.flush().catch((err: unknown) => (failure = storeFailure(err)));
      if (failure !== undefined) throw failure;
    } catch (err) {
      if (storeError) await this.#discard(storeError.message);
      throw err;
    } finally {
      this.#leave();
    }
    return this.#bytes;
  }

  async commit(signal?: AbortSignal): Promise<BlobInfo> {
    if (this.#state === 'committed' && this.#info) return this.#info;
    this.#enter('commit');
    this.#committing = this.#commit(signal); // set before any await: abort() waits for it
    return this.#committing;
  }

  async abort(): Promise<void> {
    await this.#committing?.catch(() => undefined);
    if (this.#state !== 'committed') await this.#discard('aborted');
  }

  async #commit(signal: AbortSignal | undefined): Promise<BlobInfo> {
    try {
      throwIfAborted(signal, `committing blob ${this.#digest.value}`);
      const mismatch = verifyContent(this.#digest.value, this.#hash.copy().digest('hex'), this.#bytes, this.#expectedSize);
      if (mismatch) {
        this.#host.log.warn({ err: mismatch, digest: this.#digest.value }, 'refusing blob');
        await this.#discard(mismatch.message);
        throw mismatch;
      }
      const reserved = this.#reserved; // the sink's publish takes the reservation over
      this.#reserved = 0;
      try {
        this.#info = await this.#sink.publish(this.#bytes, reserved);
      } catch (err) {
        const e = this.#sink.error(err, `cannot commit blob ${this.#digest.value}`);
        this.#host.release(reserved);
        await this.#discard(e.message);
        throw e;
      }
      this.#state = 'committed';
      this.#host.done(this);
      return this.#info;
    } finally {
      this.#leave();
    }
  }

  #enter(what: string): void {
    if (this.#state === 'open') {
      this.#state = 'busy';
      return;
    }
    const why = this.#state === 'busy' ? 'busy with another append or commit' : this.#state === 'committed' ? 'committed' : this.#why;
    throw new LayerswarmError('INTERNAL', `cannot ${what}: blob writer for ${this.#digest.value} is ${why}`);
  }

  #leave(): void {
    if (this.#state === 'busy') this.#state = 'open';
  }

  #throwIfClosed(): void {
    if (this.#state === 'closed') throw new LayerswarmError('ABORTED', `blob writer for ${this.#digest.value} was aborted`);
  }

  /** Drop the data and the reservation. Idempotent; safe while an append is in flight. */
  #discard(why: string): Promise<void> {
    if (this.#state === 'closed') return this.#discarding ?? Promise.resolve();
    this.#state = 'closed';
    this.#why = `closed (${why})`;
    this.#host.release(this.#reserved);
    this.#reserved = 0;
    this.#discarding = (async () => {
      try {
        await this.#sink.discard();
      } catch (err) {
        this.#host.log.warn({ err, digest: this.#digest.value }, 'cannot discard blob writer data');
      }
      this.#host.done(this);
    })();
    return this.#discarding;
  }
}

/**
 * Pull `source` to its end, awaiting `onChunk` for every chunk before pulling the next (backpressure). When `signal`
 * aborts, also while the source is stalled, rejects with ABORTED and returns the iterator. Errors thrown by the source
 * or by onChunk propagate unchanged.
 */
export async function pumpChunks(
  source: AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
  what: string,
  onChunk: (chunk: Uint8Array) => Promise<void> | void,
): Promise<void> {
  throwIfAborted(signal, what);
  const it = source[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const next = await nextOrAbort(it, signal, what);
      if (next.done) {
        finished = true;
        return;
      }
      await onChunk(next.value);
      throwIfAborted(signal, what);
    }
  } catch (err) {
    // A source that listens to the same signal throws its own AbortError: report it as ABORTED too.
    if (signal?.aborted && !(err instanceof LayerswarmError)) {
      throw new LayerswarmError('ABORTED', `${what}: aborted`, { cause: signal.reason });
    }
    throw err;
  } finally {
    if (!finished) it.return?.()?.catch(() => undefined);
  }
}

/**
 * it.next(), or ABORTED as soon as `signal` aborts (also while the source is stalled). The abort listener lives for
 * one chunk only: racing every chunk against one long-lived promise would keep each chunk reachable from that
 * promise's reactions until the download ends (RSS growing by the blob's size).
 */
function nextOrAbort<T>(it: AsyncIterator<T>, signal: AbortSignal | undefined, what: string): Promise<IteratorResult<T>> {
  return signal ? raceAbort(it.next(), signal, what) : it.next();
}

/** The commit-time verification: size first (cheaper to explain), then digest. */
export function verifyContent(
  digestValue: string,
  actualHex: string,
  bytes: number,
  expectedSize: number | undefined,
): LayerswarmError | undefined {
  if (expectedSize !== undefined && bytes !== expectedSize) {
    return new LayerswarmError('SIZE_MISMATCH', `blob ${digestValue}: expected ${expectedSize} bytes, got ${bytes}`, {
      detail: { digest: digestValue, expectedSize, actualSize: bytes },
    });
  }
  const actual = `sha256:${actualHex}`;
  if (actual !== digestValue) {
    return new LayerswarmError('DIGEST_MISMATCH', `blob content does not match its digest: expected ${digestValue}, got ${actual} (${bytes} bytes)`, {
      detail: { digest: digestValue, actualDigest: actual, size: bytes },
    });
  }
  return undefined;
}

/** STORE_FULL for a blob that can never fit, or that cannot fit now because everything else is pinned or reserved. */
export function storeFullError(digestValue: string, needBytes: number, index: LruIndex): LayerswarmError {
  const why = needBytes > index.capBytes
    ? `is larger than the store cap (${needBytes} > ${index.capBytes} bytes)`
    : `does not fit: ${index.bytes} bytes cached (pinned ones cannot be evicted) + ${index.reserved} reserved by writers in progress, cap ${index.capBytes}`;
  return new LayerswarmError('STORE_FULL', `blob ${digestValue} (${needBytes} bytes) ${why}`, {
    detail: { digest: digestValue, size: needBytes, capBytes: index.capBytes },
  });
}
