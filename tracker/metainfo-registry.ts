/**
 * Metainfo by digest, and the seeders that produce it. A digest the tracker does not know is produced by one
 * registered seeder (chosen by rendezvous hash of the digest, so the same seeder caches the same blob): POST
 * `${seeder.url}/v1/metainfo` {digest, repository, registry?} → Metainfo JSON, validated with parseMetainfo. One
 * production per digest is in flight at a time (concurrent gets join it); a failure is reported to everyone waiting
 * and forgotten, so the next get tries again. Known metainfo is kept in a byte-bounded LRU.
 */
import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { isAbortError, isLayerswarmError } from '../shared/errors.ts';
import { parseMetainfo, type Metainfo } from '../shared/swarm/metainfo.ts';
import { TrackerError } from './errors.ts';

export interface Seeder {
  readonly id: string;
  /** http(s) base URL, no trailing slash. */
  readonly url: string;
  readonly lastSeen: number;
}

export interface MetainfoRequest {
  readonly digest: string;
  readonly repository: string;
  /** Registry host the repository lives on; the seeder's default registry when absent. */
  readonly registry?: string | undefined;
}

/** Ask `seeder` for metainfo; resolves with the raw (unvalidated) JSON. */
export type SeederCall = (seeder: Seeder, req: MetainfoRequest, signal: AbortSignal) => Promise<unknown>;

export type MetainfoResult = 'hit' | 'produced' | 'joined' | string;

export interface MetainfoRegistryOptions {
  readonly now: () => number;
  readonly seederTtlMs: number;
  readonly maxSeeders: number;
  readonly seederRequestTimeoutMs: number;
  readonly maxInFlight: number;
  readonly cacheBytes: number;
  /** Default: HTTP with undici. */
  readonly call?: SeederCall;
  /** Each get's outcome, for metrics: hit, produced, joined, or a tracker error code. */
  readonly onResult?: (result: MetainfoResult) => void;
}

/** Approximate heap bytes of a metainfo (64-char strings dominate). */
export function metainfoWeight(meta: Metainfo): number {
  return 256 + meta.pieceHashes.length * 80;
}

export class MetainfoRegistry {
  readonly #options: MetainfoRegistryOptions;
  readonly #seeders = new Map<string, Seeder>();
  readonly #known = new Map<string, Metainfo>();
  readonly #inFlight = new Map<string, Promise<Metainfo>>();
  readonly #lifetime = new AbortController();
  readonly #dispatcher: Dispatcher | undefined;
  readonly #call: SeederCall;
  #bytes = 0;
  #closing: Promise<void> | undefined;

  constructor(options: MetainfoRegistryOptions) {
    this.#options = options;
    if (options.call) {
      this.#call = options.call;
    } else {
      const dispatcher = new Agent({ connect: { timeout: 5000 }, headersTimeout: options.seederRequestTimeoutMs, bodyTimeout: 30_000 });
      this.#dispatcher = dispatcher;
      this.#call = (seeder, req, signal) => httpSeederCall(dispatcher, seeder, req, signal);
    }
  }

  get knownCount(): number {
    return this.#known.size;
  }

  get knownBytes(): number {
    return this.#bytes;
  }

  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  /** Register a seeder or refresh its heartbeat. Throws TRACKER_FULL when maxSeeders live seeders are registered. */
  registerSeeder(id: string, url: string): Seeder {
    const now = this.#options.now();
    if (!this.#seeders.has(id)) {
      this.pruneSeeders();
      if (this.#seeders.size >= this.#options.maxSeeders) throw new TrackerError('TRACKER_FULL', `tracker holds ${this.#seeders.size} seeders (maxSeeders)`);
    }
    const seeder: Seeder = { id, url: url.replace(/\/+$/, ''), lastSeen: now };
    this.#seeders.delete(id);
    this.#seeders.set(id, seeder);
    return seeder;
  }

  /** Live seeders, oldest heartbeat first. */
  seeders(): Seeder[] {
    this.pruneSeeders();
    return [...this.#seeders.values()];
  }

  pruneSeeders(): number {
    const now = this.#options.now();
    let dropped = 0;
    for (const [id, seeder] of this.#seeders) {
      if (now - seeder.lastSeen < this.#options.seederTtlMs) break;
      this.#seeders.delete(id);
      dropped++;
    }
    return dropped;
  }

  /** Known metainfo, without asking a seeder. */
  peek(digest: string): Metainfo | undefined {
    return this.#known.get(digest);
  }

  /** Store metainfo a seeder computed. Throws METAINFO_CONFLICT when different metainfo is known for the digest. */
  put(input: unknown): { meta: Metainfo; created: boolean } {
    let meta: Metainfo;
    try {
      meta = parseMetainfo(input);
    } catch (err) {
      if (isLayerswarmError(err, 'METAINFO_INVALID')) throw new TrackerError('METAINFO_INVALID', err.message, { status: 400, cause: err });
      throw err;
    }
    const known = this.#known.get(meta.digest);
    if (known) {
      if (!sameMetainfo(known, meta)) {
        throw new TrackerError('METAINFO_CONFLICT', `different metainfo is already known for ${meta.digest}`, {
          detail: { size: known.size, pieceLength: known.pieceLength },
        });
      }
      this.#touch(meta.digest, known);
      return { meta: known, created: false };
    }
    this.#remember(meta);
    return { meta, created: true };
  }

  /**
   * Known metainfo, or metainfo produced by a seeder. `signal` only stops this caller's wait: a production others
   * joined goes on (bounded by seederRequestTimeout).
   */
  async get(req: MetainfoRequest, signal?: AbortSignal): Promise<Metainfo> {
    const report = this.#options.onResult ?? ((): void => undefined);
    const known = this.#known.get(req.digest);
    if (known) {
      this.#touch(req.digest, known);
      report('hit');
      return known;
    }
    let production = this.#inFlight.get(req.digest);
    const joined = production !== undefined;
    try {
      if (!production) {
        if (this.#inFlight.size >= this.#options.maxInFlight) {
          throw new TrackerError('TRACKER_FULL', `${this.#inFlight.size} metainfo productions in flight (maxMetainfoRequests)`, { headers: { 'retry-after': '1' } });
        }
        const started = this.#produce(req);
        production = started;
        this.#inFlight.set(req.digest, started);
        void started.then(
          () => this.#inFlight.delete(req.digest),
          () => this.#inFlight.delete(req.digest),
        );
      }
      const meta = await waitFor(production, signal);
      report(joined ? 'joined' : 'produced');
      return meta;
    } catch (err) {
      report(err instanceof TrackerError ? err.trackerCode : 'INTERNAL');
      throw err;
    }
  }

  /** Rendezvous (highest random weight) order of the live seeders for a digest. */
  seedersFor(digest: string): Seeder[] {
    const score = (s: Seeder): string => createHash('sha256').update(`${s.id}\n${digest}`).digest('hex');
    return this.seeders()
      .map((s) => ({ s, w: score(s) }))
      .sort((a, b) => (a.w < b.w ? 1 : a.w > b.w ? -1 : 0))
      .map((x) => x.s);
  }

  /** Fail productions in flight with SHUTTING_DOWN and release connections. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#lifetime.abort(new TrackerError('SHUTTING_DOWN', 'tracker shutting down'));
      await this.#dispatcher?.close();
    })();
    return this.#closing;
  }

  async #produce(req: MetainfoRequest): Promise<Metainfo> {
    const [seeder] = this.seedersFor(req.digest);
    if (!seeder) throw new TrackerError('NO_SEEDER', `no seeder is registered to produce metainfo for ${req.digest}`);
    const timeout = AbortSignal.timeout(this.#options.seederRequestTimeoutMs);
    const signal = AbortSignal.any([this.#lifetime.signal, timeout]);
    let raw: unknown;
    try {
      raw = await this.#call(seeder, req, signal);
    } catch (err) {
      if (err instanceof TrackerError) throw err;
      if (this.#lifetime.signal.aborted) throw new TrackerError('SHUTTING_DOWN', 'tracker shutting down', { cause: err });
      if (timeout.aborted || isAbortError(err)) {
        throw new TrackerError('SEEDER_TIMEOUT', `seeder ${seeder.id} did not produce metainfo for ${req.digest} within ${this.#options.seederRequestTimeoutMs} ms`, { cause: err });
      }
      const message = err instanceof Error ? err.message : String(err);
      throw new TrackerError('SEEDER_FAILED', `seeder ${seeder.id} failed to produce metainfo for ${req.digest}: ${message}`, { cause: err });
    }
    let meta: Metainfo;
    try {
      meta = parseMetainfo(raw);
    } catch (err) {
      throw new TrackerError('METAINFO_INVALID', `seeder ${seeder.id} sent invalid metainfo for ${req.digest}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (meta.digest !== req.digest) throw new TrackerError('METAINFO_INVALID', `seeder ${seeder.id} sent metainfo for ${meta.digest}, asked for ${req.digest}`);
    const raced = this.#known.get(req.digest);
    if (raced) return raced;
    this.#remember(meta);
    return meta;
  }

  #remember(meta: Metainfo): void {
    this.#known.set(meta.digest, meta);
    this.#bytes += metainfoWeight(meta);
    for (const [digest, old] of this.#known) {
      if (this.#bytes <= this.#options.cacheBytes || this.#known.size <= 1) break;
      this.#known.delete(digest);
      this.#bytes -= metainfoWeight(old);
    }
  }

  #touch(digest: string, meta: Metainfo): void {
    this.#known.delete(digest);
    this.#known.set(digest, meta);
  }
}

function sameMetainfo(a: Metainfo, b: Metainfo): boolean {
  return a.size === b.size && a.pieceLength === b.pieceLength && a.pieceHashes.length === b.pieceHashes.length && a.pieceHashes.every((h, i) => h === b.pieceHashes[i]);
}

/** Wait for `promise`, or reject with ABORTED when `signal` aborts first (the promise itself goes on). */
function waitFor<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new TrackerError('ABORTED', 'metainfo request aborted', { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new TrackerError('ABORTED', 'metainfo request aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e instanceof Error ? e : new Error(String(e))); },
    );
  });
}

/** Largest metainfo response read from a seeder (65 536 piece hashes fit in ~4.5 MiB). */
export const MAX_METAINFO_BYTES = 8 * 2 ** 20;

async function httpSeederCall(dispatcher: Dispatcher, seeder: Seeder, req: MetainfoRequest, signal: AbortSignal): Promise<unknown> {
  const res = await request(`${seeder.url}/v1/metainfo`, {
    method: 'POST',
    dispatcher,
    signal,
    headers: { 'content-type': 'application/json', 'user-agent': 'layerswarm-tracker/0.1' },
    body: JSON.stringify({ digest: req.digest, repository: req.repository, ...(req.registry ? { registry: req.registry } : {}) }),
  });
  const text = await readLimited(res.body, MAX_METAINFO_BYTES);
  if (res.statusCode !== 200) {
    throw new TrackerError('SEEDER_FAILED', `seeder ${seeder.id} answered ${res.statusCode}: ${text.slice(0, 300)}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new TrackerError('METAINFO_INVALID', `seeder ${seeder.id} sent a body that is not JSON`);
  }
}

/** Read a body as UTF-8 text, failing past `limit` bytes. */
export async function readLimited(
  body: AsyncIterable<Uint8Array> & { destroy?: (err?: Error) => unknown },
  limit: number,
  tooLarge: () => Error = () => new TrackerError('METAINFO_INVALID', `response body exceeds ${limit} bytes`),
): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > limit) {
      body.destroy?.();
      throw tooLarge();
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}
