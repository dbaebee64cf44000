/**
 * Authorization-preserving cache: a cached blob or manifest is served to a client only when the origin would serve
 * it to that client.
 *
 * Two facts are needed, and both are learned from the origin:
 *  - allowed(identity, repository): the identity may read the repository. Reused for `ttlMs`.
 *  - member(repository, digest): the object exists in that repository at the origin (blobs are repository-scoped, so
 *    access to repository A must not open a blob that only repository B holds). Identity-independent; kept in a
 *    bounded LRU.
 * When either is unknown or stale the agent asks the origin with the client's identity (a HEAD of the very blob or
 * manifest), which answers both. Denials are not cached: a client that then authenticates is a different identity.
 * If the origin is unreachable, an allow up to `staleMaxAgeMs` old still counts (logged), else the request fails.
 */
import type { Logger } from '../../shared/logging.ts';
import { isLayerswarmError } from '../../shared/errors.ts';
import { LruMap } from '../../shared/lru-map.ts';
import { identityKey, type Identity, type UpstreamClient, type UpstreamRegistry } from '../upstream/types.ts';

export interface AccessCheckerOptions {
  upstream: UpstreamClient;
  logger: Logger;
  ttlMs: number;
  staleMaxAgeMs: number;
  manifestMaxBytes: number;
  now: () => number;
  /** Entries kept per map. Default 100 000. */
  maxEntries?: number;
  onCheck?: (result: 'cached' | 'allowed' | 'denied' | 'stale' | 'error') => void;
}

export interface AccessObject {
  kind: 'blob' | 'manifest';
  /** "sha256:..." */
  digest: string;
}

export class AccessChecker {
  readonly #o: AccessCheckerOptions;
  readonly #allowed: LruMap<string, number>;
  readonly #members: LruMap<string, true>;

  constructor(options: AccessCheckerOptions) {
    this.#o = options;
    this.#allowed = new LruMap(options.maxEntries ?? 100_000);
    this.#members = new LruMap(options.maxEntries ?? 100_000);
  }

  /** Resolves when `identity` may read `object` in `name`; rejects with the origin's answer (UNAUTHORIZED, DENIED, *_UNKNOWN). */
  async check(registry: UpstreamRegistry, name: string, identity: Identity, object: AccessObject, signal: AbortSignal): Promise<void> {
    const allowKey = `${registry.host}\n${identityKey(identity)}\n${name}`;
    const memberKey = `${registry.host}\n${name}\n${object.digest}`;
    const allowedAt = this.#allowed.get(allowKey);
    const now = this.#o.now();
    const member = this.#members.get(memberKey) === true;
    if (allowedAt !== undefined && now - allowedAt < this.#o.ttlMs && member) {
      this.#o.onCheck?.('cached');
      return;
    }
    try {
      if (object.kind === 'blob') {
        await this.#o.upstream.headBlob(registry, name, object.digest, { identity, signal });
      } else {
        await this.#o.upstream.manifest(registry, name, object.digest, {
          identity, signal, method: 'HEAD', accept: undefined, maxBytes: this.#o.manifestMaxBytes,
        });
      }
    } catch (err) {
      const unreachable = isLayerswarmError(err, 'UPSTREAM_UNAVAILABLE') || isLayerswarmError(err, 'UPSTREAM_TIMEOUT');
      if (unreachable && member && allowedAt !== undefined && now - allowedAt < this.#o.staleMaxAgeMs) {
        this.#o.logger.warn({ registry: registry.host, name, ageMs: now - allowedAt, err }, 'origin unreachable; using an earlier access decision');
        this.#o.onCheck?.('stale');
        return;
      }
      this.#o.onCheck?.(unreachable ? 'error' : 'denied');
      throw err;
    }
    this.record(registry, name, identity, object.digest);
    this.#o.onCheck?.('allowed');
  }

  /** Record that the origin just served `digest` in `name` to `identity` (e.g. after a successful GET). */
  record(registry: UpstreamRegistry, name: string, identity: Identity, digest: string): void {
    this.#allowed.set(`${registry.host}\n${identityKey(identity)}\n${name}`, this.#o.now());
    this.#members.set(`${registry.host}\n${name}\n${digest}`, true);
  }

  /** True when the identity was allowed on the repository within `maxAgeMs` (for stale-if-error decisions). */
  allowedWithin(registry: UpstreamRegistry, name: string, identity: Identity, maxAgeMs: number): boolean {
    const at = this.#allowed.get(`${registry.host}\n${identityKey(identity)}\n${name}`);
    return at !== undefined && this.#o.now() - at < maxAgeMs;
  }
}
