/**
 * GET/HEAD /v2/<name>/blobs/<digest>.
 *
 * Every blob is served from the store, i.e. only after its full sha256 was verified: a cache miss waits for the
 * (shared) verified download, then streams from disk. Before any stored byte goes out, the origin's authorization of
 * this client for this repository and blob is confirmed (AccessChecker).
 */
import { LayerswarmError } from '../../shared/errors.ts';
import { parseDigest, type Digest } from '../../shared/digest.ts';
import { withTimeout } from '../../shared/abort.ts';
import type { BlobReader } from '../store/blob-store.ts';
import type { PullRequest, RegistryContext } from './context.ts';
import { parseRange } from './range.ts';

export async function handleBlob(ctx: RegistryContext, pull: PullRequest): Promise<void> {
  const digest = parseDigest(pull.path.reference);
  const { registry, identity, reply } = pull;
  const name = pull.path.name;
  // Each origin check gets its own deadline: the one after a long swarm download starts when the download ends
  // (a deadline from the request's start had expired by then, and the check fell back to a stale decision).
  const checkSignal = (): AbortSignal => withTimeout(pull.signal, ctx.settings.requestTimeout);

  if (pull.method === 'HEAD') {
    const stored = await ctx.store.stat(digest);
    let size: number | undefined;
    if (stored) {
      await ctx.access.check(registry, name, identity, { kind: 'blob', digest: digest.value }, checkSignal());
      size = stored.size;
    } else {
      size = (await ctx.upstream.headBlob(registry, name, digest.value, { identity, signal: checkSignal() })).size;
      ctx.access.record(registry, name, identity, digest.value);
    }
    blobHeaders(pull, digest);
    if (size !== undefined) reply.header('Content-Length', size);
    reply.code(200).send();
    return;
  }

  const started = performance.now();
  // Not cached and nobody fetching it: this request's own download (as this client, from the origin) is the
  // authorization check. Otherwise ask the origin before serving (AccessChecker caches the answer).
  const fetchesItself = !(await ctx.store.stat(digest)) && !ctx.fetcher.isFetching(digest);
  if (!fetchesItself || ctx.fetcher.sourceName !== 'origin') {
    await ctx.access.check(registry, name, identity, { kind: 'blob', digest: digest.value }, checkSignal());
  }
  let reader: BlobReader | undefined;
  let source = 'cache';
  let size = 0;
  let range: ReturnType<typeof parseRange>;
  for (let attempt = 0; reader === undefined; attempt++) {
    // A blob can be evicted between ensure() and open() under heavy cache pressure: fetch again, once.
    if (attempt > 1) throw new LayerswarmError('STORE_FULL', `blob ${digest.value} was evicted before it could be served; the store is too small`);
    const outcome = await ctx.fetcher.ensure({ registry, name, digest, identity }, pull.signal);
    if (outcome.source !== 'cache') source = outcome.source;
    if (fetchesItself && attempt === 0) {
      if (outcome.owner && outcome.source === 'origin') ctx.access.record(registry, name, identity, digest.value);
      // Someone else's download (or cache) won the race after all: check as usual before serving.
      else await ctx.access.check(registry, name, identity, { kind: 'blob', digest: digest.value }, checkSignal());
    }
    size = outcome.info.size;
    range = parseRange(pull.request.headers.range, size);
    reader = await ctx.store.open(digest, range);
  }
  ctx.metrics.blobPullDuration.labels(source).observe((performance.now() - started) / 1000);
  blobHeaders(pull, digest);
  reply.header('Content-Length', reader.size);
  if (range) reply.header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  const counter = ctx.metrics.bytesServed.labels(source);
  // layerswarm_blob_bytes_total{source="cache"}: bytes served from blobs that were already stored (downloaded bytes
  // are counted where they arrive: peer/seeder pieces, origin bodies).
  const cacheCounter = source === 'cache' ? ctx.metrics.blobBytes.labels('cache') : undefined;
  pull.request.log.debug({ digest: digest.value, source, size: reader.size }, 'serving blob');
  // The bytes go straight to the socket through the store's sendTo (two reused buffers, each write flushed before
  // its buffer is refilled), not through a stream of freshly allocated chunks.
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(range ? 206 : 200, reply.getHeaders() as Record<string, string | number>);
  try {
    await reader.sendTo(raw, (n) => {
      counter.inc(n);
      cacheCounter?.inc(n);
    });
    raw.end();
  } catch (err) {
    pull.request.log.debug({ err, digest: digest.value }, 'blob response ended early (client went away?)');
    raw.destroy();
  }
}

function blobHeaders(pull: PullRequest, digest: Digest): void {
  pull.reply
    .header('Content-Type', 'application/octet-stream')
    .header('Docker-Content-Digest', digest.value)
    .header('Accept-Ranges', 'bytes')
    .header('Etag', `"${digest.value}"`)
    .header('Cache-Control', 'max-age=31536000');
}
