// The upstream client against real distribution registries (htpasswd and token auth), images pushed with skopeo.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { isLayerswarmError, type ErrorCode } from '../../shared/errors.ts';
import { createUpstreamClient } from '../../agent/upstream/client.ts';
import type { UpstreamClient } from '../../agent/upstream/types.ts';
import { identityFromAuthorization } from '../../agent/upstream/credentials.ts';
import type { Identity, UpstreamRegistry } from '../../agent/upstream/types.ts';
import { MEDIA, buildImage, pushImage, sha256Digest, type BuiltImage, type PushedImage } from '../fixtures/images.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const AGENT: Identity = { kind: 'agent' };
const basic = (u: string, p: string): Identity => identityFromAuthorization(`Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`);
const is = (code: ErrorCode) => (err: unknown): boolean => {
  assert.ok(isLayerswarmError(err, code), `expected ${code}, got ${String(err)}`);
  return true;
};

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

let layouts = '';
let client: UpstreamClient;
const tokenEvents: number[] = [];
before(async () => {
  layouts = await makeTempDir('upstream-real-layouts');
  client = createUpstreamClient({
    timeouts: { connectMs: 2000, headersMs: 10_000, bodyIdleMs: 10_000, tokenMs: 5000 },
    userAgent: 'layerswarm-test',
    onRequest: (e) => {
      if (e.kind === 'token') tokenEvents.push(e.status);
    },
  });
});
after(async () => {
  await client.close();
  await removeTempDir(layouts);
});

const opts = (identity: Identity, accept: { accept: string | undefined } = { accept: MEDIA.ociManifest }) => ({
  identity, method: 'GET' as const, ...accept, maxBytes: 4 << 20, signal: AbortSignal.timeout(15_000),
});

/** Manifest and every layer of `image`, byte-exact, whole and resumed. */
async function assertPull(registry: UpstreamRegistry, repo: string, image: BuiltImage, identity: Identity): Promise<void> {
  const m = await client.manifest(registry, repo, '1', opts(identity));
  assert.equal(m.digest, image.topDigest);
  assert.equal(m.contentType, MEDIA.ociManifest);
  assert.deepEqual(m.body, await readFile(image.manifests[0]?.path ?? ''));
  const h = await client.manifest(registry, repo, image.topDigest, { ...opts(identity), method: 'HEAD' });
  assert.equal(h.size, m.body.length);
  for (const layer of image.manifests[0]?.layers ?? []) {
    const bytes = await readFile(layer.path);
    const whole = await client.blob(registry, repo, layer.digest, { identity, offset: 0, signal: AbortSignal.timeout(15_000) });
    assert.equal(whole.size, layer.size);
    assert.equal(sha256Digest(await collect(whole.body)), layer.digest);
    const half = Math.floor(layer.size / 2);
    const rest = await client.blob(registry, repo, layer.digest, { identity, offset: half, signal: AbortSignal.timeout(15_000) });
    assert.equal(rest.size, layer.size);
    assert.deepEqual(await collect(rest.body), bytes.subarray(half));
    assert.deepEqual(await client.headBlob(registry, repo, layer.digest, { identity, signal: AbortSignal.timeout(15_000) }), { size: layer.size });
  }
}

describe('real registry, htpasswd auth', () => {
  let reg: Registry;
  let image: BuiltImage;
  let docker: PushedImage;
  let registry: UpstreamRegistry;
  before(async () => {
    reg = await startRegistry({ auth: 'htpasswd', users: { alice: 'alice-pw' } });
    const creds = { username: 'alice', password: 'alice-pw' };
    image = await buildImage(layouts, { tag: 'basic', layers: [{ size: 200_000 }, { size: 5000, gzip: false }] });
    await pushImage(image, `${reg.host}/test/app:1`, { creds });
    const v2 = await buildImage(layouts, { tag: 'basic-docker', layers: [{ size: 30_000 }] });
    docker = await pushImage(v2, `${reg.host}/test/docker:1`, { creds, format: 'v2s2' });
    registry = { host: reg.host, baseUrl: reg.url, dockerHub: false };
  });
  after(async () => {
    await reg.stop();
  });

  void test('agent credentials: manifests and blobs byte-exact, Range resume; later requests in one round trip', async () => {
    const withCreds = { ...registry, credentials: { username: 'alice', password: 'alice-pw' } };
    reg.clearRequests();
    await assertPull(withCreds, 'test/app', image, AGENT);
    const requests = await reg.settledRequests();
    assert.deepEqual(requests.filter((r) => r.status === 401).length, 1, JSON.stringify(requests)); // only the first
  });

  void test("the client's own Basic credentials; anonymous and wrong ones get the Basic challenge relayed", async () => {
    await assertPull(registry, 'test/app', image, basic('alice', 'alice-pw'));
    for (const identity of [AGENT, basic('alice', 'wrong')]) {
      await assert.rejects(client.manifest(registry, 'test/app', '1', opts(identity)), (err) =>
        is('UNAUTHORIZED')(err) && /^Basic realm="basic-realm"/.test((err as { headers: Record<string, string> }).headers['WWW-Authenticate'] ?? ''));
    }
  });

  void test('no Accept → every type asked for: a Docker v2s2 manifest is not down-converted to schema1', async () => {
    const m = await client.manifest(registry, 'test/docker', '1', opts(basic('alice', 'alice-pw'), { accept: undefined }));
    assert.equal(m.contentType, MEDIA.dockerManifest);
    assert.equal(m.digest, docker.digest);
    assert.equal(sha256Digest(m.body), docker.digest);
  });

  void test('ping (/v2/): credentials answer the challenge, the anonymous get it relayed', async () => {
    const signal = AbortSignal.timeout(15_000);
    await client.ping(registry, { identity: basic('alice', 'alice-pw'), signal });
    await client.ping({ ...registry, credentials: { username: 'alice', password: 'alice-pw' } }, { identity: AGENT, signal });
    await assert.rejects(client.ping(registry, { identity: AGENT, signal }), (err) =>
      is('UNAUTHORIZED')(err) && /^Basic realm="basic-realm"/.test((err as { headers: Record<string, string> }).headers['WWW-Authenticate'] ?? ''));
  });

  void test('404 mapping, per the origin code: unknown tag, unknown repository, blob of another repository', async () => {
    const alice = basic('alice', 'alice-pw');
    await assert.rejects(client.manifest(registry, 'test/app', 'nope', opts(alice)), is('MANIFEST_UNKNOWN'));
    // distribution answers MANIFEST_UNKNOWN (not NAME_UNKNOWN) for a repository it does not know.
    await assert.rejects(client.manifest(registry, 'test/none', '1', opts(alice)), is('MANIFEST_UNKNOWN'));
    const layer = image.manifests[0]?.layers[0]?.digest ?? '';
    await assert.rejects(client.blob(registry, 'test/docker', layer, { identity: alice, offset: 0, signal: AbortSignal.timeout(15_000) }), is('BLOB_UNKNOWN'));
  });
});

describe('real registry, token auth', () => {
  let reg: Registry;
  let image: BuiltImage;
  let registry: UpstreamRegistry;
  before(async () => {
    reg = await startRegistry({
      auth: 'token',
      users: { alice: 'alice-pw', bob: 'bob-pw' },
      tokenAcl: (user, repo) => (user === 'alice' ? ['pull', 'push'] : user === 'bob' && repo.startsWith('bob/') ? ['pull'] : []),
    });
    image = await buildImage(layouts, { tag: 'token', layers: [{ size: 150_000 }] });
    await pushImage(image, `${reg.host}/test/app:1`, { creds: { username: 'alice', password: 'alice-pw' } });
    registry = { host: reg.host, baseUrl: reg.url, dockerHub: false };
  });
  after(async () => {
    await reg.stop();
  });

  void test('agent credentials: OAuth2 POST for the token, cached for later requests', async () => {
    const token = reg.token;
    assert.ok(token);
    const withCreds = { ...registry, credentials: { username: 'alice', password: 'alice-pw' } };
    const before = token.issued();
    await assertPull(withCreds, 'test/app', image, AGENT);
    const grants = token.grants().slice(before);
    assert.deepEqual(grants.map((g) => [g.method, g.user]), [['POST', 'alice']]);
    assert.deepEqual(grants[0]?.access, [{ type: 'repository', name: 'test/app', actions: ['pull'] }]);
  });

  void test("the client's Basic credentials get their own token; an ACL refusal is relayed with its challenge", async () => {
    const token = reg.token;
    assert.ok(token);
    const before = token.issued();
    await assertPull(registry, 'test/app', image, basic('alice', 'alice-pw'));
    await assert.rejects(client.manifest(registry, 'test/app', '1', opts(basic('bob', 'bob-pw'))), (err) =>
      is('UNAUTHORIZED')(err) && /error="insufficient_scope"/.test((err as { headers: Record<string, string> }).headers['WWW-Authenticate'] ?? ''));
    await assert.rejects(client.manifest(registry, 'test/app', '1', opts(basic('alice', 'wrong'))), (err) =>
      is('UNAUTHORIZED')(err) && /^Bearer realm=/.test((err as { headers: Record<string, string> }).headers['WWW-Authenticate'] ?? ''));
    await assert.rejects(client.manifest(registry, 'test/app', '1', opts(AGENT)), is('UNAUTHORIZED'));
    assert.deepEqual(token.grants().slice(before).map((g) => g.user ?? null), ['alice', 'bob', null]);
  });

  void test('ping (/v2/): the anonymous get the Bearer challenge, agent credentials get through', async () => {
    const signal = AbortSignal.timeout(15_000);
    await assert.rejects(client.ping(registry, { identity: AGENT, signal }), (err) =>
      is('UNAUTHORIZED')(err) && /^Bearer realm="[^"]+",service="test-registry"$/.test((err as { headers: Record<string, string> }).headers['WWW-Authenticate'] ?? ''));
    await client.ping({ ...registry, credentials: { username: 'bob', password: 'bob-pw' } }, { identity: AGENT, signal });
    await client.ping(registry, { identity: basic('alice', 'alice-pw'), signal });
  });

  void test("a client's Bearer token is forwarded unchanged; nothing is fetched", async () => {
    const token = reg.token;
    assert.ok(token);
    const scope = 'repository:test/app:pull';
    const res = await fetch(`${token.realm}?service=${encodeURIComponent(token.service)}&scope=${encodeURIComponent(scope)}`, {
      headers: { Authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` },
      signal: AbortSignal.timeout(10_000),
    });
    const jwt = ((await res.json()) as { token: string }).token;
    const before = token.issued();
    await assertPull(registry, 'test/app', image, identityFromAuthorization(`Bearer ${jwt}`));
    assert.equal(token.issued(), before);
  });
});
