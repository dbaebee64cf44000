/**
 * Typed errors with stable codes.
 *
 * Every error that crosses a module boundary is a LayerswarmError with a code from ERROR_CODES. The code fixes the
 * HTTP status and the OCI error code the registry endpoint answers with, so callers never match on messages.
 */

/** code → [HTTP status, OCI distribution error code sent to clients]. */
export const ERROR_CODES = {
  // OCI distribution-spec codes, answered as they are.
  NAME_INVALID: [400, 'NAME_INVALID'],
  NAME_UNKNOWN: [404, 'NAME_UNKNOWN'],
  DIGEST_INVALID: [400, 'DIGEST_INVALID'],
  MANIFEST_UNKNOWN: [404, 'MANIFEST_UNKNOWN'],
  MANIFEST_INVALID: [400, 'MANIFEST_INVALID'],
  BLOB_UNKNOWN: [404, 'BLOB_UNKNOWN'],
  SIZE_INVALID: [400, 'SIZE_INVALID'],
  UNAUTHORIZED: [401, 'UNAUTHORIZED'],
  DENIED: [403, 'DENIED'],
  UNSUPPORTED: [405, 'UNSUPPORTED'],
  TOOMANYREQUESTS: [429, 'TOOMANYREQUESTS'],
  // layerswarm's own codes, answered with the closest OCI code.
  RANGE_NOT_SATISFIABLE: [416, 'SIZE_INVALID'],
  MANIFEST_TOO_LARGE: [413, 'SIZE_INVALID'],
  UPSTREAM_UNAVAILABLE: [502, 'UNAVAILABLE'],
  UPSTREAM_TIMEOUT: [504, 'UNAVAILABLE'],
  UPSTREAM_ERROR: [502, 'UNKNOWN'],
  DIGEST_MISMATCH: [502, 'DIGEST_INVALID'],
  SIZE_MISMATCH: [502, 'SIZE_INVALID'],
  REGISTRY_NOT_ALLOWED: [404, 'NAME_UNKNOWN'],
  METAINFO_INVALID: [502, 'UNKNOWN'],
  STORE_FULL: [507, 'UNAVAILABLE'],
  // Peer wire protocol (shared/wire): a protocol violation (ours or the peer's), and a peer that cannot be reached
  // or dropped the connection.
  PROTOCOL_ERROR: [502, 'UNKNOWN'],
  PEER_UNAVAILABLE: [502, 'UNAVAILABLE'],
  STORE_IO: [500, 'UNKNOWN'],
  ABORTED: [499, 'UNKNOWN'],
  CONFIG_INVALID: [500, 'UNKNOWN'],
  INTERNAL: [500, 'UNKNOWN'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorOptions {
  cause?: unknown;
  /** Structured detail sent to clients in the OCI error body (never secrets). */
  detail?: unknown;
  /** Override the code's default HTTP status (e.g. an upstream 503 passed through). */
  status?: number;
  /** Extra response headers (e.g. WWW-Authenticate on UNAUTHORIZED). */
  headers?: Record<string, string>;
}

export class LayerswarmError extends Error {
  override readonly name = 'LayerswarmError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code][0];
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  /** The OCI error code clients see. */
  get ociCode(): string {
    return ERROR_CODES[this.code][1];
  }
}

export function isLayerswarmError(err: unknown, code?: ErrorCode): err is LayerswarmError {
  return err instanceof LayerswarmError && (code === undefined || err.code === code);
}

/** True when err is (or wraps) an abort or timeout raised by an AbortSignal. */
export function isAbortError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.name === 'AbortError' || e.name === 'TimeoutError') return true;
    if (isLayerswarmError(e, 'ABORTED')) return true;
  }
  return false;
}

/** Wrap anything thrown into a LayerswarmError, keeping an existing one as it is. */
export function toLayerswarmError(err: unknown, fallback: ErrorCode = 'INTERNAL'): LayerswarmError {
  if (err instanceof LayerswarmError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new LayerswarmError(fallback, message, { cause: err });
}
