/**
 * Preheat: produce metainfo for pushed blobs before any node asks. A queue with bounded concurrency and a bounded
 * length, deduplicated by (kind, digest) while a job waits or runs. A manifest job reads the manifest from its
 * registry (checking its digest) and queues its config and layers; a blob job skips blobs that are not swarmed
 * (size ≤ originDirectMaxBytes: agents fetch those from the origin) and blobs already produced, and produces the rest
 * through the Producer (which joins a production already in flight). Failures are logged and counted, never retried
 * here: a node that asks later gets the blob produced on demand.
 */
import { createHash } from 'node:crypto';
import { parseDigest } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import { shouldSwarm, type PiecePolicy } from '../../shared/swarm/metainfo.ts';
import { blobsOfManifest, type PushTarget } from './notifications.ts';
import type { Producer } from './producer.ts';

export type PreheatEvent = 'queued' | 'produced' | 'small' | 'known' | 'manifest' | 'failed' | 'dropped';

export interface PreheatJob extends PushTarget {
  /** Registry host; the origin when absent. */
  readonly registry?: string | undefined;
}

export interface PreheaterOptions {
  readonly producer: Producer;
  /** GET a manifest by digest from its registry (bounded, authenticated). */
  readonly fetchManifest: (registry: string | undefined, repository: string, digest: string, signal: AbortSignal) => Promise<Buffer>;
  readonly policy: PiecePolicy;
  readonly concurrency: number;
  readonly maxQueued: number;
  readonly jobTimeoutMs: number;
  readonly logger: Logger;
  readonly lifetime: AbortSignal;
  readonly onEvent?: (event: PreheatEvent) => void;
}

export class Preheater {
  readonly #o: PreheaterOptions;
  readonly #queue: PreheatJob[] = [];
  readonly #keys = new Set<string>();
  #running = 0;
  #idle: Array<() => void> = [];

  constructor(options: PreheaterOptions) {
    this.#o = options;
  }

  /** Jobs waiting or running. */
  get pending(): number {
    return this.#keys.size;
  }

  /** Resolves when nothing waits or runs. */
  whenIdle(): Promise<void> {
    if (this.#keys.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Queue a job unless the same one waits or runs. Returns false when it was a duplicate or dropped. */
  enqueue(job: PreheatJob): boolean {
    const key = `${job.kind}:${job.digest}`;
    if (this.#keys.has(key) || this.#o.lifetime.aborted) return false;
    if (this.#queue.length >= this.#o.maxQueued) {
      this.#emit('dropped');
      this.#o.logger.warn({ digest: job.digest, kind: job.kind }, 'preheat queue full; job dropped');
      return false;
    }
    this.#keys.add(key);
    this.#queue.push(job);
    this.#emit('queued');
    this.#pump();
    return true;
  }

  #pump(): void {
    while (this.#running < this.#o.concurrency && this.#queue.length > 0 && !this.#o.lifetime.aborted) {
      const job = this.#queue.shift() as PreheatJob;
      this.#running++;
      void this.#run(job).finally(() => {
        this.#running--;
        this.#keys.delete(`${job.kind}:${job.digest}`);
        this.#pump();
        if (this.#keys.size === 0) for (const wake of this.#idle.splice(0)) wake();
      });
    }
    if (this.#o.lifetime.aborted && this.#queue.length > 0) {
      for (const job of this.#queue.splice(0)) this.#keys.delete(`${job.kind}:${job.digest}`);
      if (this.#keys.size === 0) for (const wake of this.#idle.splice(0)) wake();
    }
  }

  async #run(job: PreheatJob): Promise<void> {
    const log = this.#o.logger.child({ digest: job.digest, repository: job.repository, kind: job.kind });
    const signal = AbortSignal.any([this.#o.lifetime, AbortSignal.timeout(this.#o.jobTimeoutMs)]);
    try {
      if (job.kind === 'manifest') {
        const bytes = await this.#o.fetchManifest(job.registry, job.repository, job.digest, signal);
        const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
        if (actual !== job.digest) throw new LayerswarmError('DIGEST_MISMATCH', `manifest ${job.digest} arrived with digest ${actual}`);
        const blobs = blobsOfManifest(bytes);
        this.#emit('manifest');
        log.debug({ blobs: blobs.length }, 'preheating the blobs of a pushed manifest');
        for (const b of blobs) {
          this.enqueue({ kind: 'blob', digest: b.digest, repository: job.repository, registry: job.registry, mediaType: b.mediaType ?? 'application/octet-stream', ...(b.size !== undefined ? { size: b.size } : {}) });
        }
        return;
      }
      if (job.size !== undefined && !shouldSwarm(job.size, this.#o.policy)) {
        this.#emit('small');
        return;
      }
      if (await this.#o.producer.isReady(parseDigest(job.digest))) {
        this.#emit('known');
        return;
      }
      await this.#o.producer.produce({ digest: job.digest, repository: job.repository, registry: job.registry }, signal);
      this.#emit('produced');
    } catch (err) {
      log.warn({ err }, 'preheat failed (the blob is produced on demand when asked)');
      this.#emit('failed');
    }
  }

  #emit(event: PreheatEvent): void {
    try {
      this.#o.onEvent?.(event);
    } catch {
      // metrics only
    }
  }
}
