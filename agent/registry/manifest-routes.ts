/**
 * GET/HEAD /v2/<name>/manifests/<reference>.
 *
 * Tags are mutable: resolved at the origin on every request (the client's Accept forwarded unchanged), the bytes
 * verified against the origin's Docker-Content-Digest, cached by their digest, and the tag's digest remembered for
 * stale-if-error. Digests are immutable: served from the cache after an authorization check, else fetched, verified
 * against the requested digest and cached for good. Bytes and Content-Type always go out exactly as the origin stored them.
 */
import { isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import { parseDigest, parseReference, sha256Digest, type Digest } from '../../shared/digest.ts';
import { withTimeout } from '../../shared/abort.ts';
import type { ManifestResult } from '../upstream/types.ts';
import type { CachedManifest } from '../manifests/manifest-cache.ts';
import type { PullRequest, RegistryContext } from './context.ts';

export async function handleManifest(ctx: RegistryContext, pull: PullRequest): Promise<void> {
  const reference = parseReference(pull.path.reference);
  const signal = withTimeout(pull.signal, ctx.settings.requestTimeout);
  if (reference.kind === 'digest') return await byDigest(ctx, pull, reference.digest, signal);
  return await byTag(ctx, pull, reference.tag, signal);
}

async function byDigest(ctx: RegistryContext, pull: PullRequest, digest: Digest, signal: AbortSignal): Promise<void> {
  const { registry, identity } = pull;
  const name = pull.path.name;
  const cached = await ctx.manifests.get(digest);
  if (cached) {
    await ctx.access.check(registry, name, identity, { kind: 'manifest', digest: digest.value }, signal);
    return send(ctx, pull, cached, 'cache');
  }
  const result = await fetchManifest(ctx, pull, digest.value, pull.method, signal);
  if (pull.method === 'HEAD') {
    if (result.digest !== undefined && result.digest !== digest.value) {
      throw new LayerswarmError('DIGEST_MISMATCH', `origin answered ${digest.value} with a manifest of digest ${result.digest}`);
    }
    ctx.access.record(registry, name, identity, digest.value);
    return sendHead(pull, digest.value, result.contentType, result.size);
  }
  const actual = sha256Digest(result.body);
  if (actual.value !== digest.value) {
    throw new LayerswarmError('DIGEST_MISMATCH', `origin sent a manifest of digest ${actual.value} for ${digest.value}; not cached`);
  }
  await ctx.manifests.put(result.body, result.contentType);
  ctx.access.record(registry, name, identity, digest.value);
  return send(ctx, pull, { digest, contentType: result.contentType, body: result.body }, 'origin');
}

async function byTag(ctx: RegistryContext, pull: PullRequest, tag: string, signal: AbortSignal): Promise<void> {
  const { registry, identity } = pull;
  const name = pull.path.name;
  let result: ManifestResult;
  try {
    // A HEAD whose origin answer lacks Docker-Content-Digest is turned into a GET: clients need the digest.
    result = await fetchManifest(ctx, pull, tag, pull.method, signal);
    if (pull.method === 'HEAD' && result.digest === undefined) result = await fetchManifest(ctx, pull, tag, 'GET', signal);
  } catch (err) {
    const stale = await staleTag(ctx, pull, tag, err);
    if (stale) return;
    throw err;
  }
  let digest: Digest;
  if (result.body.length > 0 || pull.method === 'GET') {
    digest = sha256Digest(result.body);
    if (result.digest !== undefined && result.digest !== digest.value) {
      throw new LayerswarmError('DIGEST_MISMATCH', `origin's manifest for ${name}:${tag} hashes to ${digest.value}, not to the ${result.digest} it claims`);
    }
    await ctx.manifests.put(result.body, result.contentType);
  } else {
    digest = parseDigest(result.digest ?? '');
  }
  await ctx.manifests.recordTag(registry.host, name, tag, digest.value, result.contentType);
  ctx.access.record(registry, name, identity, digest.value);
  if (pull.method === 'HEAD') return sendHead(pull, digest.value, result.contentType, result.size);
  return send(ctx, pull, { digest, contentType: result.contentType, body: result.body }, 'origin');
}

/** Answer a tag from its last known digest when the origin is unreachable. Returns false when that is not possible. */
async function staleTag(ctx: RegistryContext, pull: PullRequest, tag: string, err: unknown): Promise<boolean> {
  const unreachable = isLayerswarmError(err, 'UPSTREAM_UNAVAILABLE') || isLayerswarmError(err, 'UPSTREAM_TIMEOUT');
  if (!unreachable || !ctx.settings.staleIfError) return false;
  const { registry, identity } = pull;
  const name = pull.path.name;
  const last = await ctx.manifests.lastTag(registry.host, name, tag);
  if (!last) return false;
  const ageMs = ctx.now() - last.resolvedAt;
  if (ageMs > ctx.settings.staleMaxAge) return false;
  if (!ctx.access.allowedWithin(registry, name, identity, ctx.settings.staleMaxAge)) return false;
  const cached = await ctx.manifests.get(parseDigest(last.digest));
  if (!cached) return false;
  pull.request.log.warn({ err, registry: registry.host, name, tag, digest: last.digest, ageMs }, 'origin unreachable; answering tag from its last known digest');
  ctx.metrics.staleResponses.inc();
  pull.reply.header('X-Layerswarm-Stale', `age=${Math.round(ageMs / 1000)}`).header('Warning', '110 layerswarm "Response is Stale"');
  send(ctx, pull, cached, 'stale');
  return true;
}

async function fetchManifest(ctx: RegistryContext, pull: PullRequest, reference: string, method: 'GET' | 'HEAD', signal: AbortSignal): Promise<ManifestResult> {
  const accept = pull.request.headers.accept;
  return await ctx.upstream.manifest(pull.registry, pull.path.name, reference, {
    identity: pull.identity,
    signal,
    method,
    accept: Array.isArray(accept) ? accept.join(', ') : accept,
    maxBytes: ctx.settings.manifestMaxBytes,
  });
}

function send(ctx: RegistryContext, pull: PullRequest, manifest: CachedManifest, source: string): void {
  if (pull.method === 'GET') ctx.prefetcher?.schedule(pull.registry, pull.path.name, pull.identity, manifest.body, manifest.contentType);
  pull.reply
    .code(200)
    .header('Content-Type', manifest.contentType)
    .header('Docker-Content-Digest', manifest.digest.value)
    .header('Etag', `"${manifest.digest.value}"`)
    .header('Content-Length', manifest.body.length)
    .header('X-Layerswarm-Source', source);
  void pull.reply.send(pull.method === 'HEAD' ? undefined : manifest.body);
}

function sendHead(pull: PullRequest, digest: string, contentType: string, size: number): void {
  pull.reply
    .code(200)
    .header('Content-Type', contentType)
    .header('Docker-Content-Digest', digest)
    .header('Etag', `"${digest}"`)
    .header('Content-Length', size)
    .header('X-Layerswarm-Source', 'origin');
  void pull.reply.send();
}
