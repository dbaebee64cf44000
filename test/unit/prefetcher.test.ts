import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Prefetcher } from '../../agent/blobs/prefetcher.ts';
import { BlobFetcher } from '../../agent/blobs/blob-fetcher.ts';
import { MemoryBlobStore } from '../../agent/store/memory-store.ts';
import type { BlobRequest, BlobSource, BlobStreamResult } from '../../agent/source/blob-source.ts';
import { sha256Digest, type Digest } from '../../shared/digest.ts';
import { silentLogger } from '../../shared/logging.ts';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const registry = { host: 'o.example', baseUrl: 'http://o.example', dockerHub: false };

function manifest(mediaType: string | undefined, config: string, layers: string[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, ...(mediaType ? { mediaType } : {}), config: { digest: config }, layers: layers.map((digest) => ({ digest })) }));
}

describe('Prefetcher', () => {
  const blobs = Array.from({ length: 5 }, () => randomBytes(2000));
  const digests = blobs.map((b) => sha256Digest(b));
  const byDigest = new Map(digests.map((d, i) => [d.value, blobs[i] as Buffer]));

  test('blobsOf: config then layers of image manifests only', () => {
    const [a, b, c] = digests as [Digest, Digest, Digest];
    assert.deepEqual(Prefetcher.blobsOf(manifest(OCI, a.value, [b.value, c.value]), OCI).map((d) => d.value), [a.value, b.value, c.value]);
    assert.equal(Prefetcher.blobsOf(manifest(undefined, a.value, [b.value]), 'application/vnd.docker.distribution.manifest.v2+json').length, 2);
    assert.deepEqual(Prefetcher.blobsOf(manifest('application/vnd.oci.image.index.v1+json', a.value, []), OCI), []);
    assert.deepEqual(Prefetcher.blobsOf(Buffer.from('not json'), OCI), []);
    assert.deepEqual(Prefetcher.blobsOf(manifest(OCI, 'sha256:../../etc', [b.value]), OCI).map((d) => d.value), [b.value]);
  });

  test('fetches a manifest\'s blobs with bounded concurrency, once each, recording who was authorized', async () => {
    let running = 0;
    let peak = 0;
    const opened: string[] = [];
    const source: BlobSource = {
      name: 'origin',
      async open(req: BlobRequest): Promise<BlobStreamResult> {
        opened.push(req.digest.value);
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setImmediate(r));
        running--;
        const data = byDigest.get(req.digest.value) as Buffer;
        return { size: data.length, body: (async function* () { yield data; })() };
      },
    };
    const store = new MemoryBlobStore({ capBytes: 1 << 20 });
    const lifetime = new AbortController();
    const fetcher = new BlobFetcher({ store, source, logger: silentLogger(), attempts: 1, lifetime: lifetime.signal });
    const recorded: string[] = [];
    const prefetcher = new Prefetcher({
      fetcher, logger: silentLogger(), concurrency: 2, maxQueued: 100, lifetime: lifetime.signal,
      onFetched: (_r, name, _i, d) => recorded.push(`${name}@${d.value}`),
    });
    const [config, ...layers] = digests.map((d) => d.value) as [string, ...string[]];
    const body = manifest(OCI, config, layers);
    assert.equal(prefetcher.schedule(registry, 'app', { kind: 'agent' }, body, OCI), 5);
    assert.equal(prefetcher.schedule(registry, 'app', { kind: 'agent' }, body, OCI), 0, 'already queued');
    await prefetcher.whenIdle();
    assert.equal(peak, 2);
    assert.deepEqual(opened.sort(), digests.map((d) => d.value).sort());
    for (const d of digests) assert.ok(await store.stat(d));
    assert.equal(recorded.length, 5);
    assert.equal(prefetcher.schedule(registry, 'app', { kind: 'agent' }, body, OCI), 5, 'stored blobs may be queued again…');
    await prefetcher.whenIdle();
    assert.equal(opened.length, 5, '…but are not downloaded again');
  });
});
