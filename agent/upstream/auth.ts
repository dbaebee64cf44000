/**
 * Answering an origin's challenge: which Authorization header a request carries for an identity.
 *
 * - identity 'bearer': the client's token, forwarded unchanged; never fetches anything.
 * - identity 'basic': the client's credentials; identity 'agent': the registry's configured credentials, or none.
 * - Basic challenge: `Basic base64(user:pass)` when there are credentials (else nothing can be sent).
 * - Bearer challenge: a token from the realm (docker token spec), cached per (host, identity, scope). With credentials
 *   the OAuth2 password grant is POSTed first (containerd's way), falling back to `GET realm?service=&scope=` with
 *   Basic auth when the token service does not take the POST; without credentials an anonymous GET.
 */
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { BasicChallenge, BearerChallenge } from './challenge.ts';
import { abortError, headerValue, readCapped, safeUrl, send, type HttpResponse } from './http.ts';
import type { FetchedToken, TokenCache, TokenKey } from './token-cache.ts';
import { identityKey, type Credentials, type Identity, type UpstreamRegistry } from './types.ts';

export const CLIENT_ID = 'layerswarm';
/** Largest token response read. */
export const MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024;
/** Token characters accepted: visible ASCII (a token goes into a header). */
const TOKEN_RE = /^[\x21-\x7e]+$/;

export interface AuthRequest {
  readonly registry: UpstreamRegistry;
  readonly identity: Identity;
  /** e.g. "repository:library/alpine:pull"; "" for none (the /v2/ endpoint). */
  readonly scope: string;
  readonly signal: AbortSignal;
  /** The origin's WWW-Authenticate as received, relayed on UNAUTHORIZED so the client can answer it itself. */
  readonly challengeHeader?: string;
}

export interface AuthenticatorOptions {
  readonly dispatcher: Dispatcher;
  readonly tokenCache: TokenCache;
  readonly logger: Logger;
  /** Deadline of one token request (each attempt of the POST → GET fallback). */
  readonly tokenTimeoutMs: number;
  readonly userAgent: string;
  readonly onTokenRequest?: (event: { registry: string; status: number; durationMs: number }) => void;
}

export function repositoryScope(upstreamName: string): string {
  return `repository:${upstreamName}:pull`;
}

/** The credentials an identity authenticates with at `registry` (undefined: anonymous, or a bearer identity). */
export function credentialsFor(registry: UpstreamRegistry, identity: Identity): Credentials | undefined {
  if (identity.kind === 'basic') return identity.credentials;
  if (identity.kind === 'agent') return registry.credentials;
  return undefined;
}

function hashCredentials(credentials: Credentials): string {
  return createHash('sha256').update(`${credentials.username}:${credentials.password}`, 'utf8').digest('hex').slice(0, 32);
}

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** A token service URL from a challenge: absolute http(s), no userinfo. Throws UPSTREAM_ERROR. */
export function validateRealm(realm: string | undefined): URL {
  if (realm === undefined || realm === '') {
    throw new LayerswarmError('UPSTREAM_ERROR', 'origin sent a Bearer challenge without a realm');
  }
  let url: URL;
  try {
    url = new URL(realm);
  } catch (err) {
    throw new LayerswarmError('UPSTREAM_ERROR', 'origin sent an invalid token realm', { cause: err, detail: { realm: realm.slice(0, 200) } });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new LayerswarmError('UPSTREAM_ERROR', `token realm must be http(s), got ${url.protocol}`, { detail: { realm: safeUrl(url) } });
  }
  if (url.username !== '' || url.password !== '') {
    throw new LayerswarmError('UPSTREAM_ERROR', 'token realm must not contain credentials', { detail: { realm: safeUrl(url) } });
  }
  return url;
}

export class Authenticator {
  readonly #options: AuthenticatorOptions;
  readonly #log: Logger;

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
    this.#log = options.logger;
  }

  /**
   * The Authorization header answering `challenge` (undefined when this identity has nothing to answer it with).
   * Rejects with UNAUTHORIZED / DENIED / TOOMANYREQUESTS / UPSTREAM_* / ABORTED from the token service.
   */
  async authorize(req: AuthRequest, challenge: BasicChallenge | BearerChallenge): Promise<string | undefined> {
    if (req.identity.kind === 'bearer') return `Bearer ${req.identity.token}`;
    const credentials = credentialsFor(req.registry, req.identity);
    if (challenge.scheme === 'basic') return credentials ? basicAuthorization(credentials) : undefined;
    const realm = validateRealm(challenge.realm);
    if (req.signal.aborted) throw abortError(req.signal, 'token request');
    const token = await this.#options.tokenCache.getOrFetch(
      this.tokenKey(req),
      () => this.#fetchToken(req, realm, challenge.service, credentials),
      req.signal,
    );
    return `Bearer ${token}`;
  }

  /** The Authorization a request can carry without a round trip: a cached token, or none. */
  cached(req: AuthRequest): string | undefined {
    if (req.identity.kind === 'bearer') return `Bearer ${req.identity.token}`;
    const token = this.#options.tokenCache.get(this.tokenKey(req));
    return token === undefined ? undefined : `Bearer ${token}`;
  }

  /** Forget a token the origin refused. */
  invalidate(req: AuthRequest, authorization: string): void {
    if (req.identity.kind === 'bearer' || !authorization.startsWith('Bearer ')) return;
    this.#options.tokenCache.delete(this.tokenKey(req), authorization.slice('Bearer '.length));
  }

  /**
   * The token cache key. The agent identity is split by the credentials it uses at this registry (anonymous or which
   * ones, hashed), so a token fetched with one set is never sent on behalf of another.
   */
  tokenKey(req: AuthRequest): TokenKey {
    let key = identityKey(req.identity);
    if (req.identity.kind === 'agent') {
      const creds = req.registry.credentials;
      key = creds === undefined ? 'agent:anonymous' : `agent:${hashCredentials(creds)}`;
    }
    return { host: req.registry.host, identityKey: key, scope: req.scope };
  }

  async #fetchToken(req: AuthRequest, realm: URL, service: string | undefined, credentials: Credentials | undefined): Promise<FetchedToken> {
    if (credentials !== undefined) {
      const form = new URLSearchParams({ grant_type: 'password', username: credentials.username, password: credentials.password });
      if (service !== undefined) form.set('service', service);
      if (req.scope !== '') form.set('scope', req.scope);
      form.set('client_id', CLIENT_ID);
      const posted = await this.#tokenRequest(req, 'POST', realm, {
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      }, form.toString());
      if (posted.kind === 'token') return posted.token;
      this.#log.debug({ registry: req.registry.host, status: posted.status }, 'token POST not supported, falling back to GET');
    }
    const url = new URL(realm);
    if (service !== undefined) url.searchParams.set('service', service);
    if (req.scope !== '') url.searchParams.append('scope', req.scope);
    const headers: Record<string, string> = credentials !== undefined ? { authorization: basicAuthorization(credentials) } : {};
    const got = await this.#tokenRequest(req, 'GET', url, headers);
    if (got.kind === 'token') return got.token;
    throw new LayerswarmError('UPSTREAM_ERROR', `token service ${safeUrl(url)} answered ${got.status}`, { detail: got.detail });
  }

  /** One token request. POST answers that mean "no password grant here" come back as 'fallback'; others throw. */
  async #tokenRequest(
    req: AuthRequest,
    method: 'GET' | 'POST',
    url: URL,
    headers: Record<string, string>,
    body?: string,
  ): Promise<{ kind: 'token'; token: FetchedToken } | { kind: 'fallback'; status: number; detail: unknown }> {
    const { tokenTimeoutMs } = this.#options;
    const what = `token ${method} ${safeUrl(url)}`;
    const signal = AbortSignal.timeout(tokenTimeoutMs);
    const started = performance.now();
    let status = 0;
    try {
      const res = await send({
        dispatcher: this.#options.dispatcher,
        method,
        url,
        headers: { 'user-agent': this.#options.userAgent, accept: 'application/json', ...headers },
        ...(body !== undefined ? { body } : {}),
        signal,
        deadlineMs: tokenTimeoutMs,
        bodyIdleMs: tokenTimeoutMs,
        maxRedirects: 0,
      });
      status = res.status;
      const text = (await readCapped(res, MAX_TOKEN_RESPONSE_BYTES, () => new LayerswarmError('UPSTREAM_ERROR', `${what}: response too large`))).toString('utf8');
      if (status === 200) return { kind: 'token', token: parseTokenResponse(text, what) };
      const detail = errorDetail(text);
      if (method === 'POST' && isPostUnsupported(status, detail)) return { kind: 'fallback', status, detail };
      throw tokenError(status, res, detail, what, req.challengeHeader);
    } finally {
      const durationMs = performance.now() - started;
      this.#log.debug({ registry: req.registry.host, method, url: safeUrl(url), scope: req.scope, status, durationMs }, 'token request');
      this.#options.onTokenRequest?.({ registry: req.registry.host, status, durationMs });
    }
  }
}

/**
 * Whether a POST's failure means "use GET": 404/405 (no such endpoint), 401 (some services only take Basic on GET,
 * as containerd also assumes), 400 unless the service says the credentials are wrong (invalid_grant).
 */
function isPostUnsupported(status: number, detail: TokenErrorDetail): boolean {
  if (status === 404 || status === 405 || status === 401) return true;
  return status === 400 && detail.error !== 'invalid_grant' && detail.error !== 'invalid_client';
}

interface TokenErrorDetail {
  error?: string;
  message?: string;
}

function errorDetail(text: string): TokenErrorDetail {
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    const errors = Array.isArray(json.errors) ? (json.errors[0] as Record<string, unknown> | undefined) : undefined;
    const error = typeof json.error === 'string' ? json.error : typeof errors?.code === 'string' ? errors.code : undefined;
    const message =
      typeof json.error_description === 'string' ? json.error_description
        : typeof json.details === 'string' ? json.details
          : typeof errors?.message === 'string' ? errors.message
            : undefined;
    return { ...(error !== undefined ? { error } : {}), ...(message !== undefined ? { message } : {}) };
  } catch {
    const message = text.trim().slice(0, 200);
    return message !== '' ? { message } : {};
  }
}

function tokenError(status: number, res: HttpResponse, detail: TokenErrorDetail, what: string, challenge: string | undefined): LayerswarmError {
  const suffix = detail.message !== undefined ? `: ${detail.message}` : detail.error !== undefined ? `: ${detail.error}` : '';
  const d = { upstreamStatus: status, ...detail };
  if (status === 401 || (status === 400 && (detail.error === 'invalid_grant' || detail.error === 'invalid_client'))) {
    return new LayerswarmError('UNAUTHORIZED', `${what}: credentials rejected${suffix}`, {
      detail: d,
      ...(challenge !== undefined ? { headers: { 'WWW-Authenticate': challenge } } : {}),
    });
  }
  if (status === 403) return new LayerswarmError('DENIED', `${what}: access denied${suffix}`, { detail: d });
  if (status === 429) {
    const retryAfter = headerValue(res.headers, 'retry-after');
    return new LayerswarmError('TOOMANYREQUESTS', `${what}: too many requests${suffix}`, {
      detail: d,
      ...(retryAfter !== undefined ? { headers: { 'Retry-After': retryAfter } } : {}),
    });
  }
  if (status >= 500) return new LayerswarmError('UPSTREAM_UNAVAILABLE', `${what}: ${status}${suffix}`, { detail: d });
  return new LayerswarmError('UPSTREAM_ERROR', `${what}: unexpected status ${status}${suffix}`, { detail: d });
}

/** `{"token": …}` or `{"access_token": …}` (OAuth2), with optional expires_in (seconds). */
export function parseTokenResponse(text: string, what = 'token response'): FetchedToken {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new LayerswarmError('UPSTREAM_ERROR', `${what}: not JSON`, { cause: err });
  }
  if (typeof json !== 'object' || json === null) throw new LayerswarmError('UPSTREAM_ERROR', `${what}: not a JSON object`);
  const o = json as Record<string, unknown>;
  const token = typeof o.access_token === 'string' && o.access_token !== '' ? o.access_token : o.token;
  if (typeof token !== 'string' || token === '') throw new LayerswarmError('UPSTREAM_ERROR', `${what}: no token in the response`);
  if (!TOKEN_RE.test(token)) throw new LayerswarmError('UPSTREAM_ERROR', `${what}: token has invalid characters`);
  const expires = o.expires_in;
  return typeof expires === 'number' && Number.isFinite(expires) && expires > 0 ? { token, expiresInSeconds: expires } : { token };
}
