/**
 * Manifest-triggered prefetch. When the agent serves an image manifest, the client will ask for its config and layers
 * next — skopeo and podman one after another, so each layer's verified download would otherwise sit on the critical
 * path. The prefetcher starts those downloads at once (bounded concurrency, as the identity that asked for the
 * manifest, through the same BlobFetcher), so a later blob request finds the download done or under way. It serves
 * nothing itself: blobs still reach clients only from the store, after verification and an access check.
 */
import type { Logger } from '../../shared/logging.ts';
import { parseDigest, type Digest } from '../../shared/digest.ts';
import type { Identity, UpstreamRegistry } from '../upstream/types.ts';
import type { BlobFetcher } from './blob-fetcher.ts';

/** Manifest media types whose blobs are prefetched (indexes are not: the client picks a platform first). */
const IMAGE_MANIFEST_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);

export interface PrefetcherOptions {
  fetcher: BlobFetcher;
  logger: Logger;
  /** Downloads started by prefetch at the same time. */
  concurrency: number;
  /** Blobs waiting for a prefetch slot at most; more are dropped (the client's own request fetches them). */
  maxQueued: number;
  lifetime: AbortSignal;
  /** Called after a prefetch brought a blob in as `identity` (the origin authorized it). */
  onFetched: (registry: UpstreamRegistry, name: string, identity: Identity, digest: Digest) => void;
  onEvent?: (event: 'queued' | 'fetched' | 'failed' | 'dropped') => void;
}

interface Job {
  registry: UpstreamRegistry;
  name: string;
  identity: Identity;
  digest: Digest;
}

export class Prefetcher {
  readonly #o: PrefetcherOptions;
  readonly #queue: Job[] = [];
  readonly #queued = new Set<string>();
  #running = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(options: PrefetcherOptions) {
    this.#o = options;
  }

  /** Resolves when nothing is queued or running (tests; shutdown). */
  whenIdle(): Promise<void> {
    if (this.#running === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Blobs referenced by a manifest (config first, then layers in order), or [] for anything but an image manifest. */
  static blobsOf(body: Buffer, contentType: string): Digest[] {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return [];
    }
    if (typeof parsed !== 'object' || parsed === null) return [];
    const m = parsed as { mediaType?: unknown; config?: { digest?: unknown }; layers?: Array<{ digest?: unknown }> };
    const type = typeof m.mediaType === 'string' ? m.mediaType : contentType;
    if (!IMAGE_MANIFEST_TYPES.has(type.split(';')[0]?.trim() ?? '')) return [];
    const out: Digest[] = [];
    for (const candidate of [m.config?.digest, ...(Array.isArray(m.layers) ? m.layers.map((l) => l?.digest) : [])]) {
      if (typeof candidate !== 'string') continue;
      try {
        out.push(parseDigest(candidate));
      } catch {
        // A malformed digest in a manifest: the client will get a clear error when it asks for it.
      }
    }
    return out;
  }

  /** Queue the blobs of a manifest just served to `identity`. Returns how many were queued. */
  schedule(registry: UpstreamRegistry, name: string, identity: Identity, body: Buffer, contentType: string): number {
    let queued = 0;
    for (const digest of Prefetcher.blobsOf(body, contentType)) {
      if (this.#queued.has(digest.value) || this.#o.fetcher.isFetching(digest)) continue;
      if (this.#queue.length >= this.#o.maxQueued) {
        this.#o.onEvent?.('dropped');
        continue;
      }
      this.#queue.push({ registry, name, identity, digest });
      this.#queued.add(digest.value);
      this.#o.onEvent?.('queued');
      queued++;
    }
    this.#pump();
    return queued;
  }

  #pump(): void {
    while (this.#running < this.#o.concurrency && this.#queue.length > 0 && !this.#o.lifetime.aborted) {
      const job = this.#queue.shift() as Job;
      this.#running++;
      void this.#run(job).finally(() => {
        this.#running--;
        this.#queued.delete(job.digest.value);
        this.#pump();
        if (this.#running === 0 && this.#queue.length === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
      });
    }
  }

  async #run(job: Job): Promise<void> {
    try {
      const outcome = await this.#o.fetcher.ensure(job, this.#o.lifetime);
      if (outcome.owner && outcome.source === 'origin') {
        this.#o.onFetched(job.registry, job.name, job.identity, job.digest);
        this.#o.onEvent?.('fetched');
      }
    } catch (err) {
      // The client's own request will meet (and report) the same problem.
      this.#o.logger.debug({ err, digest: job.digest.value, name: job.name }, 'prefetch failed');
      this.#o.onEvent?.('failed');
    }
  }
}
