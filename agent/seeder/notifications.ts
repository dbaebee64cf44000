/**
 * The distribution registry's push notifications (config `notifications.endpoints`): an envelope of events,
 * Content-Type `application/vnd.docker.distribution.events.v1+json`:
 *
 *   {"events": [{"id", "timestamp", "action": "push" | "pull" | "mount" | "delete",
 *                "target": {"mediaType", "digest", "size", "length", "repository", "url", "tag"?},
 *                "request": {"id", "addr", "host", "method", "useragent"}, "actor": {}, "source": {"addr", "instanceID"}}]}
 *
 * A blob push has mediaType application/octet-stream (distribution does not know what the blob is); a manifest push
 * has the manifest's media type. What preheat acts on: pushed image manifests (their config and layers) and pushed
 * blobs. Index pushes are skipped: their platform manifests are pushed first, each with its own event. Everything
 * else (pulls, mounts, deletes, schema1) is ignored. Validation is strict: a malformed envelope, or a push event
 * without a valid digest and repository, rejects the whole envelope (400). Note that distribution retries a rejected
 * envelope (backoff, then again), holding back the events after it: a real registry never sends malformed ones.
 */
import { parseDigest, parseName } from '../../shared/digest.ts';
import { LayerswarmError } from '../../shared/errors.ts';

export const NOTIFICATION_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
export const MAX_EVENTS_PER_ENVELOPE = 1000;

export const IMAGE_MANIFEST_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);
export const INDEX_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

/** A 400 with the seeder's wire code REQUEST_INVALID. */
export class RequestInvalidError extends LayerswarmError {
  readonly wireCode = 'REQUEST_INVALID';

  constructor(message: string, detail?: unknown) {
    super('UNSUPPORTED', message, { status: 400, ...(detail !== undefined ? { detail } : {}) });
  }
}

export interface PushTarget {
  readonly kind: 'manifest' | 'blob';
  /** "sha256:<hex>", validated. */
  readonly digest: string;
  /** Validated repository name. */
  readonly repository: string;
  readonly mediaType: string;
  /** Bytes, when the event (or manifest descriptor) says. */
  readonly size?: number;
}

export interface ParsedNotification {
  /** Pushes to act on, in envelope order. */
  readonly targets: PushTarget[];
  /** Events ignored (pulls, mounts, deletes, index and schema1 pushes). */
  readonly ignored: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parse and validate an envelope (already JSON-decoded). Throws RequestInvalidError. */
export function parseNotification(body: unknown): ParsedNotification {
  if (!isObject(body)) throw new RequestInvalidError('notification envelope must be a JSON object');
  const events = body.events;
  if (!Array.isArray(events)) throw new RequestInvalidError('notification envelope has no "events" list');
  if (events.length > MAX_EVENTS_PER_ENVELOPE) throw new RequestInvalidError(`notification envelope holds ${events.length} events (at most ${MAX_EVENTS_PER_ENVELOPE})`);
  const targets: PushTarget[] = [];
  let ignored = 0;
  events.forEach((event: unknown, i) => {
    const bad = (why: string): RequestInvalidError => new RequestInvalidError(`events[${i}]: ${why}`, { event: i });
    if (!isObject(event)) throw bad('expected an object');
    if (typeof event.action !== 'string' || event.action === '') throw bad('"action" must be a string');
    if (!isObject(event.target)) throw bad('"target" must be an object');
    if (event.action !== 'push') {
      ignored++;
      return;
    }
    const t = event.target;
    if (typeof t.mediaType !== 'string' || t.mediaType.length > 255) throw bad('target.mediaType must be a string');
    if (typeof t.digest !== 'string') throw bad('target.digest must be a string');
    if (typeof t.repository !== 'string') throw bad('target.repository must be a string');
    let digest: string;
    let repository: string;
    try {
      digest = parseDigest(t.digest).value;
      repository = parseName(t.repository);
    } catch (err) {
      throw bad(err instanceof Error ? err.message : String(err));
    }
    const rawSize = t.size ?? t.length;
    if (rawSize !== undefined && (typeof rawSize !== 'number' || !Number.isSafeInteger(rawSize) || rawSize < 0)) throw bad('target.size must be a non-negative integer');
    const mediaType = t.mediaType.split(';')[0]?.trim() ?? '';
    const size = typeof rawSize === 'number' ? { size: rawSize } : {};
    if (IMAGE_MANIFEST_TYPES.has(mediaType)) {
      targets.push({ kind: 'manifest', digest, repository, mediaType, ...size });
    } else if (INDEX_TYPES.has(mediaType) || mediaType.includes('manifest')) {
      ignored++;
    } else {
      targets.push({ kind: 'blob', digest, repository, mediaType, ...size });
    }
  });
  return { targets, ignored };
}

export interface BlobDescriptor {
  readonly digest: string;
  readonly size?: number;
  readonly mediaType?: string;
}

/** Config and layers of an image manifest (its bytes, already checked against its digest). Throws MANIFEST_INVALID. */
export function blobsOfManifest(bytes: Buffer): BlobDescriptor[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new LayerswarmError('MANIFEST_INVALID', 'manifest is not JSON', { cause: err });
  }
  if (!isObject(parsed)) throw new LayerswarmError('MANIFEST_INVALID', 'manifest is not a JSON object');
  const layers = parsed.layers;
  if (!isObject(parsed.config) || !Array.isArray(layers)) throw new LayerswarmError('MANIFEST_INVALID', 'not an image manifest (config and layers expected)');
  return [parsed.config, ...(layers as unknown[])].map((d, i): BlobDescriptor => {
    if (!isObject(d) || typeof d.digest !== 'string') throw new LayerswarmError('MANIFEST_INVALID', `descriptor ${i} has no digest`);
    const digest = parseDigest(d.digest).value;
    const size = typeof d.size === 'number' && Number.isSafeInteger(d.size) && d.size >= 0 ? { size: d.size } : {};
    return { digest, ...size, ...(typeof d.mediaType === 'string' ? { mediaType: d.mediaType } : {}) };
  });
}
