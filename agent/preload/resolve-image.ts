/**
 * Resolve an image to the blobs a node needs: the manifest (by tag or digest), and for an index every platform
 * manifest (or the one matching `platform`, e.g. linux/amd64 or linux/arm64/v8), each checked against its digest.
 * Attestation entries (platform unknown/unknown) are skipped. Used by the seeder's preheat and the agent's preload;
 * each passes its own way of reading a manifest (the seeder's upstream client, the agent's own manifest route).
 */
import { sha256Digest } from '../../shared/digest.ts';
import { isAbortError, isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import { blobsOfManifest, IMAGE_MANIFEST_TYPES, INDEX_TYPES } from '../seeder/notifications.ts';
import { formatImageReference, type ImageReference } from './image-ref.ts';

export const ACCEPT_MANIFESTS = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Platform manifests of one index at most. */
export const MAX_PLATFORM_MANIFESTS = 64;

export interface FetchedManifest {
  readonly body: Buffer;
  readonly contentType: string;
  /** Docker-Content-Digest, when the registry sent one. */
  readonly digest?: string | undefined;
}

/** GET a manifest by tag or digest (Accept: ACCEPT_MANIFESTS). Rejects with LayerswarmError. */
export type ManifestReader = (reference: string, signal: AbortSignal) => Promise<FetchedManifest>;

export interface ImageBlob {
  readonly digest: string;
  readonly kind: 'config' | 'layer';
  readonly size?: number;
  readonly mediaType?: string;
  /** Platforms (os/arch[/variant]) whose manifest names it; empty for a single-platform image. */
  readonly platforms: string[];
}

export interface ResolvedImage {
  /** Digest of the manifest or index the reference resolved to. */
  readonly digest: string;
  readonly mediaType: string;
  readonly manifests: ReadonlyArray<{ readonly digest: string; readonly platform?: string }>;
  /** Config and layers of every selected manifest, each digest once, in manifest order. */
  readonly blobs: ImageBlob[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function platformOf(entry: Record<string, unknown>): string | undefined {
  const p = entry.platform;
  if (!isObject(p) || typeof p.os !== 'string' || typeof p.architecture !== 'string') return undefined;
  return [p.os, p.architecture, ...(typeof p.variant === 'string' && p.variant !== '' ? [p.variant] : [])].join('/');
}

/** linux/arm64 matches linux/arm64/v8 (the variant is optional when asked without one). */
function platformMatches(have: string | undefined, want: string): boolean {
  if (have === undefined) return false;
  return have === want || (want.split('/').length === 2 && have.startsWith(`${want}/`));
}

function mediaTypeOf(fetched: FetchedManifest): string {
  try {
    const parsed: unknown = JSON.parse(fetched.body.toString('utf8'));
    if (isObject(parsed) && typeof parsed.mediaType === 'string') return parsed.mediaType;
  } catch {
    // blobsOfManifest reports it
  }
  return fetched.contentType.split(';')[0]?.trim() ?? '';
}

function verify(fetched: FetchedManifest, expected: string | undefined, what: string): string {
  const actual = sha256Digest(fetched.body).value;
  const claimed = expected ?? fetched.digest;
  if (claimed !== undefined && claimed !== actual) throw new LayerswarmError('DIGEST_MISMATCH', `${what} hashes to ${actual}, not to ${claimed}`);
  return actual;
}

/**
 * Throws MANIFEST_UNKNOWN (unknown image or platform), MANIFEST_INVALID, DIGEST_MISMATCH, UPSTREAM_TIMEOUT (`signal`
 * aborted: it is the resolution's deadline), or the reader's errors.
 */
export async function resolveImage(read: ManifestReader, ref: ImageReference, platform: string | undefined, signal: AbortSignal): Promise<ResolvedImage> {
  try {
    return await resolve(read, ref, platform, signal);
  } catch (err) {
    if (signal.aborted && isAbortError(err)) throw new LayerswarmError('UPSTREAM_TIMEOUT', `resolving image ${formatImageReference(ref)} took too long`, { cause: err });
    throw err;
  }
}

async function resolve(read: ManifestReader, ref: ImageReference, platform: string | undefined, signal: AbortSignal): Promise<ResolvedImage> {
  const name = formatImageReference(ref);
  let top: FetchedManifest;
  try {
    top = await read(ref.reference, signal);
  } catch (err) {
    // distribution answers NAME_UNKNOWN for a repository it does not have: for the user, the image is unknown.
    if (isLayerswarmError(err, 'MANIFEST_UNKNOWN') || isLayerswarmError(err, 'NAME_UNKNOWN')) {
      throw new LayerswarmError('MANIFEST_UNKNOWN', `image ${name} not found (${err.message})`, { cause: err, detail: { image: name } });
    }
    throw err;
  }
  const digest = verify(top, ref.reference.startsWith('sha256:') ? ref.reference : undefined, `manifest of ${name}`);
  const mediaType = mediaTypeOf(top);
  const blobs = new Map<string, { digest: string; kind: 'config' | 'layer'; size?: number; mediaType?: string; platforms: string[] }>();
  const add = (bytes: Buffer, plat: string | undefined): void => {
    blobsOfManifest(bytes).forEach((b, i) => {
      const known = blobs.get(b.digest);
      if (known) {
        if (plat !== undefined) known.platforms.push(plat);
        return;
      }
      blobs.set(b.digest, { ...b, kind: i === 0 ? 'config' : 'layer', platforms: plat === undefined ? [] : [plat] });
    });
  };
  if (!INDEX_TYPES.has(mediaType)) {
    if (!IMAGE_MANIFEST_TYPES.has(mediaType) && mediaType !== '') throw new LayerswarmError('MANIFEST_INVALID', `${name} is a ${mediaType}, not an image manifest or index`);
    // A single-platform image is taken as it is, whatever `platform` asks for: a node pulls what exists.
    add(top.body, undefined);
    return { digest, mediaType, manifests: [{ digest }], blobs: [...blobs.values()] };
  }
  const parsed = JSON.parse(top.body.toString('utf8')) as unknown;
  const entries = isObject(parsed) && Array.isArray(parsed.manifests) ? parsed.manifests.filter(isObject) : [];
  const all = entries
    .map((e) => ({ digest: typeof e.digest === 'string' ? e.digest : '', platform: platformOf(e) }))
    .filter((e) => e.digest !== '' && e.platform !== 'unknown/unknown');
  const chosen = platform === undefined ? all : all.filter((e) => platformMatches(e.platform, platform));
  if (chosen.length === 0) {
    const have = all.map((e) => e.platform ?? '?').join(', ') || 'none';
    throw new LayerswarmError('MANIFEST_UNKNOWN', `image ${name} has no manifest for platform ${platform ?? '(any)'} (platforms: ${have})`, { detail: { image: name, platform } });
  }
  if (chosen.length > MAX_PLATFORM_MANIFESTS) throw new LayerswarmError('MANIFEST_INVALID', `index ${name} lists ${chosen.length} platform manifests (at most ${MAX_PLATFORM_MANIFESTS}); choose one with platform`);
  const manifests: Array<{ digest: string; platform?: string }> = [];
  for (const entry of chosen) {
    const fetched = await read(entry.digest, signal);
    verify(fetched, entry.digest, `manifest ${entry.digest} of ${name}`);
    add(fetched.body, entry.platform);
    manifests.push({ digest: entry.digest, ...(entry.platform !== undefined ? { platform: entry.platform } : {}) });
  }
  return { digest, mediaType, manifests, blobs: [...blobs.values()] };
}
