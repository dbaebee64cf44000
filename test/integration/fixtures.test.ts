// Smoke test of the integration fixtures: real registries (none / htpasswd / token auth), real images pushed with
// skopeo, read back with plain fetch, auth done by hand.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { ACCEPT_ALL_MANIFESTS, MEDIA, buildImage, pushImage, sha256Digest } from '../fixtures/images.ts';
import type { BuiltImage } from '../fixtures/images.ts';
import { run, startProcess, waitFor } from '../fixtures/process.ts';
import { startRegistry } from '../fixtures/registry.ts';
import type { Registry } from '../fixtures/registry.ts';
import { decodeJwtPayload } from '../fixtures/token-server.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

interface Got {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Got> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/** Parses `Bearer realm="...",service="...",scope="..."`. */
function bearerChallenge(header: string | null): Record<string, string> {
  if (header === null || !header.startsWith('Bearer ')) assert.fail(`expected a Bearer challenge, got ${String(header)}`);
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) params[m[1] ?? ''] = m[2] ?? '';
  return params;
}

/** Checks that manifest and every layer of `image` are served byte-exact under `repo:tag`. */
async function assertServed(reg: Registry, repo: string, tag: string, image: BuiltImage, auth: Record<string, string>): Promise<void> {
  const manifest = await get(`${reg.url}/v2/${repo}/manifests/${tag}`, { Accept: MEDIA.ociManifest, ...auth });
  assert.equal(manifest.status, 200, manifest.body.toString());
  assert.equal(sha256Digest(manifest.body), image.topDigest);
  assert.equal(manifest.headers.get('docker-content-digest'), image.topDigest);
  assert.equal(manifest.headers.get('content-type'), MEDIA.ociManifest);
  assert.deepEqual(manifest.body, await readFile(image.manifests[0]?.path ?? ''));
  for (const layer of image.manifests[0]?.layers ?? []) {
    const blob = await get(`${reg.url}/v2/${repo}/blobs/${layer.digest}`, auth);
    assert.equal(blob.status, 200);
    assert.equal(blob.body.length, layer.size);
    assert.equal(sha256Digest(blob.body), layer.digest);
    assert.deepEqual(blob.body, await readFile(layer.path));
  }
}

let layouts = '';
before(async () => {
  layouts = await makeTempDir('fixtures-test-layouts');
});
after(async () => {
  await removeTempDir(layouts);
});

describe('process fixtures', () => {
  void test('startProcess fails fast with the output of a process that exits before ready', async () => {
    const started = Date.now();
    await assert.rejects(
      startProcess('sh', ['-c', 'echo boom-on-stderr >&2; exit 3'], { name: 'early-exit', ready: () => Promise.resolve(false) }),
      (err: Error) => /boom-on-stderr/.test(err.message) && /code 3/.test(err.message),
    );
    assert.ok(Date.now() - started < 5000);
  });

  void test('startProcess times out readiness; stop() SIGKILLs a process ignoring SIGTERM', async () => {
    await assert.rejects(
      startProcess('sleep', ['30'], { name: 'never-ready', ready: () => Promise.resolve(false), readyTimeoutMs: 300 }),
      /not ready after 300 ms/,
    );
    const stubborn = await startProcess('sh', ['-c', 'trap "" TERM; echo up; sleep 30'], { name: 'stubborn', stopGraceMs: 200 });
    await waitFor(() => stubborn.output().includes('up'), { timeoutMs: 5000, what: 'stubborn to print' });
    const t0 = Date.now();
    await stubborn.stop();
    assert.equal(await stubborn.exited, null); // killed by a signal
    assert.ok(Date.now() - t0 < 3000);
    assert.throws(() => process.kill(stubborn.pid, 0)); // reaped: the pid is gone
  });

  void test('run rejects with stderr on failure and on timeout', async () => {
    assert.equal((await run('sh', ['-c', 'printf ok'])).stdout, 'ok');
    await assert.rejects(run('sh', ['-c', 'echo bad-thing >&2; exit 2']), /bad-thing/);
    await assert.rejects(run('sleep', ['10'], { timeoutMs: 200 }), /timed out after 200 ms/);
  });
});

describe('images', () => {
  void test('a seeded build is reproducible and its layer is a real tar of the requested size', async () => {
    const a = await buildImage(layouts, { tag: 'seed-a', layers: [{ size: 70_000 }], seed: 'same' });
    const b = await buildImage(layouts, { tag: 'seed-b', layers: [{ size: 70_000 }], seed: 'same' });
    assert.equal(a.topDigest, b.topDigest);
    const layer = a.manifests[0]?.layers[0];
    assert.ok(layer);
    const listing = await run('tar', ['-tvzf', layer.path]);
    assert.match(listing.stdout, /root\/root\s+70000 .*layer-0-0\.bin/);
    const index = JSON.parse(await readFile(`${layouts}/index.json`, 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
    assert.deepEqual(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']), ['seed-a', 'seed-b']);
  });
});

describe('registry without auth', () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry({ auth: 'none' });
  });
  after(async () => {
    await reg.stop();
  });

  void test('push (OCI, gzip + plain tar layers) and read back byte-exact; requests() records the blob GETs', async () => {
    const image = await buildImage(layouts, { tag: 'app', layers: [{ size: 300_000 }, { size: 20_000, gzip: false }] });
    const pushed = await pushImage(image, `${reg.host}/test/app:1`);
    assert.equal(pushed.digest, image.topDigest);
    assert.equal(pushed.manifests[0]?.layers[1]?.mediaType, MEDIA.ociLayerTar);
    reg.clearRequests();
    await assertServed(reg, 'test/app', '1', image, {});
    const requests = await reg.settledRequests();
    for (const layer of image.manifests[0]?.layers ?? []) {
      const hit = requests.filter((r) => r.method === 'GET' && r.path === `/v2/test/app/blobs/${layer.digest}`);
      assert.equal(hit.length, 1);
      assert.equal(hit[0]?.status, 200);
      assert.equal(hit[0]?.bytes, layer.size);
    }
    assert.equal(requests.length, 3, JSON.stringify(requests)); // manifest + 2 blobs, no fixture probes
  });

  void test('multi-arch index round trip', async () => {
    const platforms = [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }];
    const image = await buildImage(layouts, { tag: 'multi', layers: [{ size: 50_000 }], platforms });
    assert.equal(image.topMediaType, MEDIA.ociIndex);
    const pushed = await pushImage(image, `${reg.host}/test/multi:1`);
    assert.equal(pushed.digest, image.topDigest);
    const index = await get(`${reg.url}/v2/test/multi/manifests/1`, { Accept: ACCEPT_ALL_MANIFESTS });
    assert.equal(index.status, 200);
    assert.equal(sha256Digest(index.body), image.topDigest);
    assert.equal(index.headers.get('docker-content-digest'), image.topDigest);
    const listed = (JSON.parse(index.body.toString()) as { manifests: Array<{ digest: string; platform: { architecture: string } }> }).manifests;
    assert.deepEqual(listed.map((m) => m.platform.architecture), ['amd64', 'arm64']);
    for (const built of image.manifests) {
      const m = await get(`${reg.url}/v2/test/multi/manifests/${built.digest}`, { Accept: MEDIA.ociManifest });
      assert.equal(sha256Digest(m.body), built.digest);
      const layer = built.layers[0];
      assert.ok(layer);
      const blob = await get(`${reg.url}/v2/test/multi/blobs/${layer.digest}`);
      assert.deepEqual(blob.body, await readFile(layer.path));
    }
    assert.notEqual(image.manifests[0]?.layers[0]?.digest, image.manifests[1]?.layers[0]?.digest);
  });

  void test('v2s2 push round trip: served bytes hash to Docker-Content-Digest', async () => {
    const image = await buildImage(layouts, { tag: 'docker', layers: [{ size: 40_000 }, { size: 3000, gzip: false }] });
    const pushed = await pushImage(image, `${reg.host}/test/docker:1`, { format: 'v2s2' });
    assert.equal(pushed.mediaType, MEDIA.dockerManifest);
    assert.notEqual(pushed.digest, image.topDigest);
    const m = await get(`${reg.url}/v2/test/docker/manifests/1`, { Accept: MEDIA.dockerManifest });
    assert.equal(m.headers.get('content-type'), MEDIA.dockerManifest);
    assert.equal(m.headers.get('docker-content-digest'), pushed.digest);
    assert.equal(sha256Digest(m.body), pushed.digest);
    const manifest = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string; mediaType: string }> };
    assert.equal(manifest.config.digest, image.manifests[0]?.config.digest); // config bytes are kept
    assert.equal(manifest.layers[0]?.digest, image.manifests[0]?.layers[0]?.digest); // gzip layer kept as is
    for (const layer of manifest.layers) {
      assert.equal(layer.mediaType, MEDIA.dockerLayerGzip);
      const blob = await get(`${reg.url}/v2/test/docker/blobs/${layer.digest}`);
      assert.equal(sha256Digest(blob.body), layer.digest);
      assert.equal(blob.headers.get('docker-content-digest'), layer.digest);
    }
  });
});

describe('registry with htpasswd auth', () => {
  let reg: Registry;
  before(async () => {
    reg = await startRegistry({ auth: 'htpasswd', users: { alice: 'alice-pw' } });
  });
  after(async () => {
    await reg.stop();
  });

  void test('push with credentials, read back with Basic auth; no or wrong credentials get 401', async () => {
    const image = await buildImage(layouts, { tag: 'basic', layers: [{ size: 100_000 }] });
    await pushImage(image, `${reg.host}/test/app:1`, { creds: { username: 'alice', password: 'alice-pw' } });
    reg.clearRequests();
    const anonymous = await get(`${reg.url}/v2/test/app/manifests/1`, { Accept: MEDIA.ociManifest });
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    const wrong = await get(`${reg.url}/v2/test/app/manifests/1`, { Accept: MEDIA.ociManifest, Authorization: basic('alice', 'nope') });
    assert.equal(wrong.status, 401);
    await assertServed(reg, 'test/app', '1', image, { Authorization: basic('alice', 'alice-pw') });
    const requests = await reg.settledRequests();
    assert.deepEqual(requests.map((r) => r.status), [401, 401, 200, 200]); // the access log also has the 401s
  });
});

describe('registry with token auth', () => {
  let reg: Registry;
  const users = { alice: 'alice-pw', bob: 'bob-pw' };
  before(async () => {
    reg = await startRegistry({
      auth: 'token',
      users,
      tokenAcl: (user, repo) => (user === 'alice' ? ['pull', 'push'] : user === 'bob' && repo.startsWith('bob/') ? ['pull'] : []),
    });
  });
  after(async () => {
    await reg.stop();
  });

  void test('push with credentials; pull with tokens from GET and POST /token; ACL and wrong passwords enforced', async () => {
    const token = reg.token;
    assert.ok(token);
    const image = await buildImage(layouts, { tag: 'token', layers: [{ size: 100_000 }] });
    await pushImage(image, `${reg.host}/test/app:1`, { creds: { username: 'alice', password: 'alice-pw' } });

    const challenged = await get(`${reg.url}/v2/test/app/manifests/1`, { Accept: MEDIA.ociManifest });
    assert.equal(challenged.status, 401);
    const challenge = bearerChallenge(challenged.headers.get('www-authenticate'));
    assert.equal(challenge['realm'], token.realm);
    assert.equal(challenge['service'], token.service);
    assert.equal(challenge['scope'], 'repository:test/app:pull');

    const query = `service=${encodeURIComponent(token.service)}&scope=${encodeURIComponent('repository:test/app:pull')}`;
    const viaGet = await get(`${token.realm}?${query}`, { Authorization: basic('alice', 'alice-pw') });
    assert.equal(viaGet.status, 200);
    const got = JSON.parse(viaGet.body.toString()) as { token: string; access_token: string; expires_in: number; issued_at: string };
    assert.equal(got.token, got.access_token);
    assert.ok(got.expires_in > 0 && !Number.isNaN(Date.parse(got.issued_at)));
    const claims = decodeJwtPayload(got.token);
    assert.equal(claims['sub'], 'alice');
    assert.equal(claims['aud'], token.service);
    assert.deepEqual(claims['access'], [{ type: 'repository', name: 'test/app', actions: ['pull'] }]);
    await assertServed(reg, 'test/app', '1', image, { Authorization: `Bearer ${got.token}` });

    const form = new URLSearchParams({
      grant_type: 'password', username: 'alice', password: 'alice-pw', service: token.service,
      scope: 'repository:test/app:pull', client_id: 'containerd-client',
    });
    const viaPost = await fetch(token.realm, { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) });
    assert.equal(viaPost.status, 200);
    const posted = (await viaPost.json()) as { access_token: string };
    await assertServed(reg, 'test/app', '1', image, { Authorization: `Bearer ${posted.access_token}` });

    const badGet = await get(`${token.realm}?${query}`, { Authorization: basic('alice', 'wrong') });
    assert.equal(badGet.status, 401);
    form.set('password', 'wrong');
    const badPost = await fetch(token.realm, { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) });
    assert.equal(badPost.status, 401);
    await badPost.arrayBuffer();

    // bob's ACL denies test/app: he gets a token, but one without access, which the registry refuses.
    const bobs = await get(`${token.realm}?${query}`, { Authorization: basic('bob', 'bob-pw') });
    assert.equal(bobs.status, 200);
    const bobToken = (JSON.parse(bobs.body.toString()) as { token: string }).token;
    assert.deepEqual(decodeJwtPayload(bobToken)['access'], []);
    const denied = await get(`${reg.url}/v2/test/app/manifests/1`, { Accept: MEDIA.ociManifest, Authorization: `Bearer ${bobToken}` });
    assert.equal(denied.status, 401);
    assert.match(denied.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);

    // Anonymous token requests are allowed and get what the ACL gives undefined: nothing here.
    const anon = await get(`${token.realm}?${query}`);
    assert.equal(anon.status, 200);
    assert.deepEqual(decodeJwtPayload((JSON.parse(anon.body.toString()) as { token: string }).token)['access'], []);

    const grants = token.grants();
    assert.equal(token.issued(), grants.length);
    assert.deepEqual(grants.slice(-4).map((g) => [g.method, g.user ?? null]), [['GET', 'alice'], ['POST', 'alice'], ['GET', 'bob'], ['GET', null]]);
  });
});
