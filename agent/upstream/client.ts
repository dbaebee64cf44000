/**
 * The upstream (origin) registry client: manifests and blobs over undici, answering the origin's auth challenges for
 * the request's identity (see auth.ts), with every failure mapped onto a LayerswarmError code (see types.ts).
 *
 * A request first goes out with what is known without a round trip (a cached token, or credentials for the challenge
 * last seen from that registry); on a 401 the challenge is answered and the request retried once. A second 401 is
 * relayed: UNAUTHORIZED carrying the origin's WWW-Authenticate so the agent can pass it to the client.
 */
import type { Dispatcher } from 'undici';
import { parseName, parseTag } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';
import { silentLogger, type Logger } from '../../shared/logging.ts';
import { Authenticator, repositoryScope, type AuthRequest } from './auth.ts';
import { formatChallenge, parseWwwAuthenticate, selectChallenge, type BasicChallenge, type BearerChallenge } from './challenge.ts';
import { cancel, createDispatcher, discard, headerValue, readCapped, safeUrl, send, type HttpResponse } from './http.ts';
import { TokenCache } from './token-cache.ts';
import type { BlobResult, Identity, ManifestResult, RequestOptions, UpstreamClient, UpstreamRegistry } from './types.ts';

/** Every manifest type layerswarm serves, so an origin never down-converts to schema1. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
export const DEFAULT_MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
export const MAX_REDIRECTS = 5;
/** Error bodies read from the origin (for its message), at most. */
const MAX_ERROR_BODY = 64 * 1024;
const MAX_REMEMBERED_CHALLENGES = 256;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export type UpstreamRequestKind = 'manifest' | 'blob' | 'head' | 'token' | 'ping';

export interface UpstreamRequestEvent {
  /** UpstreamRegistry.host */
  readonly registry: string;
  readonly kind: UpstreamRequestKind;
  /** HTTP status; 0 when no response arrived. One event per round trip (redirects and 401 retries included). */
  readonly status: number;
  readonly durationMs: number;
}

export interface UpstreamTimeouts {
  readonly connectMs: number;
  readonly headersMs: number;
  /** A body (blob or manifest) fails with UPSTREAM_TIMEOUT after this long without a byte. */
  readonly bodyIdleMs: number;
  /** Deadline of one token service request. */
  readonly tokenMs: number;
}

export interface UpstreamClientOptions {
  readonly logger?: Logger;
  readonly timeouts: UpstreamTimeouts;
  readonly userAgent: string;
  /** For metrics. Must not throw. */
  readonly onRequest?: (event: UpstreamRequestEvent) => void;
  /** Token cache (default: a new one, 1000 tokens, Date.now). */
  readonly tokenCache?: TokenCache;
}


/** The repository name at the origin: Docker Hub's official images live under "library/". */
export function upstreamName(registry: UpstreamRegistry, name: string): string {
  return registry.dockerHub && !name.includes('/') ? `library/${name}` : name;
}

export function createUpstreamClient(options: UpstreamClientOptions): UpstreamClient {
  return new HttpUpstreamClient(options);
}

interface Exchange {
  readonly registry: UpstreamRegistry;
  /** Repository (upstream name derived from it); "" for /v2/ itself (token scope ""). */
  readonly name: string;
  /** false: a 401 is relayed at once, nothing is sent to answer it. Default true. */
  readonly answerChallenges?: boolean;
  readonly kind: Exclude<UpstreamRequestKind, 'token'>;
  readonly method: 'GET' | 'HEAD';
  readonly url: URL;
  readonly headers: Record<string, string>;
  readonly identity: Identity;
  readonly signal: AbortSignal;
}

class HttpUpstreamClient implements UpstreamClient {
  readonly #options: UpstreamClientOptions;
  readonly #log: Logger;
  readonly #dispatcher: Dispatcher;
  readonly #auth: Authenticator;
  /** The challenge each registry (by base URL) last sent, so later requests can answer it up front. */
  readonly #challenges = new Map<string, BasicChallenge | BearerChallenge>();

  constructor(options: UpstreamClientOptions) {
    this.#options = options;
    this.#log = options.logger ?? silentLogger();
    this.#dispatcher = createDispatcher(options.timeouts);
    this.#auth = new Authenticator({
      dispatcher: this.#dispatcher,
      tokenCache: options.tokenCache ?? new TokenCache(),
      logger: this.#log,
      tokenTimeoutMs: options.timeouts.tokenMs,
      userAgent: options.userAgent,
      onTokenRequest: (e) => this.#emit({ ...e, kind: 'token' }),
    });
  }

  async manifest(
    registry: UpstreamRegistry,
    name: string,
    reference: string,
    options: RequestOptions & { method: 'GET' | 'HEAD'; accept: string | undefined; maxBytes: number },
  ): Promise<ManifestResult> {
    if (!DIGEST_RE.test(reference)) parseTag(reference);
    const url = this.#url(registry, name, `manifests/${reference}`);
    const accept = options.accept === undefined || options.accept.trim() === '' ? DEFAULT_MANIFEST_ACCEPT : options.accept;
    const what = `manifest ${options.method} ${safeUrl(url)}`;
    const res = await this.#exchange({
      registry, name, url, kind: options.method === 'HEAD' ? 'head' : 'manifest', method: options.method,
      headers: { accept, 'accept-encoding': 'identity' }, identity: options.identity, signal: options.signal,
    });
    if (res.status !== 200) throw await this.#statusError(res, 'manifest', what);
    const tooLarge = (size?: number): LayerswarmError =>
      new LayerswarmError('MANIFEST_TOO_LARGE', `${what}: manifest is larger than ${options.maxBytes} bytes`, {
        detail: { limit: options.maxBytes, ...(size !== undefined ? { size } : {}) },
      });
    try {
      rejectContentEncoding(res, what);
      const length = contentLength(res);
      if (length !== undefined && length > options.maxBytes) throw tooLarge(length);
      const contentType = headerValue(res.headers, 'content-type');
      const digest = headerValue(res.headers, 'docker-content-digest');
      if (options.method === 'HEAD') {
        await discard(res);
        if (length === undefined || contentType === undefined) {
          // Answering a HEAD needs both: get them from the manifest itself.
          const got = await this.manifest(registry, name, reference, { ...options, method: 'GET' });
          return { ...got, body: Buffer.alloc(0) };
        }
        return { body: Buffer.alloc(0), contentType, size: length, ...(digest !== undefined ? { digest } : {}) };
      }
      const body = await readCapped(res, options.maxBytes, () => tooLarge());
      return { body, contentType: contentType ?? sniffMediaType(body), size: body.length, ...(digest !== undefined ? { digest } : {}) };
    } catch (err) {
      cancel(res);
      throw err;
    }
  }

  async blob(registry: UpstreamRegistry, name: string, digest: string, options: RequestOptions & { offset: number; end?: number }): Promise<BlobResult> {
    const { offset, end } = options;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new LayerswarmError('INTERNAL', `invalid blob offset ${offset}`);
    if (end !== undefined && (!Number.isSafeInteger(end) || end < offset)) throw new LayerswarmError('INTERNAL', `invalid blob range ${offset}-${end}`);
    const url = this.#blobUrl(registry, name, digest);
    const what = `blob GET ${safeUrl(url)}`;
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (end !== undefined) headers.range = `bytes=${offset}-${end}`;
    else if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await this.#exchange({ registry, name, url, kind: 'blob', method: 'GET', headers, identity: options.identity, signal: options.signal });
    let size: number | undefined;
    let range: { start: number; end: number } | undefined;
    try {
      if (end !== undefined && res.status === 206) {
        size = checkContentRange(res, offset, what, end);
        range = { start: offset, end };
      } else if (end !== undefined && res.status === 200) {
        // The origin ignored the Range: this is the whole blob (the caller decides what to do with it).
        size = contentLength(res);
      } else if (offset > 0 && res.status === 206) {
        size = checkContentRange(res, offset, what);
      } else if (offset === 0 && res.status === 200) {
        size = contentLength(res);
      } else if (res.status === 200 || res.status === 206) {
        throw new LayerswarmError('UPSTREAM_ERROR', `${what}: asked for bytes from ${offset}, origin answered ${res.status}`, {
          detail: { upstreamStatus: res.status, offset },
        });
      } else {
        throw await this.#statusError(res, 'blob', what);
      }
      rejectContentEncoding(res, what);
    } catch (err) {
      cancel(res);
      throw err;
    }
    return { body: res.stream(), ...(size !== undefined ? { size } : {}), ...(range ? { range } : {}) };
  }

  async headBlob(registry: UpstreamRegistry, name: string, digest: string, options: RequestOptions): Promise<{ size?: number }> {
    const url = this.#blobUrl(registry, name, digest);
    const what = `blob HEAD ${safeUrl(url)}`;
    const res = await this.#exchange({
      registry, name, url, kind: 'head', method: 'HEAD', headers: { 'accept-encoding': 'identity' },
      identity: options.identity, signal: options.signal,
    });
    if (res.status !== 200) throw await this.#statusError(res, 'blob', what);
    await discard(res);
    const size = contentLength(res);
    return size !== undefined ? { size } : {};
  }

  async ping(registry: UpstreamRegistry, options: RequestOptions): Promise<void> {
    const url = new URL(`${registry.baseUrl.replace(/\/+$/, '')}/v2/`);
    const anonymous = options.identity.kind === 'agent' && registry.credentials === undefined;
    const res = await this.#exchange({
      registry, name: '', url, kind: 'ping', method: 'GET', headers: {}, identity: options.identity, signal: options.signal,
      answerChallenges: !anonymous,
    });
    const what = `ping ${safeUrl(url)}`;
    if (res.status === 200) return discard(res);
    if (res.status === 404) {
      await discard(res);
      throw new LayerswarmError('UPSTREAM_ERROR', `${what}: not a registry (404 on /v2/)`, { detail: { upstreamStatus: 404 } });
    }
    throw await this.#statusError(res, 'manifest', what);
  }

  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const graceful = this.#dispatcher.close().then(() => true);
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 2000);
    });
    const closed = await Promise.race([graceful, late]);
    clearTimeout(timer);
    if (!closed) await this.#dispatcher.destroy();
  }

  #url(registry: UpstreamRegistry, name: string, rest: string): URL {
    parseName(name);
    return new URL(`${registry.baseUrl.replace(/\/+$/, '')}/v2/${upstreamName(registry, name)}/${rest}`);
  }

  #blobUrl(registry: UpstreamRegistry, name: string, digest: string): URL {
    if (!DIGEST_RE.test(digest) || digest.length > 200) {
      throw new LayerswarmError('DIGEST_INVALID', `invalid digest ${JSON.stringify(digest.slice(0, 100))}`);
    }
    return this.#url(registry, name, `blobs/${digest}`);
  }

  /** Send with auth: up front when possible, else on the 401; one retry. Resolves with any non-401 response. */
  async #exchange(x: Exchange): Promise<HttpResponse> {
    const { registry } = x;
    const log = this.#log.child({ registry: registry.host, kind: x.kind });
    const scope = x.name === '' ? '' : repositoryScope(upstreamName(registry, x.name));
    const authReq: AuthRequest = { registry, identity: x.identity, scope, signal: x.signal };
    const answer = x.answerChallenges ?? true;
    let authorization = answer ? this.#auth.cached(authReq) : undefined;
    /** The challenge `authorization` was just obtained for (not from the cache): retrying that same challenge is futile. */
    let answered: BasicChallenge | BearerChallenge | undefined;
    const known = this.#challenges.get(registry.baseUrl);
    if (answer && authorization === undefined && known !== undefined) {
      authorization = await this.#auth.authorize({ ...authReq, challengeHeader: formatChallenge(known, authReq.scope) }, known);
      answered = known;
    }
    const { connectMs, headersMs, bodyIdleMs } = this.#options.timeouts;
    for (let attempt = 0; ; attempt++) {
      const res = await send({
        dispatcher: this.#dispatcher,
        method: x.method,
        url: x.url,
        headers: {
          'user-agent': this.#options.userAgent,
          ...x.headers,
          ...(authorization !== undefined ? { authorization } : {}),
        },
        signal: x.signal,
        deadlineMs: connectMs + headersMs,
        bodyIdleMs,
        maxRedirects: MAX_REDIRECTS,
        onHop: ({ url, status, durationMs }) => {
          log.debug({ method: x.method, url: safeUrl(url), status, durationMs, auth: authorization?.split(' ')[0] ?? 'none' }, 'upstream request');
          this.#emit({ registry: registry.host, kind: x.kind, status, durationMs });
        },
      });
      if (res.status !== 401) return res;
      const challengeHeader = headerValue(res.headers, 'www-authenticate');
      await discard(res);
      const challenge = selectChallenge(parseWwwAuthenticate(res.headers['www-authenticate']));
      if (challenge !== undefined) this.#remember(registry.baseUrl, challenge);
      if (authorization !== undefined) this.#auth.invalidate(authReq, authorization);
      const relay = (why: string): LayerswarmError =>
        new LayerswarmError('UNAUTHORIZED', `${x.method} ${safeUrl(x.url)}: ${why}`, {
          detail: { upstreamStatus: 401 },
          ...(challengeHeader !== undefined ? { headers: { 'WWW-Authenticate': challengeHeader } } : {}),
        });
      if (!answer) throw relay('origin requires authentication');
      if (attempt > 0 || (answered !== undefined && challenge !== undefined && sameChallenge(answered, challenge))) {
        throw relay('origin refused the credentials');
      }
      if (challenge === undefined) throw relay('origin requires authentication this client cannot answer');
      const next = await this.#auth.authorize({ ...authReq, ...(challengeHeader !== undefined ? { challengeHeader } : {}) }, challenge);
      if (next === undefined) throw relay('origin requires credentials');
      if (next === authorization) throw relay('origin refused the credentials');
      authorization = next;
      answered = challenge;
    }
  }

  #remember(baseUrl: string, challenge: BasicChallenge | BearerChallenge): void {
    this.#challenges.delete(baseUrl);
    this.#challenges.set(baseUrl, challenge);
    if (this.#challenges.size > MAX_REMEMBERED_CHALLENGES) {
      const oldest = this.#challenges.keys().next();
      if (!oldest.done) this.#challenges.delete(oldest.value);
    }
  }

  /** Map a non-success answer (other than 401) onto an error, keeping the origin's message in the detail. */
  async #statusError(res: HttpResponse, kind: 'manifest' | 'blob', what: string): Promise<LayerswarmError> {
    const errors = await readOciErrors(res);
    const first = errors[0];
    const message = first?.message !== undefined ? `: ${first.message}` : '';
    const detail = { upstreamStatus: res.status, ...(errors.length > 0 ? { upstreamErrors: errors } : {}) };
    const status = res.status;
    if (status === 403) return new LayerswarmError('DENIED', `${what}: access denied${message}`, { detail });
    if (status === 404) {
      if (first?.code === 'NAME_UNKNOWN') return new LayerswarmError('NAME_UNKNOWN', `${what}: repository not found${message}`, { detail });
      const code = kind === 'manifest' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN';
      return new LayerswarmError(code, `${what}: not found${message}`, { detail });
    }
    if (status === 429) {
      const retryAfter = headerValue(res.headers, 'retry-after');
      return new LayerswarmError('TOOMANYREQUESTS', `${what}: too many requests${message}`, {
        detail,
        ...(retryAfter !== undefined ? { headers: { 'Retry-After': retryAfter } } : {}),
      });
    }
    if (status === 416) return new LayerswarmError('RANGE_NOT_SATISFIABLE', `${what}: range not satisfiable${message}`, { detail });
    if (status >= 500) return new LayerswarmError('UPSTREAM_UNAVAILABLE', `${what}: origin answered ${status}${message}`, { detail });
    return new LayerswarmError('UPSTREAM_ERROR', `${what}: unexpected status ${status}${message}`, { detail });
  }

  #emit(event: UpstreamRequestEvent): void {
    try {
      this.#options.onRequest?.(event);
    } catch (err) {
      this.#log.warn({ err }, 'onRequest callback threw');
    }
  }
}

interface OciError {
  code?: string;
  message?: string;
}

/** `{"errors":[{code,message,detail}]}` from an error response, as far as it parses; [] otherwise. */
async function readOciErrors(res: HttpResponse): Promise<OciError[]> {
  let text: string;
  try {
    text = (await readCapped(res, MAX_ERROR_BODY, () => new LayerswarmError('UPSTREAM_ERROR', 'error body too large'))).toString('utf8');
  } catch {
    cancel(res);
    return [];
  }
  try {
    const json = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(json.errors)) return [];
    return json.errors.slice(0, 10).flatMap((e: unknown): OciError[] => {
      if (typeof e !== 'object' || e === null) return [];
      const o = e as Record<string, unknown>;
      return [{
        ...(typeof o.code === 'string' ? { code: o.code.slice(0, 100) } : {}),
        ...(typeof o.message === 'string' ? { message: o.message.slice(0, 500) } : {}),
      }];
    });
  } catch {
    const trimmed = text.trim().slice(0, 200);
    return trimmed !== '' ? [{ message: trimmed }] : [];
  }
}

/** Same scheme, realm and service: answering one is answering the other (the scope is ours anyway). */
function sameChallenge(a: BasicChallenge | BearerChallenge, b: BasicChallenge | BearerChallenge): boolean {
  if (a.scheme !== b.scheme || a.realm !== b.realm) return false;
  return a.scheme === 'basic' || b.scheme === 'basic' || a.service === b.service;
}

function contentLength(res: HttpResponse): number | undefined {
  const v = headerValue(res.headers, 'content-length');
  if (v === undefined || !/^\d{1,15}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

function rejectContentEncoding(res: HttpResponse, what: string): void {
  const enc = headerValue(res.headers, 'content-encoding');
  if (enc !== undefined && enc.trim() !== '' && enc.trim().toLowerCase() !== 'identity') {
    throw new LayerswarmError('UPSTREAM_ERROR', `${what}: origin sent Content-Encoding ${JSON.stringify(enc.slice(0, 50))}; bytes must be unencoded`, {
      detail: { contentEncoding: enc.slice(0, 50) },
    });
  }
}

/**
 * A 206's Content-Range must start at `offset` and run to `end` (given) or to the end of the blob; returns the total
 * size if known.
 */
function checkContentRange(res: HttpResponse, offset: number, what: string, wantEnd?: number): number | undefined {
  const v = headerValue(res.headers, 'content-range') ?? '';
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim());
  const start = m ? Number(m[1]) : NaN;
  const end = m ? Number(m[2]) : NaN;
  const total = m && m[3] !== '*' ? Number(m[3]) : undefined;
  const badEnd = wantEnd !== undefined ? end !== wantEnd : total !== undefined && end !== total - 1;
  if (!m || start !== offset || end < start || badEnd) {
    throw new LayerswarmError('UPSTREAM_ERROR', `${what}: asked for bytes ${offset}-${wantEnd ?? ''}, origin sent Content-Range ${JSON.stringify(v.slice(0, 80))}`, {
      detail: { upstreamStatus: res.status, offset, contentRange: v.slice(0, 80) },
    });
  }
  return total;
}

/** Content-Type for a manifest sent without one: its mediaType field, if any. */
function sniffMediaType(body: Buffer): string {
  try {
    const mediaType = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (typeof mediaType === 'string' && mediaType !== '') return mediaType;
  } catch {
    // not JSON: nothing to go on
  }
  return 'application/octet-stream';
}
