/**
 * The tracker's wire error codes. Every error leaves the tracker as {errors: [{code, message, detail}]} with one of
 * these codes and the status it fixes; TrackerClient turns them back into TrackerError. A TrackerError is a
 * LayerswarmError with the closest shared code, so code that only knows shared codes (isLayerswarmError) still works.
 */
import { LayerswarmError, type ErrorCode } from '../shared/errors.ts';

/** tracker code → [HTTP status, closest shared ErrorCode]. */
export const TRACKER_ERROR_CODES = {
  /** The request failed schema validation or a semantic check (bad peer id, address, port ...). */
  REQUEST_INVALID: [400, 'UNSUPPORTED'],
  DIGEST_INVALID: [400, 'DIGEST_INVALID'],
  /** Missing or wrong seeder token on a seeder-only endpoint. */
  UNAUTHORIZED: [401, 'UNAUTHORIZED'],
  NOT_FOUND: [404, 'NAME_UNKNOWN'],
  /** No metainfo for the digest and no repository given to produce it from. */
  METAINFO_UNKNOWN: [404, 'BLOB_UNKNOWN'],
  /** A PUT metainfo differs from the one already known for the digest. */
  METAINFO_CONFLICT: [409, 'METAINFO_INVALID'],
  /** The swarm holds maxPeersPerSwarm live peers. */
  SWARM_FULL: [429, 'TOOMANYREQUESTS'],
  /** maxSwarms, maxPeers, maxSeeders or maxMetainfoRequests reached. */
  TRACKER_FULL: [503, 'TOOMANYREQUESTS'],
  /** No live seeder is registered to produce metainfo. */
  NO_SEEDER: [503, 'UPSTREAM_UNAVAILABLE'],
  /** The seeder answered with an error or could not be reached. */
  SEEDER_FAILED: [502, 'UPSTREAM_ERROR'],
  SEEDER_TIMEOUT: [504, 'UPSTREAM_TIMEOUT'],
  /** Metainfo failed validation (from a seeder: 502; in a PUT: 400). */
  METAINFO_INVALID: [502, 'METAINFO_INVALID'],
  SHUTTING_DOWN: [503, 'UPSTREAM_UNAVAILABLE'],
  // Client side only: the tracker itself could not be reached or answered nonsense.
  TRACKER_UNAVAILABLE: [503, 'UPSTREAM_UNAVAILABLE'],
  TRACKER_TIMEOUT: [504, 'UPSTREAM_TIMEOUT'],
  TRACKER_ERROR: [502, 'UPSTREAM_ERROR'],
  ABORTED: [499, 'ABORTED'],
  INTERNAL: [500, 'INTERNAL'],
} as const satisfies Record<string, readonly [number, ErrorCode]>;

export type TrackerErrorCode = keyof typeof TRACKER_ERROR_CODES;

export interface TrackerErrorOptions {
  cause?: unknown;
  detail?: unknown;
  status?: number;
  headers?: Record<string, string>;
}

export class TrackerError extends LayerswarmError {
  readonly trackerCode: TrackerErrorCode;

  constructor(code: TrackerErrorCode, message: string, options: TrackerErrorOptions = {}) {
    const [status, shared] = TRACKER_ERROR_CODES[code];
    super(shared, message, { ...options, status: options.status ?? status });
    this.trackerCode = code;
  }
}

export function isTrackerError(err: unknown, code?: TrackerErrorCode): err is TrackerError {
  return err instanceof TrackerError && (code === undefined || err.trackerCode === code);
}

export function isTrackerErrorCode(code: unknown): code is TrackerErrorCode {
  return typeof code === 'string' && Object.hasOwn(TRACKER_ERROR_CODES, code);
}

/** The tracker code for any error: its own, or the closest one for a shared LayerswarmError. */
export function trackerCodeOf(err: LayerswarmError): TrackerErrorCode {
  if (err instanceof TrackerError) return err.trackerCode;
  switch (err.code) {
    case 'DIGEST_INVALID': return 'DIGEST_INVALID';
    case 'METAINFO_INVALID': return 'METAINFO_INVALID';
    case 'NAME_INVALID': case 'UNSUPPORTED': case 'SIZE_INVALID': return 'REQUEST_INVALID';
    case 'ABORTED': return 'ABORTED';
    default: return err.status === 404 ? 'NOT_FOUND' : err.status < 500 ? 'REQUEST_INVALID' : 'INTERNAL';
  }
}
