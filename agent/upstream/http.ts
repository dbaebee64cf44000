/**
 * HTTP transport for the upstream client: undici with connect / headers / body-idle timeouts, a deadline up to the
 * response headers combined with the caller's signal, manual redirects (Authorization only to the origin it belongs
 * to), bounded body reads, and the mapping of transport failures onto LayerswarmError codes.
 */
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { LayerswarmError, type ErrorCode } from '../../shared/errors.ts';

export interface HttpTimeouts {
  /** TCP (+TLS) connect, DNS included. */
  readonly connectMs: number;
  /** From the request being sent to the complete response headers. */
  readonly headersMs: number;
  /** Longest silence while a body is being received (never counted while the reader applies backpressure). */
  readonly bodyIdleMs: number;
}

export type Headers = Record<string, string>;
export type ResponseHeaders = Record<string, string | string[] | undefined>;

export function createDispatcher(timeouts: HttpTimeouts): Dispatcher {
  return new Agent({
    connect: { timeout: timeouts.connectMs },
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyIdleMs,
  });
}

export interface SendOptions {
  readonly dispatcher: Dispatcher;
  readonly method: 'GET' | 'HEAD' | 'POST';
  readonly url: URL;
  readonly headers: Headers;
  readonly body?: string;
  /** The caller's signal: aborts the request, including its body stream, at any time. */
  readonly signal: AbortSignal;
  /** Deadline of each round trip (redirect hops each get one) until its response headers. */
  readonly deadlineMs: number;
  /** A body stream fails with UPSTREAM_TIMEOUT after this long without a byte while its reader wants data. */
  readonly bodyIdleMs: number;
  /** Redirects followed (0: a 3xx is returned as it is). */
  readonly maxRedirects: number;
  /** Called after each round trip (redirect hops included) with its status (0 when it failed). */
  readonly onHop?: (hop: { url: URL; status: number; durationMs: number }) => void;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: ResponseHeaders;
  /** Where the response came from (after redirects). */
  readonly url: URL;
  /** undici's body: use stream(), discard() or cancel() rather than reading it directly. */
  readonly raw: Readable & { dump?: (options: { limit: number }) => Promise<void> };
  /** The body as a stream with LayerswarmError errors and the idle timeout. Call at most once. */
  stream(): Readable;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Send a request; resolves at the final response's headers. The deadline stops applying then (bodies are guarded by
 * the idle timeout), the caller's signal keeps applying until the body is consumed or destroyed.
 * Rejects with ABORTED, UPSTREAM_TIMEOUT, UPSTREAM_UNAVAILABLE or UPSTREAM_ERROR.
 */
export async function send(options: SendOptions): Promise<HttpResponse> {
  const { signal } = options;
  if (signal.aborted) throw abortError(signal, `${options.method} ${safeUrl(options.url)}`);
  const controller = new AbortController();
  let deadlineHit = false;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const release = (): void => signal.removeEventListener('abort', onAbort);
  let url = options.url;
  const authOrigin = options.url.origin;
  try {
    for (let hop = 0; ; hop++) {
      const headers = { ...options.headers };
      if (url.origin !== authOrigin) delete headers.authorization;
      const started = performance.now();
      timer = setTimeout(() => {
        deadlineHit = true;
        controller.abort(new DOMException('upstream deadline', 'TimeoutError'));
      }, options.deadlineMs);
      let res: Dispatcher.ResponseData;
      try {
        const once = (): Promise<Dispatcher.ResponseData> => request(url, {
          dispatcher: options.dispatcher,
          method: options.method,
          headers,
          signal: controller.signal,
          ...(options.body !== undefined ? { body: options.body } : {}),
        });
        try {
          res = await once();
        } catch (err) {
          // A kept-alive connection the server had just closed ("other side closed", reset before any response):
          // an idempotent request without a body is sent once more on a fresh connection, as Go's and curl's
          // clients do. Seen under load in the 500-agent rollout: the HEAD failed and the agent fetched the blob
          // from the origin instead of the swarm.
          if (!isStaleConnection(err, options) || controller.signal.aborted) throw err;
          res = await once();
        }
      } catch (err) {
        options.onHop?.({ url, status: 0, durationMs: performance.now() - started });
        throw err;
      } finally {
        clearTimeout(timer);
      }
      options.onHop?.({ url, status: res.statusCode, durationMs: performance.now() - started });
      if (!REDIRECTS.has(res.statusCode) || options.maxRedirects === 0) {
        const raw = res.body;
        raw.once('close', release);
        const finalUrl = url;
        const what = `${options.method} ${safeUrl(finalUrl)}`;
        return {
          status: res.statusCode,
          headers: res.headers,
          url: finalUrl,
          raw,
          stream: () => mappedBody(raw, signal, what, options.bodyIdleMs),
        };
      }
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const location = headerValue(res.headers, 'location');
      if (location === undefined) {
        throw new LayerswarmError('UPSTREAM_ERROR', `${safeUrl(url)}: redirect ${res.statusCode} without Location`);
      }
      if (hop + 1 > options.maxRedirects) {
        throw new LayerswarmError('UPSTREAM_ERROR', `${safeUrl(options.url)}: more than ${options.maxRedirects} redirects`);
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (err) {
        throw new LayerswarmError('UPSTREAM_ERROR', `${safeUrl(url)}: invalid redirect Location`, { cause: err });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new LayerswarmError('UPSTREAM_ERROR', `${safeUrl(url)}: redirect to unsupported scheme ${next.protocol}`);
      }
      url = next;
    }
  } catch (err) {
    release();
    throw mapTransportError(err, signal, deadlineHit, `${options.method} ${safeUrl(url)}`);
  }
}

/** Read a whole body, failing with `tooLarge()` (and cancelling the request) past `maxBytes`. */
export async function readCapped(res: HttpResponse, maxBytes: number, tooLarge: () => LayerswarmError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const body = res.stream();
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Cancel a response's body (and its request). */
export function cancel(res: HttpResponse): void {
  cancelRaw(res.raw);
}

/** An undici body destroyed without an error emits one: it must not go unheard. */
function cancelRaw(raw: Readable): void {
  if (raw.destroyed) return;
  raw.on('error', ignore);
  raw.destroy();
}

function ignore(): void {
  // the body was cancelled on purpose
}

/** Discard what is left of a body (small ones are drained so the connection can be reused). */
export async function discard(res: HttpResponse): Promise<void> {
  if (typeof res.raw.dump === 'function') await res.raw.dump({ limit: 64 * 1024 }).catch(() => undefined);
  else cancelRaw(res.raw);
}

/**
 * `src` with LayerswarmError errors (cut connection → UPSTREAM_UNAVAILABLE, caller abort → ABORTED) and an idle
 * timeout (UPSTREAM_TIMEOUT after `idleMs` without a byte, not counted while the reader is not asking for data).
 * Destroying it cancels the upstream request.
 */
function mappedBody(src: Readable, signal: AbortSignal, what: string, idleMs: number): Readable {
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    if (timer !== undefined) timer.refresh();
    else timer = setTimeout(onIdle, idleMs);
  };
  const disarm = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  const out = new Readable({
    read() {
      arm();
      src.resume();
    },
    destroy(err, callback) {
      disarm();
      cancelRaw(src);
      callback(err);
    },
  });
  function onIdle(): void {
    timer = undefined;
    out.destroy(new LayerswarmError('UPSTREAM_TIMEOUT', `${what}: no data for ${idleMs} ms`));
  }
  src.on('data', (chunk: Buffer) => {
    if (out.push(chunk)) {
      arm();
    } else {
      disarm();
      src.pause();
    }
  });
  src.once('end', () => {
    ended = true;
    disarm();
    out.push(null);
  });
  src.on('error', (err) => out.destroy(mapTransportError(err, signal, false, what)));
  src.once('close', () => {
    if (!ended && !out.destroyed) {
      out.destroy(signal.aborted ? abortError(signal, what) : new LayerswarmError('UPSTREAM_UNAVAILABLE', `${what}: body closed early`));
    }
  });
  // Readers see errors through pipeline() / async iteration / their own listener. This one only keeps a stream nobody
  // reads (a caller that dropped it without destroying it) from crashing the process when its idle timer fires.
  out.on('error', ignore);
  arm();
  return out;
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EHOSTUNREACH',
  'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EADDRNOTAVAIL', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN', 'EPROTO',
]);

/** Map whatever a request or body read threw onto ABORTED / UPSTREAM_TIMEOUT / UPSTREAM_UNAVAILABLE / UPSTREAM_ERROR. */
export function mapTransportError(err: unknown, signal: AbortSignal, deadlineHit: boolean, what: string): LayerswarmError {
  if (err instanceof LayerswarmError) return err;
  if (signal.aborted) return abortError(signal, what);
  if (deadlineHit) return new LayerswarmError('UPSTREAM_TIMEOUT', `${what}: no response in time`, { cause: err });
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  let mapped: ErrorCode = 'UPSTREAM_ERROR';
  if (code !== undefined && TIMEOUT_CODES.has(code)) mapped = 'UPSTREAM_TIMEOUT';
  else if (code !== undefined && UNAVAILABLE_CODES.has(code)) mapped = 'UPSTREAM_UNAVAILABLE';
  else if (code === 'UND_ERR_ABORTED' || (err instanceof Error && err.name === 'AbortError')) mapped = 'ABORTED';
  return new LayerswarmError(mapped, `${what}: ${message}${code !== undefined ? ` (${code})` : ''}`, {
    cause: err,
    detail: { reason: code ?? message },
  });
}

/** ABORTED for the caller's abort; UPSTREAM_TIMEOUT when that signal fired because of a deadline. */
export function abortError(signal: AbortSignal, what: string): LayerswarmError {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new LayerswarmError('UPSTREAM_TIMEOUT', `${what}: timed out`, { cause: reason });
  }
  return new LayerswarmError('ABORTED', `${what}: aborted`, { cause: reason });
}

const STALE_CONNECTION_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/** The request failed on a connection the server closed, and sending it again is safe (GET/HEAD, no body). */
function isStaleConnection(err: unknown, options: SendOptions): boolean {
  if ((options.method !== 'GET' && options.method !== 'HEAD') || options.body !== undefined) return false;
  const code = errorCode(err);
  return code !== undefined && STALE_CONNECTION_CODES.has(code);
}

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** A header's value; several values (a repeated header) joined with ", ". */
export function headerValue(headers: ResponseHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? (v.length > 0 ? v.join(', ') : undefined) : v;
}

/** A URL for logs and messages: no userinfo, no query (storage redirects carry signatures there). */
export function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}
