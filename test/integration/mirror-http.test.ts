// The registry endpoint against a real distribution registry, request by request: headers, Range, errors,
// multiple upstreams, one fetch for concurrent requests, cache across restarts, stale-if-error, manifest cap.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { ACCEPT_ALL_MANIFESTS, buildImage, MEDIA, pushImage, sha256Digest, type BuiltImage, type PushedImage } from '../fixtures/images.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { ociCode, rawRequest } from '../fixtures/http.ts';
import { waitFor } from '../fixtures/process.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('registry endpoint against a real registry', () => {
  let dir: string;
  let origin: Registry;
  let second: Registry;
  let agent: TestAgent;
  let image: BuiltImage;
  let app: PushedImage;
  let multi: PushedImage;
  let docker: PushedImage;
  let other: PushedImage;

  before(async () => {
    dir = await makeTempDir('mirror-http-');
    [origin, second] = await Promise.all([startRegistry({ auth: 'none' }), startRegistry({ auth: 'none' })]);
    image = await buildImage(join(dir, 'app'), { tag: '1', layers: [{ size: 100 * KiB }, { size: MiB }, { size: 6 * MiB, gzip: false }] });
    const multiImage = await buildImage(join(dir, 'multi'), { tag: '1', layers: [{ size: 50 * KiB }], platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }] });
    const otherImage = await buildImage(join(dir, 'other'), { tag: 'x', layers: [{ size: 10 * KiB }] });
    [app, multi, docker, other] = await Promise.all([
      pushImage(image, `${origin.host}/test/app:1`),
      pushImage(multiImage, `${origin.host}/test/multi:1`),
      pushImage(image, `${origin.host}/test/docker:1`, { format: 'v2s2' }),
      pushImage(otherImage, `${second.host}/other/img:x`),
    ]);
    // Prefetch off here, so each test sees exactly its own blob requests (prefetch has its own test and agent).
    agent = await startTestAgent({
      origin: origin.url,
      overrides: { registries: [{ host: second.host, url: second.url }], prefetch: false },
    });
  });

  after(async () => {
    await agent?.cleanup();
    await Promise.all([origin?.stop(), second?.stop()]);
    if (dir) await removeTempDir(dir);
  });

  const layer = (i: number): { digest: string; size: number; path: string } => {
    const l = image.manifests[0]?.layers[i];
    assert.ok(l);
    return l;
  };
  const blobGets = async (registry: Registry, digest?: string): Promise<number> =>
    (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/') && (!digest || r.path.includes(digest))).length;

  test('GET /v2/ answers with the API version header', async () => {
    const res = await rawRequest(agent.url, '/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    const traced = await rawRequest(agent.url, '/v2/', { headers: { 'x-request-id': 'trace-123' } });
    assert.equal(traced.headers['x-request-id'], 'trace-123');
    // The line is written when the response finishes, which may be a moment after the client saw it.
    await waitFor(() => agent.logs().some((l) => l.reqId === 'trace-123' && l.msg === 'request completed'), { timeoutMs: 5000, what: 'a log line with the request id' });
  });

  test('manifests by tag and digest round-trip byte for byte with the stored Content-Type', async () => {
    const head = await rawRequest(agent.url, '/v2/test/app/manifests/1', { method: 'HEAD', headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], app.digest);
    assert.equal(head.headers['content-type'], MEDIA.ociManifest);
    const get = await rawRequest(agent.url, '/v2/test/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assert.equal(sha256Digest(get.body), app.digest);
    assert.equal(Number(head.headers['content-length']), get.body.length);
    for (const pushed of [multi, docker]) {
      const byTag = await rawRequest(agent.url, `/v2/${pushed.repository}/manifests/1`, { headers: { accept: ACCEPT_ALL_MANIFESTS } });
      assert.equal(sha256Digest(byTag.body), pushed.digest);
      assert.equal(byTag.headers['content-type'], pushed.mediaType);
      for (const m of pushed.manifests) {
        const byDigest = await rawRequest(agent.url, `/v2/${pushed.repository}/manifests/${m.digest}`, { headers: { accept: m.mediaType } });
        assert.equal(byDigest.status, 200);
        assert.equal(sha256Digest(byDigest.body), m.digest);
        assert.equal(byDigest.headers['content-type'], m.mediaType);
      }
    }
    assert.equal(multi.mediaType, MEDIA.ociIndex);
    assert.equal(docker.mediaType, MEDIA.dockerManifest);
  });

  test('a blob is fetched once, verified, then served from the cache with the origin seeing no further GET', async () => {
    const l = layer(1);
    const expected = await readFile(l.path);
    await origin.settledRequests();
    origin.clearRequests(); // forget the push's own HEADs
    const first = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`);
    assert.equal(first.status, 200);
    assert.ok(first.body.equals(expected));
    assert.equal(first.headers['docker-content-digest'], l.digest);
    assert.equal(first.headers['content-length'], String(l.size));
    assert.equal(first.headers['accept-ranges'], 'bytes');
    assert.equal(first.headers['etag'], `"${l.digest}"`);
    assert.equal(first.headers['content-type'], 'application/octet-stream');
    assert.equal(await blobGets(origin, l.digest), 1);
    const heads = (await origin.settledRequests()).filter((r) => r.method === 'HEAD' && r.path.includes(l.digest));
    assert.equal(heads.length, 0, 'a cold GET is authorized by its own origin download: no extra HEAD');
    const again = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`);
    assert.ok(again.body.equals(expected));
    assert.equal(await blobGets(origin, l.digest), 1, 'second GET came from the cache');
    assert.ok((await agent.metric('layerswarm_blob_bytes_served_total', { source: 'cache' })) >= l.size);
  });

  test('Range requests: 206 with Content-Range, suffix ranges, 416 when unsatisfiable', async () => {
    const l = layer(1);
    const expected = await readFile(l.path);
    const mid = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`, { headers: { range: 'bytes=1000-4999' } });
    assert.equal(mid.status, 206);
    assert.equal(mid.headers['content-range'], `bytes 1000-4999/${l.size}`);
    assert.ok(mid.body.equals(expected.subarray(1000, 5000)));
    const tail = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`, { headers: { range: 'bytes=-10' } });
    assert.ok(tail.body.equals(expected.subarray(expected.length - 10)));
    const resume = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`, { headers: { range: `bytes=${l.size - 100}-` } });
    assert.equal(resume.status, 206);
    assert.equal(resume.body.length, 100);
    const bad = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`, { headers: { range: `bytes=${l.size}-` } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers['content-range'], `bytes */${l.size}`);
  });

  test('HEAD of a blob: from the store when cached, from the origin (without fetching) when not', async () => {
    const cached = await rawRequest(agent.url, `/v2/test/app/blobs/${layer(1).digest}`, { method: 'HEAD' });
    assert.equal(cached.status, 200);
    assert.equal(cached.headers['content-length'], String(layer(1).size));
    const l = layer(0);
    const uncached = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`, { method: 'HEAD' });
    assert.equal(uncached.status, 200);
    assert.equal(uncached.headers['content-length'], String(l.size));
    assert.equal(uncached.body.length, 0);
    assert.equal(await blobGets(origin, l.digest), 0);
  });

  test('concurrent requests for an uncached blob share one origin download', async () => {
    const l = layer(2);
    const expected = await readFile(l.path);
    const responses = await Promise.all(Array.from({ length: 8 }, () => rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`)));
    for (const r of responses) assert.ok(r.status === 200 && r.body.equals(expected));
    assert.equal(await blobGets(origin, l.digest), 1);
  });

  test('errors are OCI JSON with the right status', async () => {
    const cases: Array<[string, number, string, string?]> = [
      [`/v2/test/app/blobs/sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
      ['/v2/test/app/manifests/nope', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/Test/App/manifests/1', 400, 'NAME_INVALID'],
      [`/v2/${'a'.repeat(256)}/manifests/1`, 400, 'NAME_INVALID'],
      ['/v2/test/app/blobs/sha256:../../../etc/passwd', 400, 'DIGEST_INVALID'],
      ['/v2/test/../../etc/blobs/sha256:x', 400, 'NAME_INVALID'],
      ['/v2/test/app/blobs/sha256:abc', 400, 'DIGEST_INVALID'],
      [`/v2/test/app/blobs/sha512:${'a'.repeat(128)}`, 405, 'UNSUPPORTED'],
      ['/v2/test/app/blobs/uploads/', 405, 'UNSUPPORTED', 'POST'],
      ['/v2/_catalog', 405, 'UNSUPPORTED'],
    ];
    for (const [path, status, code, method] of cases) {
      const res = await rawRequest(agent.url, path, method ? { method } : {});
      assert.equal(res.status, status, path);
      if (method !== 'POST') assert.equal(ociCode(res), code, path);
    }
  });

  test('blobs stay repository-scoped: a cached layer is not served under a repository the origin lacks it in', async () => {
    const res = await rawRequest(agent.url, `/v2/test/multi/blobs/${layer(1).digest}`);
    assert.equal(res.status, 404);
    assert.equal(ociCode(res), 'BLOB_UNKNOWN');
  });

  test('?ns= selects the upstream; unconfigured registries get 404 so containerd falls back', async () => {
    const l = other.manifests[0]?.layers[0];
    assert.ok(l);
    const viaNs = await rawRequest(agent.url, `/v2/other/img/blobs/${l.digest}?ns=${encodeURIComponent(second.host)}`);
    assert.equal(viaNs.status, 200);
    assert.equal(sha256Digest(viaNs.body), l.digest);
    assert.equal(await blobGets(second, l.digest), 1);
    const manifest = await rawRequest(agent.url, `/v2/other/img/manifests/x?ns=${second.host}`, { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assert.equal(sha256Digest(manifest.body), other.digest);
    const wrongDefault = await rawRequest(agent.url, `/v2/other/img/blobs/${l.digest}`);
    assert.equal(wrongDefault.status, 404, 'without ns the default origin is asked, which lacks it');
    const unknown = await rawRequest(agent.url, `/v2/other/img/manifests/x?ns=evil.example.com`);
    assert.equal(unknown.status, 404);
    assert.equal(ociCode(unknown), 'NAME_UNKNOWN');
  });

  test('serving an image manifest prefetches its config and layers into the verified store', async () => {
    const fresh = await startTestAgent({ origin: origin.url });
    try {
      await origin.settledRequests();
      origin.clearRequests();
      const manifest = await rawRequest(fresh.url, '/v2/test/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
      assert.equal(manifest.status, 200);
      const m = image.manifests[0];
      assert.ok(m);
      await fresh.running.prefetcher?.whenIdle();
      assert.equal(await fresh.metric('layerswarm_prefetch_total', { event: 'fetched' }), m.layers.length + 1);
      for (const l of [...m.layers, m.config]) assert.equal(await blobGets(origin, l.digest), 1, `${l.digest} prefetched once`);
      for (const l of m.layers) {
        const res = await rawRequest(fresh.url, `/v2/test/app/blobs/${l.digest}`);
        assert.equal(sha256Digest(res.body), l.digest);
      }
      assert.equal(await blobGets(origin), m.layers.length + 1, 'the client\'s blob GETs were served from what prefetch stored');
      const noPrefetch = await startTestAgent({ origin: origin.url, overrides: { prefetch: false } });
      await rawRequest(noPrefetch.url, '/v2/test/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
      assert.equal(await noPrefetch.metric('layerswarm_prefetch_total'), 0);
      await noPrefetch.cleanup();
    } finally {
      await fresh.cleanup();
    }
  });

  test('the cache survives a restart of the agent', async () => {
    const l = layer(2);
    await agent.stop();
    agent = await startTestAgent({ origin: origin.url, dataDir: agent.dataDir, overrides: { registries: [{ host: second.host, url: second.url }], prefetch: false } });
    origin.clearRequests();
    const res = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`);
    assert.equal(sha256Digest(res.body), l.digest);
    assert.equal(await blobGets(origin), 0);
  });

  test('manifests over the cap are refused', async () => {
    const small = await startTestAgent({ origin: origin.url, overrides: { manifestMaxBytes: 1024 } });
    try {
      const big = await buildImage(join(dir, 'big'), { tag: 'big', layers: Array.from({ length: 8 }, () => ({ size: 64 })) });
      await pushImage(big, `${origin.host}/test/big:1`);
      const res = await rawRequest(small.url, '/v2/test/big/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
      assert.equal(res.status, 413);
      assert.equal(ociCode(res), 'SIZE_INVALID');
    } finally {
      await small.cleanup();
    }
  });

  test('origin down: tags answer from the last known digest (marked stale), cached blobs still serve', async () => {
    const l = layer(2);
    await rawRequest(agent.url, '/v2/test/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`);
    await origin.stop();
    const manifest = await rawRequest(agent.url, '/v2/test/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assert.equal(manifest.status, 200);
    assert.equal(sha256Digest(manifest.body), app.digest);
    assert.match(String(manifest.headers['x-layerswarm-stale']), /^age=\d+$/);
    const blob = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`);
    assert.equal(sha256Digest(blob.body), l.digest);
    const neverSeen = await rawRequest(agent.url, '/v2/test/multi/manifests/never');
    assert.equal(neverSeen.status, 502);
    assert.equal(await agent.metric('layerswarm_stale_tag_responses_total'), 1);
  });
});
