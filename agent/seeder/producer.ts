/**
 * Metainfo production: the seeder's one job. produce({digest, repository, registry?}) brings the blob from its
 * registry into the verified store (the agent's BlobFetcher: one download per digest, resumed with Range, sha256
 * checked before anything is stored), computes the metainfo by streaming the stored blob (computeMetainfo checks the
 * digest once more, so a blob damaged on disk is caught), persists it, starts seeding it, and publishes it to the
 * tracker. One production per digest at a time: concurrent callers join it. A production belongs to the producer,
 * not to a caller: a caller's signal only stops that caller from waiting; the production is bounded by
 * productionTimeoutMs and the seeder's lifetime.
 *
 * The tracker decides nothing about size: any blob is produced when asked. Preheat skips small blobs itself.
 */
import { addAbortSignal } from 'node:stream';
import { raceAbort } from '../../shared/abort.ts';
import { parseDigest, parseName, type Digest } from '../../shared/digest.ts';
import { isAbortError, isLayerswarmError, LayerswarmError, toLayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { computeMetainfo, type Metainfo, type PiecePolicy } from '../../shared/swarm/metainfo.ts';
import type { BlobFetcher } from '../blobs/blob-fetcher.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { UpstreamRegistry } from '../upstream/types.ts';
import type { MetainfoStore } from './metainfo-store.ts';
import type { Seeding } from './seeding.ts';

export interface ProduceRequest {
  readonly digest: string;
  readonly repository: string;
  /** Registry host; the origin when absent. */
  readonly registry?: string | undefined;
}

export type ProductionResult = 'hit' | 'produced' | 'joined' | string;

export interface ProducerOptions {
  readonly store: BlobStore;
  readonly fetcher: BlobFetcher;
  readonly metainfo: MetainfoStore;
  readonly seeding: Seeding;
  /** Registry host (undefined: the origin) → registry. Throws REGISTRY_NOT_ALLOWED for hosts not configured. */
  readonly resolveRegistry: (host: string | undefined) => UpstreamRegistry;
  /** Where the store keeps a committed blob (handed to Seeding.seed). */
  readonly blobPath: (digest: Digest) => string;
  /** Publish to the tracker. Must not throw: failures are the publisher's to retry. */
  readonly publish: (metainfo: Metainfo) => Promise<void>;
  readonly policy: PiecePolicy;
  readonly logger: Logger;
  readonly lifetime: AbortSignal;
  readonly productionTimeoutMs: number;
  readonly now?: () => number;
  readonly onResult?: (result: ProductionResult) => void;
  /** A production finished: fetch (or store hit), hash, persist, seed and publish took `durationMs` (metrics). */
  readonly onProduced?: (durationMs: number) => void;
}

export class Producer {
  readonly #o: ProducerOptions;
  readonly #inflight = new Map<string, Promise<Metainfo>>();

  constructor(options: ProducerOptions) {
    this.#o = options;
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** Resolves when no production is running (shutdown: after the lifetime signal aborted them). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#inflight.values()]);
  }

  /** True when the metainfo is known and the blob stored: produce() would answer at once. */
  async isReady(digest: Digest): Promise<boolean> {
    return this.#o.metainfo.get(digest.value) !== undefined && (await this.#o.store.stat(digest)) !== undefined;
  }

  async produce(request: ProduceRequest, signal: AbortSignal): Promise<Metainfo> {
    const report = this.#o.onResult ?? ((): void => undefined);
    try {
      const digest = parseDigest(request.digest);
      const repository = parseName(request.repository);
      const registry = this.#o.resolveRegistry(request.registry);
      const known = this.#o.metainfo.get(digest.value);
      if (known && (await this.#o.store.stat(digest))) {
        report('hit');
        return known.metainfo;
      }
      let production = this.#inflight.get(digest.value);
      const joined = production !== undefined;
      if (!production) {
        production = this.#produce(digest, repository, registry);
        this.#inflight.set(digest.value, production);
        const forget = (): void => {
          this.#inflight.delete(digest.value);
        };
        production.then(forget, forget);
      }
      const meta = await raceAbort(production, signal, `metainfo of ${digest.value}`);
      report(joined ? 'joined' : 'produced');
      return meta;
    } catch (err) {
      const e = toLayerswarmError(err);
      report(e.code);
      throw e;
    }
  }

  async #produce(digest: Digest, repository: string, registry: UpstreamRegistry): Promise<Metainfo> {
    const { store, fetcher, policy } = this.#o;
    const log = this.#o.logger.child({ digest: digest.value, repository, registry: registry.host });
    const timeout = AbortSignal.timeout(this.#o.productionTimeoutMs);
    const signal = AbortSignal.any([this.#o.lifetime, timeout]);
    const started = performance.now();
    try {
      const outcome = await fetcher.ensure({ registry, name: repository, digest, identity: { kind: 'agent' } }, signal);
      const reader = await store.open(digest);
      if (!reader) throw new LayerswarmError('STORE_IO', `blob ${digest.value} left the store before it was hashed`);
      let metainfo: Metainfo;
      try {
        metainfo = await computeMetainfo(digest.value, addAbortSignal(signal, reader.stream), outcome.info.size, policy);
      } catch (err) {
        reader.stream.destroy();
        if (isLayerswarmError(err, 'DIGEST_MISMATCH') || isLayerswarmError(err, 'SIZE_MISMATCH')) {
          log.error({ err }, 'stored blob does not match its digest; removing it');
          await store.delete(digest).catch(() => undefined);
        }
        throw err;
      }
      await this.#o.metainfo.put({ metainfo, registry: registry.host, repository, producedAt: (this.#o.now ?? Date.now)() }, signal);
      try {
        await this.#o.seeding.seed(metainfo, this.#o.blobPath(digest));
      } catch (err) {
        // The metainfo stays valid: agents fall back to the origin for the bytes.
        log.error({ err }, 'seeding failed');
      }
      await this.#o.publish(metainfo);
      const ms = performance.now() - started;
      this.#o.onProduced?.(ms);
      log.info({ size: metainfo.size, pieces: metainfo.pieceHashes.length, pieceLength: metainfo.pieceLength, source: outcome.source, ms: Math.round(ms) }, 'metainfo produced');
      return metainfo;
    } catch (err) {
      let e = toLayerswarmError(err, 'INTERNAL');
      if (timeout.aborted && isAbortError(err)) {
        e = new LayerswarmError('UPSTREAM_TIMEOUT', `producing metainfo of ${digest.value} took longer than ${this.#o.productionTimeoutMs} ms`, { cause: err });
      } else if (this.#o.lifetime.aborted && isAbortError(err)) {
        e = new LayerswarmError('ABORTED', 'seeder shutting down', { cause: err, status: 503 });
      }
      log.warn({ err: e, code: e.code }, 'metainfo production failed');
      throw e;
    }
  }
}
