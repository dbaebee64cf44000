// Proves the real-client harness (test/fixtures/clients) without layerswarm in the path: containerd (ctr), dockerd,
// podman and skopeo each pull an image pushed to a real registry and must store exactly the pushed digests.
//
// Each client is exercised twice:
// - direct: the image reference names the registry itself;
// - "mirror": the reference names a dead origin (a free port nobody listens on) and the client is configured to use
//   the real registry as its mirror (containerd: hosts.toml written by `layerswarm configure containerd`;
//   podman/skopeo: registries.conf [[registry.mirror]]; dockerd: registry-mirrors, which only apply to Docker Hub
//   names). The pull can only succeed through the mirror configuration. Later mirror tests put the agent there.
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { applyContainerdHosts } from '../../agent/containerd/configure.ts';
import { buildImage, pushImage } from '../fixtures/images.ts';
import type { BuiltImage, PushedImage } from '../fixtures/images.ts';
import { freePort } from '../fixtures/ports.ts';
import { startRegistry } from '../fixtures/registry.ts';
import type { Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';
import { ctrPull, mountsUnder, startContainerd } from '../fixtures/clients/containerd.ts';
import type { Containerd } from '../fixtures/clients/containerd.ts';
import { dockerPull, startDockerd } from '../fixtures/clients/dockerd.ts';
import type { Dockerd } from '../fixtures/clients/dockerd.ts';
import { podmanPull } from '../fixtures/clients/podman.ts';
import { skopeoCopyToDir } from '../fixtures/clients/skopeo.ts';

const REPO = 'test/app';
const TAG = '1';

describe('real clients pull from a real registry (harness check)', () => {
  let reg: Registry;
  let work: string;
  let built: BuiltImage;
  let pushed: PushedImage;
  let hubBuilt: BuiltImage;
  let hubPushed: PushedImage;
  /** Origin host nobody listens on: pulls of it succeed only through a configured mirror. */
  let deadOrigin: string;
  const timings: string[] = [];

  const expectedLayers = (): string[] => (pushed.manifests[0]?.layers ?? []).map((l) => l.digest);
  const expectedDiffIds = (): string[] => (built.manifests[0]?.layers ?? []).map((l) => l.diffId);
  const expectedConfig = (): string => pushed.manifests[0]?.config.digest ?? '';
  const ref = (): string => `${reg.host}/${REPO}:${TAG}`;
  const deadRef = (): string => `${deadOrigin}/${REPO}:${TAG}`;
  const note = (t: TestContext, what: string, ms: number): void => {
    const line = `${what}: ${Math.round(ms)} ms`;
    timings.push(line);
    t.diagnostic(line);
  };

  before(async () => {
    reg = await startRegistry({ auth: 'none' });
    work = await makeTempDir('clients-direct');
    built = await buildImage(join(work, 'layout'), { tag: TAG, layers: [{ size: 768 * 1024 }, { size: 256 * 1024 }] });
    pushed = await pushImage(built, `${reg.host}/${REPO}:${TAG}`);
    // A different image under a Docker Hub name for dockerd's registry-mirrors (`app:1` is asked for as
    // library/app), so that its layers are not already in dockerd's store from the direct pull.
    hubBuilt = await buildImage(join(work, 'layout'), { tag: 'hub', layers: [{ size: 512 * 1024 }] });
    hubPushed = await pushImage(hubBuilt, `${reg.host}/library/app:${TAG}`);
    deadOrigin = `127.0.0.1:${await freePort()}`;
    assert.equal(pushed.digest, built.topDigest);
  });

  after(async () => {
    await reg?.stop();
    if (work !== undefined) await removeTempDir(work);
    if (timings.length > 0) console.log(`client timings:\n  ${timings.join('\n  ')}`);
  });

  describe('containerd (ctr)', () => {
    let containerd: Containerd;
    before(async () => {
      containerd = await startContainerd();
    });
    after(async () => {
      await containerd?.stop();
      assert.deepEqual(await mountsUnder(containerd.dir), []);
    });

    test('direct, through a hosts.toml written by configure', async (t) => {
      const hostsDir = join(work, 'certs.d-direct');
      await applyContainerdHosts({ hostsDir, mirror: reg.url, registries: [reg.host] });
      const res = await ctrPull(containerd, ref(), { hostsDir });
      note(t, 'containerd direct pull', res.durationMs);
      assert.ok(res.image);
      assert.equal(res.image.target.digest, pushed.digest);
      assert.equal(res.image.manifestDigest, pushed.digest);
      assert.equal(res.image.configDigest, expectedConfig());
      assert.deepEqual(res.image.layers, expectedLayers());
    });

    test('mirror: dead origin, hosts.toml routes to the registry (with ?ns=)', async (t) => {
      const hostsDir = join(work, 'certs.d-mirror');
      await applyContainerdHosts({ hostsDir, mirror: reg.url, registries: [deadOrigin] });
      reg.clearRequests();
      // Another namespace has its own view of the content store: everything is fetched again.
      const res = await ctrPull(containerd, deadRef(), { hostsDir, namespace: 'via-mirror' });
      note(t, 'containerd pull via hosts.toml mirror', res.durationMs);
      assert.ok(res.image);
      assert.equal(res.image.manifestDigest, pushed.digest);
      assert.deepEqual(res.image.layers, expectedLayers());
      const ns = `?ns=${encodeURIComponent(deadOrigin)}`;
      const seen = (await reg.settledRequests()).map((r) => `${r.method} ${r.path} ${r.status}`);
      assert.ok(seen.includes(`HEAD /v2/${REPO}/manifests/${TAG}${ns} 200`), seen.join('\n'));
      for (const digest of [pushed.digest, expectedConfig(), ...expectedLayers()]) {
        const kind = digest === pushed.digest ? 'manifests' : 'blobs';
        assert.ok(seen.includes(`GET /v2/${REPO}/${kind}/${digest}${ns} 200`), `${digest}:\n${seen.join('\n')}`);
      }
    });
  });

  describe('dockerd', () => {
    let containerd: Containerd;
    let dockerd: Dockerd;
    before(async () => {
      const started = performance.now();
      containerd = await startContainerd();
      dockerd = await startDockerd({ containerd, registryMirrors: [reg.url], insecureRegistries: [reg.host] });
      timings.push(`containerd+dockerd start: ${Math.round(performance.now() - started)} ms`);
    });
    after(async () => {
      const started = performance.now();
      await dockerd?.stop();
      await containerd?.stop();
      timings.push(`dockerd+containerd stop: ${Math.round(performance.now() - started)} ms`);
      assert.deepEqual(await mountsUnder(dockerd.dir), []);
    });

    test('direct: host:port/name:tag', async (t) => {
      const res = await dockerPull(dockerd, ref());
      note(t, 'dockerd direct pull', res.durationMs);
      assert.ok(res.image.repoDigests.includes(`${reg.host}/${REPO}@${pushed.digest}`), JSON.stringify(res.image.repoDigests));
      assert.deepEqual(res.image.layers, expectedLayers());
      assert.deepEqual(res.image.diffIds, expectedDiffIds());
      assert.equal(res.image.id, expectedConfig());
    });

    test('mirror: a Docker Hub name goes to registry-mirrors', async (t) => {
      reg.clearRequests();
      const res = await dockerPull(dockerd, `app:${TAG}`);
      note(t, 'dockerd pull via registry-mirrors', res.durationMs);
      const hub = hubPushed.manifests[0];
      assert.ok(hub);
      assert.ok(res.image.repoDigests.includes(`app@${hubPushed.digest}`), JSON.stringify(res.image.repoDigests));
      assert.deepEqual(res.image.layers, hub.layers.map((l) => l.digest));
      assert.deepEqual(res.image.diffIds, (hubBuilt.manifests[0]?.layers ?? []).map((l) => l.diffId));
      const seen = (await reg.settledRequests()).map((r) => `${r.method} ${r.path} ${r.status}`);
      for (const layer of hub.layers) {
        assert.ok(seen.includes(`GET /v2/library/app/blobs/${layer.digest} 200`), seen.join('\n'));
      }
    });
  });

  describe('podman', () => {
    test('direct', async (t) => {
      const res = await podmanPull(ref());
      note(t, 'podman direct pull', res.durationMs);
      assert.equal(res.image.digest, pushed.digest);
      assert.ok(res.image.repoDigests.includes(`${reg.host}/${REPO}@${pushed.digest}`));
      assert.deepEqual(res.image.layers, expectedLayers());
      assert.deepEqual(res.image.diffIds, expectedDiffIds());
    });

    test('mirror: dead origin, registries.conf [[registry.mirror]]', async (t) => {
      reg.clearRequests();
      const res = await podmanPull(deadRef(), { mirror: reg.url });
      note(t, 'podman pull via registries.conf mirror', res.durationMs);
      assert.equal(res.image.digest, pushed.digest);
      assert.deepEqual(res.image.layers, expectedLayers());
      const seen = await reg.settledRequests();
      assert.ok(seen.some((r) => r.method === 'GET' && r.path === `/v2/${REPO}/manifests/${TAG}`), JSON.stringify(seen));
    });
  });

  describe('skopeo', () => {
    test('direct copy to a dir', async (t) => {
      const res = await skopeoCopyToDir(ref(), join(work, 'skopeo-direct'));
      note(t, 'skopeo direct copy', res.durationMs);
      assert.equal(res.manifestDigest, pushed.digest);
      assert.equal(res.configDigest, expectedConfig());
      assert.deepEqual(res.layers, expectedLayers());
      assert.deepEqual(res.blobs.map((b) => b.digest).sort(), [expectedConfig(), ...expectedLayers()].sort());
    });

    test('mirror: dead origin, registries.conf mirror', async (t) => {
      const res = await skopeoCopyToDir(deadRef(), join(work, 'skopeo-mirror'), { mirrorConf: { mirror: reg.url } });
      note(t, 'skopeo copy via registries.conf mirror', res.durationMs);
      assert.equal(res.manifestDigest, pushed.digest);
      assert.deepEqual(res.blobs.map((b) => b.digest).sort(), [expectedConfig(), ...expectedLayers()].sort());
    });
  });
});
