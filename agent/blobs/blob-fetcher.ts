/**
 * Brings a blob into the store, verified, exactly once however many requests ask for it at the same time.
 *
 * The fetch belongs to the fetcher, not to the request that started it: a client that disconnects only stops waiting;
 * the download goes on (another client, or containerd's retry, will want it) until it completes, fails, or the agent
 * shuts down. A failed transfer is resumed from the bytes already written (Range) up to `attempts` times. Bytes are
 * hashed as they are written; the blob is published only if its sha256 matches (BlobWriter.commit), so nothing
 * unverified is ever served.
 */
import type { Logger } from '../../shared/logging.ts';
import { raceAbort } from '../../shared/abort.ts';
import type { Digest } from '../../shared/digest.ts';
import { isLayerswarmError, LayerswarmError, toLayerswarmError, type ErrorCode } from '../../shared/errors.ts';
import type { BlobInfo, BlobStore, BlobWriter } from '../store/blob-store.ts';
import type { BlobRequest, BlobSource } from '../source/blob-source.ts';

/** Errors a retry cannot fix. */
const FINAL: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'UNAUTHORIZED', 'DENIED', 'BLOB_UNKNOWN', 'NAME_UNKNOWN', 'ABORTED', 'STORE_FULL', 'STORE_IO',
  'DIGEST_MISMATCH', 'SIZE_MISMATCH', 'TOOMANYREQUESTS', 'REGISTRY_NOT_ALLOWED',
]);

export interface FetchOutcome {
  info: BlobInfo;
  /** 'cache' when the blob was already stored, else the source that delivered it. */
  source: string;
  /** True when this call started the download, i.e. the source was asked with this request's identity. */
  owner: boolean;
}

export interface BlobFetcherOptions {
  store: BlobStore;
  source: BlobSource;
  logger: Logger;
  attempts: number;
  /** Aborted when the agent shuts down. */
  lifetime: AbortSignal;
  onFetched?: (event: { source: string; bytes: number; durationMs: number; ok: boolean; code?: string }) => void;
}

export class BlobFetcher {
  readonly #options: BlobFetcherOptions;
  readonly #inflight = new Map<string, Promise<FetchOutcome>>();

  constructor(options: BlobFetcherOptions) {
    this.#options = options;
  }

  /** Name of the source downloads come from ('origin', or the swarm's). */
  get sourceName(): string {
    return this.#options.source.name;
  }

  /** True while a download of `digest` is in progress. */
  isFetching(digest: Digest): boolean {
    return this.#inflight.has(digest.value);
  }

  /** Number of downloads in progress (for metrics and tests). */
  get inflight(): number {
    return this.#inflight.size;
  }

  /** Resolve once the blob is in the store. The caller's signal only stops this caller from waiting. */
  async ensure(request: BlobRequest, signal: AbortSignal): Promise<FetchOutcome> {
    const cached = await this.#options.store.stat(request.digest);
    if (cached) return { info: cached, source: 'cache', owner: false };
    let shared = this.#inflight.get(request.digest.value);
    const owner = shared === undefined;
    if (!shared) {
      shared = this.#fetch(request).finally(() => this.#inflight.delete(request.digest.value));
      this.#inflight.set(request.digest.value, shared);
    }
    return { ...(await raceAbort(shared, signal, 'waiting for blob download')), owner };
  }

  async #fetch(request: BlobRequest): Promise<FetchOutcome> {
    const { store, source, attempts, lifetime } = this.#options;
    const log = this.#options.logger.child({ digest: request.digest.value, registry: request.registry.host, name: request.name });
    const started = performance.now();
    let writer: BlobWriter | undefined;
    let size: number | undefined;
    try {
      for (let attempt = 1; ; attempt++) {
        const offset = writer?.bytesWritten ?? 0;
        try {
          const opened = await source.open(request, offset, lifetime);
          if (opened.size !== undefined) {
            if (size !== undefined && opened.size !== size) {
              opened.body.destroy?.();
              throw new LayerswarmError('SIZE_MISMATCH', `${source.name} changed the blob size from ${size} to ${opened.size} between attempts`);
            }
            size = opened.size;
          }
          writer ??= await store.createWriter(request.digest, size !== undefined ? { expectedSize: size } : {});
          await writer.append(opened.body, lifetime);
          break;
        } catch (err) {
          const e = toLayerswarmError(err, 'UPSTREAM_ERROR');
          if (FINAL.has(e.code) || attempt >= attempts || lifetime.aborted) throw e;
          log.warn({ err: e, attempt, offset: writer?.bytesWritten ?? 0 }, 'blob download interrupted; resuming');
        }
      }
      const info = await writer.commit(lifetime);
      const durationMs = performance.now() - started;
      log.info({ size: info.size, source: source.name, durationMs: Math.round(durationMs) }, 'blob fetched and verified');
      this.#options.onFetched?.({ source: source.name, bytes: info.size, durationMs, ok: true });
      this.#settled(request, info, log);
      return { info, source: source.name, owner: true };
    } catch (err) {
      await writer?.abort().catch((abortErr: unknown) => log.error({ err: abortErr }, 'could not discard partial blob'));
      const e = toLayerswarmError(err, 'UPSTREAM_ERROR');
      log.warn({ err: e, code: e.code }, 'blob fetch failed; nothing cached');
      this.#options.onFetched?.({ source: source.name, bytes: 0, durationMs: performance.now() - started, ok: false, code: e.code });
      this.#settled(request, undefined, log);
      throw isLayerswarmError(e, 'DIGEST_MISMATCH')
        ? new LayerswarmError('DIGEST_MISMATCH', `${source.name} sent bytes that do not match ${request.digest.value}; not cached`, { cause: e })
        : e;
    }
  }

  /** Tell the source the download ended (post-commit hook); a throwing hook never fails the fetch. */
  #settled(request: BlobRequest, info: BlobInfo | undefined, log: Logger): void {
    try {
      this.#options.source.settled?.(request, info);
    } catch (err) {
      log.error({ err }, 'blob source settled hook threw');
    }
  }
}
