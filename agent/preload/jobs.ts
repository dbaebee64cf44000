/**
 * Preheat (seeder) and preload (agent) jobs: one job per requested image, one item per blob, held in a bounded table.
 * A job runs its items with a concurrency limit shared by every job of the table; items report their state (queued →
 * fetching → done | skipped | failed) and bytes. Finished jobs are kept for `ttlMs` so clients can read the outcome,
 * then dropped; when `maxJobs` are held, the oldest finished job makes room, and with every job still running a new
 * one is refused (429 TOOMANYREQUESTS).
 */
import { randomUUID } from 'node:crypto';
import { LayerswarmError, toLayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { ImageBlob, ResolvedImage } from './resolve-image.ts';

export type ItemState = 'queued' | 'fetching' | 'done' | 'skipped' | 'failed';

export interface JobItem {
  digest: string;
  kind: 'config' | 'layer';
  mediaType?: string;
  size?: number;
  platforms: string[];
  state: ItemState;
  /** What happened (e.g. "seeded", "cached", "origin", "swarm", "small: agents fetch it from the origin"). */
  result?: string;
  /** Bytes known to be in place (the size once done). */
  bytes: number;
  error?: { code: string; message: string };
}

export interface JobView {
  id: string;
  kind: string;
  image: string;
  registry: string;
  digest: string;
  mediaType: string;
  manifests: ReadonlyArray<{ digest: string; platform?: string }>;
  state: 'running' | 'done' | 'failed';
  createdAt: string;
  finishedAt?: string;
  items: JobItem[];
  totals: { items: number; done: number; skipped: number; failed: number; bytes: number; totalBytes: number };
}

export interface JobTableOptions {
  /** "preheat" or "preload": the job kind in views and logs. */
  readonly kind: string;
  readonly maxJobs: number;
  readonly ttlMs: number;
  /** Items running at once, over all jobs. */
  readonly concurrency: number;
  /** Longest a job may run; items still unfinished then fail with UPSTREAM_TIMEOUT. */
  readonly jobTimeoutMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** Work for one item: resolves with a result text, or 'skipped:<why>'; rejects on failure. */
export type ItemWork = (item: Readonly<JobItem>, signal: AbortSignal) => Promise<string>;

interface Job {
  view: JobView;
  finishedAt?: number;
}

export class JobTable {
  readonly #o: JobTableOptions;
  readonly #jobs = new Map<string, Job>();
  readonly #lifetime = new AbortController();
  readonly #waiting: Array<() => void> = [];
  #running = 0;

  constructor(options: JobTableOptions) {
    this.#o = options;
  }

  get size(): number {
    return this.#jobs.size;
  }

  /** Start a job for a resolved image. Throws TOOMANYREQUESTS when the table is full of running jobs. */
  start(image: string, registry: string, resolved: ResolvedImage, work: ItemWork): JobView {
    if (this.#lifetime.signal.aborted) throw new LayerswarmError('ABORTED', `${this.#o.kind}: shutting down`, { status: 503 });
    this.#expire();
    if (this.#jobs.size >= this.#o.maxJobs) {
      const oldest = [...this.#jobs.entries()].filter(([, j]) => j.finishedAt !== undefined).sort((a, b) => (a[1].finishedAt ?? 0) - (b[1].finishedAt ?? 0))[0];
      if (!oldest) throw new LayerswarmError('TOOMANYREQUESTS', `${this.#o.maxJobs} ${this.#o.kind} jobs are running; try again when one finished`);
      this.#jobs.delete(oldest[0]);
    }
    const now = this.#now();
    const view: JobView = {
      id: randomUUID(),
      kind: this.#o.kind,
      image,
      registry,
      digest: resolved.digest,
      mediaType: resolved.mediaType,
      manifests: resolved.manifests,
      state: 'running',
      createdAt: new Date(now).toISOString(),
      items: resolved.blobs.map((b: ImageBlob): JobItem => ({
        digest: b.digest, kind: b.kind, platforms: [...b.platforms], state: 'queued', bytes: 0,
        ...(b.size !== undefined ? { size: b.size } : {}), ...(b.mediaType !== undefined ? { mediaType: b.mediaType } : {}),
      })),
      totals: { items: 0, done: 0, skipped: 0, failed: 0, bytes: 0, totalBytes: 0 },
    };
    const job: Job = { view };
    this.#jobs.set(view.id, job);
    this.#totals(view);
    void this.#run(job, work);
    return structuredClone(view);
  }

  /** A copy of a job's current state, undefined when unknown or expired. */
  get(id: string): JobView | undefined {
    this.#expire();
    const job = this.#jobs.get(id);
    return job ? structuredClone(job.view) : undefined;
  }

  /** Abort every running job (shutdown). */
  close(): void {
    this.#lifetime.abort(new LayerswarmError('ABORTED', `${this.#o.kind}: shutting down`));
    for (const wake of this.#waiting.splice(0)) wake();
  }

  async #run(job: Job, work: ItemWork): Promise<void> {
    const log = this.#o.logger.child({ job: job.view.id, image: job.view.image });
    const timeout = AbortSignal.timeout(this.#o.jobTimeoutMs);
    const signal = AbortSignal.any([this.#lifetime.signal, timeout]);
    log.info({ items: job.view.items.length, digest: job.view.digest }, `${this.#o.kind} started`);
    await Promise.all(job.view.items.map(async (item) => {
      try {
        await this.#slot(signal);
      } catch (err) {
        this.#fail(item, err, timeout.aborted);
        return;
      }
      try {
        item.state = 'fetching';
        const result = await work(item, signal);
        if (result.startsWith('skipped:')) {
          item.state = 'skipped';
          item.result = result.slice('skipped:'.length);
        } else {
          item.state = 'done';
          item.result = result;
          item.bytes = item.size ?? 0;
        }
      } catch (err) {
        this.#fail(item, err, timeout.aborted);
        log.warn({ err, digest: item.digest }, `${this.#o.kind} of a blob failed`);
      } finally {
        this.#release();
        this.#totals(job.view);
      }
    }));
    job.finishedAt = this.#now();
    job.view.finishedAt = new Date(job.finishedAt).toISOString();
    job.view.state = job.view.items.some((i) => i.state === 'failed') ? 'failed' : 'done';
    this.#totals(job.view);
    log.info({ state: job.view.state, ...job.view.totals }, `${this.#o.kind} finished`);
  }

  #fail(item: JobItem, err: unknown, timedOut: boolean): void {
    const e = timedOut
      ? new LayerswarmError('UPSTREAM_TIMEOUT', `${this.#o.kind} job took longer than ${this.#o.jobTimeoutMs} ms`)
      : toLayerswarmError(err);
    item.state = 'failed';
    item.error = { code: e.code, message: e.message };
  }

  async #slot(signal: AbortSignal): Promise<void> {
    while (this.#running >= this.#o.concurrency) {
      if (signal.aborted) throw toLayerswarmError(signal.reason, 'ABORTED');
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal.removeEventListener('abort', wake);
          const i = this.#waiting.indexOf(wake);
          if (i >= 0) this.#waiting.splice(i, 1);
          resolve();
        };
        this.#waiting.push(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
    if (signal.aborted) throw toLayerswarmError(signal.reason, 'ABORTED');
    this.#running++;
  }

  #release(): void {
    this.#running--;
    this.#waiting.shift()?.();
  }

  #totals(view: JobView): void {
    const t = { items: view.items.length, done: 0, skipped: 0, failed: 0, bytes: 0, totalBytes: 0 };
    for (const i of view.items) {
      if (i.state === 'done') t.done++;
      else if (i.state === 'skipped') t.skipped++;
      else if (i.state === 'failed') t.failed++;
      t.bytes += i.bytes;
      t.totalBytes += i.size ?? 0;
    }
    view.totals = t;
  }

  #expire(): void {
    const now = this.#now();
    for (const [id, job] of this.#jobs) if (job.finishedAt !== undefined && now - job.finishedAt > this.#o.ttlMs) this.#jobs.delete(id);
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }
}
