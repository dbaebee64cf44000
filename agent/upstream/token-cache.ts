/**
 * Bearer tokens from origin token services, cached per (registry host, identity key, scope) until shortly before they
 * expire, bounded in number (least recently used dropped first), with singleflight: concurrent requests for the same
 * key share one fetch.
 *
 * Keys hold identity keys (hashes), never secrets. A fetch is not tied to any one caller's signal: it runs under its
 * own deadline (the fetcher's business) and each caller stops waiting when its own signal aborts.
 */
import { raceAbort } from '../../shared/abort.ts';
import { LayerswarmError } from '../../shared/errors.ts';

/** The docker token spec's default lifetime when the response has no expires_in. */
export const DEFAULT_TOKEN_TTL_MS = 60_000;
export const DEFAULT_SAFETY_MARGIN_MS = 10_000;
export const DEFAULT_MAX_TOKENS = 1000;

export interface TokenKey {
  readonly host: string;
  readonly identityKey: string;
  readonly scope: string;
}

export interface FetchedToken {
  readonly token: string;
  /** Lifetime in seconds as the token service sent it (expires_in); default 60. */
  readonly expiresInSeconds?: number;
}

export interface TokenCacheOptions {
  /** Most tokens kept. Default 1000. */
  readonly maxEntries?: number;
  /** A token is dropped this long before it expires (at most half its lifetime). Default 10 s. */
  readonly safetyMarginMs?: number;
  /** Clock in milliseconds. Default Date.now. */
  readonly now?: () => number;
}

interface Entry {
  readonly token: string;
  readonly expiresAt: number;
}

export class TokenCache {
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<string>>();
  readonly #max: number;
  readonly #margin: number;
  readonly #now: () => number;

  constructor(options: TokenCacheOptions = {}) {
    this.#max = Math.max(1, options.maxEntries ?? DEFAULT_MAX_TOKENS);
    this.#margin = Math.max(0, options.safetyMarginMs ?? DEFAULT_SAFETY_MARGIN_MS);
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached token for `key`, if it is still fresh. */
  get(key: TokenKey): string | undefined {
    const k = cacheKey(key);
    const entry = this.#entries.get(k);
    if (entry === undefined) return undefined;
    this.#entries.delete(k);
    if (entry.expiresAt <= this.#now()) return undefined;
    this.#entries.set(k, entry); // most recently used
    return entry.token;
  }

  /** Store a token fetched at `fetchedAt` (the time the request started, so the lifetime is never overestimated). */
  set(key: TokenKey, fetched: FetchedToken, fetchedAt: number = this.#now()): void {
    const seconds = fetched.expiresInSeconds;
    const ttl = seconds !== undefined && Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_TOKEN_TTL_MS;
    const expiresAt = fetchedAt + ttl - Math.min(this.#margin, ttl / 2);
    const k = cacheKey(key);
    this.#entries.delete(k);
    if (expiresAt <= this.#now()) return;
    this.#entries.set(k, { token: fetched.token, expiresAt });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
  }

  /** Forget a token (e.g. the origin rejected it). Only drops it if it is still the one cached. */
  delete(key: TokenKey, token?: string): void {
    const k = cacheKey(key);
    if (token === undefined || this.#entries.get(k)?.token === token) this.#entries.delete(k);
  }

  clear(): void {
    this.#entries.clear();
  }

  /**
   * The cached token, or the result of `fetch` (shared with every concurrent caller for the same key). A failed fetch
   * is not cached. `signal` only stops this caller's wait (rejecting with ABORTED, or UPSTREAM_TIMEOUT for a
   * deadline), not the shared fetch.
   */
  async getOrFetch(key: TokenKey, fetch: () => Promise<FetchedToken>, signal?: AbortSignal): Promise<string> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    const k = cacheKey(key);
    let pending = this.#inflight.get(k);
    if (pending === undefined) {
      const startedAt = this.#now();
      pending = (async () => {
        try {
          const fetched = await fetch();
          this.set(key, fetched, startedAt);
          return fetched.token;
        } finally {
          this.#inflight.delete(k);
        }
      })();
      this.#inflight.set(k, pending);
    }
    return signal === undefined ? pending : raceAbort(pending, signal, 'token request', () => abortedError(signal));
  }
}

function cacheKey(key: TokenKey): string {
  return `${key.host}\u0000${key.identityKey}\u0000${key.scope}`;
}


/** ABORTED, or UPSTREAM_TIMEOUT when the signal fired because of a deadline (AbortSignal.timeout). */
function abortedError(signal: AbortSignal): LayerswarmError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  return timedOut
    ? new LayerswarmError('UPSTREAM_TIMEOUT', 'token request: timed out', { cause: reason })
    : new LayerswarmError('ABORTED', 'token request: aborted', { cause: reason });
}
