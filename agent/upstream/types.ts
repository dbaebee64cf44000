/**
 * The upstream (origin) registry client's interface and its data types.
 *
 * Identity: who the agent acts as towards the origin. A client that sent its own credentials is forwarded as itself
 * (Basic credentials are used as they are or exchanged for a bearer token; a Bearer token the client obtained from the
 * origin's token service is forwarded unchanged). A client that sent none acts with the agent's configured credentials
 * for that registry, or anonymously.
 */
import type { Readable } from 'node:stream';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export type Identity =
  | { readonly kind: 'agent' }
  | { readonly kind: 'basic'; readonly credentials: Credentials; readonly key: string }
  | { readonly kind: 'bearer'; readonly token: string; readonly key: string };

/** A stable cache key for an identity (never contains a secret: hashes only). */
export function identityKey(identity: Identity): string {
  return identity.kind === 'agent' ? 'agent' : identity.key;
}

export interface UpstreamRegistry {
  /** The registry's host as clients name it (containerd's ?ns=), e.g. "127.0.0.1:5000" or "docker.io". */
  readonly host: string;
  /** Base URL requests go to, e.g. "http://127.0.0.1:5000" or "https://registry-1.docker.io". */
  readonly baseUrl: string;
  /** The agent's own credentials for this registry (config file or docker config.json), if any. */
  readonly credentials?: Credentials;
  /** Docker Hub: single-component names get the "library/" prefix. */
  readonly dockerHub: boolean;
}

export interface RequestOptions {
  readonly identity: Identity;
  readonly signal: AbortSignal;
}

export interface ManifestResult {
  /** Exactly the bytes the origin sent (empty for HEAD). */
  readonly body: Buffer;
  readonly contentType: string;
  /** Docker-Content-Digest as the origin sent it (may be absent). */
  readonly digest?: string;
  readonly size: number;
}

export interface BlobResult {
  /** Total size of the blob (from Content-Length, or Content-Range's total on a 206). */
  readonly size?: number;
  /** Bytes from the requested offset. Destroy it to cancel. */
  readonly body: Readable;
  /** Set when a bounded range (options.end) was answered with 206: the body holds exactly bytes start..end. */
  readonly range?: { readonly start: number; readonly end: number };
}

/**
 * Errors (LayerswarmError): UNAUTHORIZED (401, with `headers['WWW-Authenticate']` set to a challenge the client can
 * answer), DENIED (403), MANIFEST_UNKNOWN / BLOB_UNKNOWN / NAME_UNKNOWN (404), TOOMANYREQUESTS (429),
 * MANIFEST_TOO_LARGE, UPSTREAM_TIMEOUT, UPSTREAM_UNAVAILABLE (connection refused/reset, DNS, 5xx), UPSTREAM_ERROR
 * (anything else), ABORTED (the caller's signal).
 */
export interface UpstreamClient {
  /** GET or HEAD a manifest by tag or digest, forwarding `accept` unchanged. */
  manifest(
    registry: UpstreamRegistry,
    name: string,
    reference: string,
    options: RequestOptions & { method: 'GET' | 'HEAD'; accept: string | undefined; maxBytes: number },
  ): Promise<ManifestResult>;
  /**
   * GET a blob, from `offset` (a Range request when > 0). With `end` (inclusive), a bounded `Range: bytes=offset-end`:
   * a 206 resolves with `range` set; a 200 (the origin ignored the Range) resolves with the whole blob and no `range`.
   */
  blob(registry: UpstreamRegistry, name: string, digest: string, options: RequestOptions & { offset: number; end?: number }): Promise<BlobResult>;
  /** HEAD a blob: resolves with its size when the identity may read it; rejects otherwise. */
  headBlob(registry: UpstreamRegistry, name: string, digest: string, options: RequestOptions): Promise<{ size?: number }>;
  /**
   * `GET /v2/` as `identity`, for the agent's own `GET /v2/`. An identity with something to authenticate with (the
   * client's Basic credentials or Bearer token, or the agent's configured credentials) answers the origin's
   * challenge; an anonymous one does not, so the origin's 401 comes back as UNAUTHORIZED with its WWW-Authenticate.
   * That matters for skopeo, podman and docker: they only authenticate after seeing a challenge at /v2/.
   */
  ping(registry: UpstreamRegistry, options: RequestOptions): Promise<void>;
  close(): Promise<void>;
}
