// Real clients pull through the layerswarm agent, whose origin is a real distribution registry: skopeo and podman
// (registries.conf [[registry.mirror]]), containerd (`ctr image pull --hosts-dir` with the hosts.toml written by
// `layerswarm configure containerd`, so every request carries ?ns=) and dockerd (registry-mirrors for Docker Hub
// names, and the agent named as the registry itself). Each pull must store exactly the digests and bytes that were
// pushed to the origin (Docker schema 2 images included: no conversion on the way), and a repeated pull must be
// served from the agent's store: the origin then sees no blob GET at all.
//
// One plain origin, one token-auth origin and one agent (the plain origin as default, both as configured registries)
// are shared by all clients; every client section pulls its own images so that "first pull fetches from the origin,
// second pull does not" holds whatever order the sections run in.
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestAgent } from '../fixtures/agent.ts';
import type { TestAgent } from '../fixtures/agent.ts';
import { buildImage, MEDIA, pushImage, sha256Digest } from '../fixtures/images.ts';
import type { BuildImageOptions, BuiltImage, BuiltManifest, PushedImage, PushedManifest } from '../fixtures/images.ts';
import { run, waitFor } from '../fixtures/process.ts';
import { startRegistry } from '../fixtures/registry.ts';
import type { Registry, RegistryRequest } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';
import { ctrContentGet, ctrImages, ctrPull, mountsUnder, startContainerd } from '../fixtures/clients/containerd.ts';
import type { Containerd } from '../fixtures/clients/containerd.ts';
import { dockerPull, startDockerd } from '../fixtures/clients/dockerd.ts';
import type { Dockerd } from '../fixtures/clients/dockerd.ts';
import { podmanPull } from '../fixtures/clients/podman.ts';
import { skopeoCopyToDir } from '../fixtures/clients/skopeo.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AGENT_USER_AGENT = 'layerswarm-agent/0.1';
const TOKEN_USERS = { alice: 'alice-pw' };
/** This machine's platform as an OCI platform (what podman and ctr pull from an index by default). */
const HOST_ARCH = process.arch === 'x64' ? 'amd64' : process.arch;
const OTHER_ARCH = HOST_ARCH === 'arm64' ? 'amd64' : 'arm64';

interface AgentRequest {
  method: string;
  url: string;
  status: number;
  /** The `ns` query parameter (containerd names the origin with it), undefined when absent. */
  ns: string | undefined;
  path: string;
}

/** One image as built and as stored at its origin. */
interface Fixture {
  built: BuiltImage;
  pushed: PushedImage;
}

describe('real clients pull through the agent (origin: a real registry)', () => {
  let work: string;
  let origin: Registry;
  let tokenOrigin: Registry;
  let agent: TestAgent;
  const images = new Map<string, Fixture>();
  const timings: string[] = [];

  const note = (t: TestContext, what: string, ms: number): void => {
    const line = `${what}: ${Math.round(ms)} ms`;
    timings.push(line);
    t.diagnostic(line);
  };
  const image = (key: string): Fixture => {
    const f = images.get(key);
    assert.ok(f, `no image ${key}`);
    return f;
  };
  /** The built and pushed manifest of one platform (the only one of a single-platform image). */
  const platformOf = (f: Fixture, arch = HOST_ARCH): { built: BuiltManifest; pushed: PushedManifest } => {
    const built = f.built.manifests.find((m) => (m.platform?.architecture ?? 'amd64') === arch) ?? f.built.manifests[0];
    const pushed = f.pushed.manifests.find((m) => m.platform === undefined || m.platform.architecture === arch);
    assert.ok(built && pushed, `image ${f.pushed.reference} has no ${arch} manifest`);
    return { built, pushed };
  };
  const layerDigests = (f: Fixture, arch?: string): string[] => platformOf(f, arch).pushed.layers.map((l) => l.digest);
  const diffIds = (f: Fixture, arch?: string): string[] => platformOf(f, arch).built.layers.map((l) => l.diffId);
  const configDigest = (f: Fixture, arch?: string): string => platformOf(f, arch).pushed.config.digest;
  /** The layer blob as built (same bytes as pushed: OCI pushes preserve digests, v2s2 pushes only relabel). */
  const builtLayerBytes = async (f: Fixture, digest: string, arch?: string): Promise<Buffer> => {
    const layer = platformOf(f, arch).built.layers.find((l) => l.digest === digest);
    assert.ok(layer, `${digest} is not a built layer of ${f.pushed.reference}`);
    return await readFile(layer.path);
  };

  /** Registry endpoint requests the agent logged from log line `from` on. */
  const agentRequests = (from: number): AgentRequest[] =>
    agent
      .logs()
      .slice(from)
      .filter((l) => l['msg'] === 'request completed' && typeof l['url'] === 'string' && String(l['url']).startsWith('/v2/'))
      .map((l) => {
        const url = new URL(String(l['url']), 'http://agent');
        return { method: String(l['method']), url: String(l['url']), status: Number(l['status']), ns: url.searchParams.get('ns') ?? undefined, path: url.pathname };
      });
  /**
   * Waits until the agent logged a 200 for a GET of each blob (the log line is written when the response finished,
   * which the client may notice a moment earlier), then returns the requests logged since `from`.
   */
  const agentServedBlobs = async (from: number, repo: string, digests: readonly string[]): Promise<AgentRequest[]> => {
    let seen: AgentRequest[] = [];
    await waitFor(
      () => {
        seen = agentRequests(from);
        return digests.every((d) => seen.some((r) => r.method === 'GET' && r.path === `/v2/${repo}/blobs/${d}` && r.status === 200));
      },
      { timeoutMs: 10_000, what: `agent log lines for GET of ${digests.join(', ')}` },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\nagent requests:\n${seen.map((r) => `${r.method} ${r.url} ${r.status}`).join('\n')}`);
    });
    return seen;
  };
  const blobGets = (requests: readonly RegistryRequest[]): RegistryRequest[] => requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
  const show = (requests: readonly { method: string; path: string; status: number }[]): string =>
    requests.map((r) => `${r.method} ${r.path} ${r.status}`).join('\n');

  before(async () => {
    const started = performance.now();
    work = await makeTempDir('clients-mirror');
    [origin, tokenOrigin] = await Promise.all([
      startRegistry({ auth: 'none' }),
      // Default token ACL: known users may do anything, anonymous nothing.
      startRegistry({ auth: 'token', users: TOKEN_USERS }),
    ]);
    const alice = { username: 'alice', password: TOKEN_USERS.alice };
    const specs: Array<{ key: string; build: BuildImageOptions; to: string; format?: 'oci' | 'v2s2'; creds?: typeof alice }> = [
      { key: 'skopeo', build: { tag: '1', layers: [{ size: MiB }, { size: 512 * KiB }, { size: 128 * KiB }] }, to: `${origin.host}/test/skopeo:1` },
      { key: 'podman', build: { tag: '1', layers: [{ size: 768 * KiB }, { size: 256 * KiB }] }, to: `${origin.host}/test/podman:1`, format: 'v2s2' },
      {
        key: 'podman-index',
        build: { tag: '1', layers: [{ size: 256 * KiB }, { size: 128 * KiB }], platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }] },
        to: `${origin.host}/test/multiarch:1`,
      },
      { key: 'containerd', build: { tag: '1', layers: [{ size: MiB }, { size: 256 * KiB }, { size: 100 * KiB }] }, to: `${origin.host}/test/ctr:1` },
      { key: 'containerd-token', build: { tag: '1', layers: [{ size: 512 * KiB }, { size: 128 * KiB }] }, to: `${tokenOrigin.host}/private/app:1`, creds: alice },
      { key: 'docker-hub', build: { tag: '1', layers: [{ size: 768 * KiB }, { size: 256 * KiB }] }, to: `${origin.host}/library/multi:1`, format: 'v2s2' },
      { key: 'docker-direct', build: { tag: '1', layers: [{ size: 512 * KiB }, { size: 128 * KiB }] }, to: `${origin.host}/test/dockerd:1` },
    ];
    await Promise.all(
      specs.map(async (s) => {
        const built = await buildImage(join(work, 'layouts', s.key), s.build);
        const pushed = await pushImage(built, s.to, { ...(s.format ? { format: s.format } : {}), ...(s.creds ? { creds: s.creds } : {}) });
        images.set(s.key, { built, pushed });
      }),
    );
    agent = await startTestAgent({
      origin: origin.url,
      overrides: {
        registries: [
          { host: origin.host, url: origin.url },
          // No agent credentials: clients authenticate as themselves.
          { host: tokenOrigin.host, url: tokenOrigin.url },
        ],
      },
    });
    timings.push(`setup (2 registries, 7 images built+pushed, agent): ${Math.round(performance.now() - started)} ms`);
  });

  after(async () => {
    await agent?.cleanup();
    await Promise.all([origin?.stop(), tokenOrigin?.stop()]);
    if (work !== undefined) await removeTempDir(work);
    if (timings.length > 0) console.log(`clients-mirror timings:\n  ${timings.join('\n  ')}`);
  });

  describe('skopeo (registries.conf mirror)', () => {
    const ref = (): string => `${origin.host}/test/skopeo:1`;
    const check = async (res: Awaited<ReturnType<typeof skopeoCopyToDir>>, f: Fixture): Promise<void> => {
      assert.equal(res.manifestDigest, f.pushed.digest);
      assert.equal(res.configDigest, configDigest(f));
      assert.deepEqual(res.layers, layerDigests(f));
      // readSkopeoDir already checked that every blob file hashes to its name; the set must be exactly what was pushed.
      const pushedBlobs = [platformOf(f).pushed.config, ...platformOf(f).pushed.layers];
      assert.deepEqual(
        res.blobs.map((b) => `${b.digest} ${b.size}`).sort(),
        pushedBlobs.map((b) => `${b.digest} ${b.size}`).sort(),
      );
      for (const digest of res.layers) {
        const bytes = await readFile(join(res.dir, digest.replace(/^sha256:/, '')));
        assert.equal(sha256Digest(bytes), digest);
        assert.ok(bytes.equals(await builtLayerBytes(f, digest)), `layer ${digest}: bytes differ from the pushed blob`);
      }
    };

    test('docker:// → dir: through the agent stores the pushed digests and bytes', async (t) => {
      const f = image('skopeo');
      origin.clearRequests();
      const from = agent.logs().length;
      const res = await skopeoCopyToDir(ref(), join(work, 'skopeo-1'), { mirrorConf: { mirror: agent.url } });
      note(t, 'skopeo copy via agent (cold)', res.durationMs);
      await check(res, f);
      const seen = await agentServedBlobs(from, 'test/skopeo', [configDigest(f), ...layerDigests(f)]);
      assert.ok(seen.some((r) => r.method === 'GET' && r.path === '/v2/test/skopeo/manifests/1' && r.status === 200), show(seen));
      const originSeen = await origin.settledRequests();
      for (const d of layerDigests(f)) {
        assert.ok(
          originSeen.some((r) => r.method === 'GET' && r.path === `/v2/test/skopeo/blobs/${d}` && r.userAgent === AGENT_USER_AGENT),
          `the agent fetched ${d} from the origin:\n${show(originSeen)}`,
        );
      }
      assert.ok(originSeen.every((r) => r.userAgent === AGENT_USER_AGENT), `skopeo itself never went to the origin:\n${show(originSeen)}`);
    });

    test('a second copy into a fresh dir is served from the agent cache: no blob GET at the origin', async (t) => {
      const f = image('skopeo');
      origin.clearRequests();
      const from = agent.logs().length;
      const cacheBytesBefore = await agent.metric('layerswarm_blob_bytes_served_total', { source: 'cache' });
      const res = await skopeoCopyToDir(ref(), join(work, 'skopeo-2'), { mirrorConf: { mirror: agent.url } });
      note(t, 'skopeo copy via agent (warm)', res.durationMs);
      await check(res, f);
      await agentServedBlobs(from, 'test/skopeo', [configDigest(f), ...layerDigests(f)]);
      const originSeen = await origin.settledRequests();
      assert.deepEqual(blobGets(originSeen), [], `origin saw blob GETs:\n${show(originSeen)}`);
      const served = (await agent.metric('layerswarm_blob_bytes_served_total', { source: 'cache' })) - cacheBytesBefore;
      const expected = res.blobs.reduce((sum, b) => sum + b.size, 0);
      assert.equal(served, expected, 'every blob byte came from the store');
    });
  });

  describe('podman (registries.conf mirror)', () => {
    test('Docker schema 2 image: manifest digest equals the one stored at the origin (no conversion)', async (t) => {
      const f = image('podman');
      assert.equal(f.pushed.mediaType, MEDIA.dockerManifest);
      origin.clearRequests();
      const from = agent.logs().length;
      const res = await podmanPull(`${origin.host}/test/podman:1`, { mirror: agent.url });
      note(t, 'podman pull via agent (v2s2)', res.durationMs);
      assert.equal(res.image.digest, f.pushed.digest);
      assert.equal(sha256Digest(res.image.manifest), f.pushed.digest, 'stored manifest bytes are the origin\'s');
      assert.equal((JSON.parse(res.image.manifest.toString('utf8')) as { mediaType?: string }).mediaType, MEDIA.dockerManifest);
      assert.ok(res.image.repoDigests.includes(`${origin.host}/test/podman@${f.pushed.digest}`), JSON.stringify(res.image.repoDigests));
      assert.deepEqual(res.image.layers, layerDigests(f));
      assert.deepEqual(res.image.diffIds, diffIds(f));
      assert.equal(`sha256:${res.image.id}`, configDigest(f));
      await agentServedBlobs(from, 'test/podman', [configDigest(f), ...layerDigests(f)]);
      const originSeen = await origin.settledRequests();
      assert.ok(originSeen.length > 0 && originSeen.every((r) => r.userAgent === AGENT_USER_AGENT), `only the agent went to the origin:\n${show(originSeen)}`);
    });

    test('multi-arch OCI index: podman gets its own platform through the agent', async (t) => {
      const f = image('podman-index');
      assert.equal(f.pushed.mediaType, MEDIA.ociIndex);
      const mine = platformOf(f, HOST_ARCH).pushed;
      const other = platformOf(f, OTHER_ARCH).pushed;
      origin.clearRequests();
      const from = agent.logs().length;
      const res = await podmanPull(`${origin.host}/test/multiarch:1`, { mirror: agent.url });
      note(t, 'podman pull via agent (OCI index)', res.durationMs);
      assert.equal(res.image.digest, f.pushed.digest, 'podman reports the index digest');
      assert.equal(sha256Digest(res.image.manifest), mine.digest, `stored manifest is the ${HOST_ARCH} one`);
      assert.deepEqual(res.image.layers, layerDigests(f, HOST_ARCH));
      assert.deepEqual(res.image.diffIds, diffIds(f, HOST_ARCH));
      const seen = await agentServedBlobs(from, 'test/multiarch', [mine.config.digest, ...layerDigests(f, HOST_ARCH)]);
      assert.ok(seen.some((r) => r.path === `/v2/test/multiarch/manifests/${mine.digest}` && r.status === 200), show(seen));
      const foreign = [other.digest, other.config.digest, ...other.layers.map((l) => l.digest)];
      assert.deepEqual(seen.filter((r) => foreign.some((d) => r.path.endsWith(d))), [], `nothing of ${OTHER_ARCH} was asked for`);
      const originSeen = await origin.settledRequests();
      assert.deepEqual(blobGets(originSeen).filter((r) => foreign.some((d) => r.path.endsWith(d))), [], show(originSeen));
    });
  });

  describe('containerd (hosts.toml from `layerswarm configure containerd`)', () => {
    let containerd: Containerd;
    let hostsDir: string;
    before(async () => {
      hostsDir = join(work, 'certs.d');
      // The real CLI, as an operator runs it.
      const cli = await run(
        process.execPath,
        ['bin/layerswarm.mjs', 'configure', 'containerd', '--hosts-dir', hostsDir, '--mirror', agent.url, '--registry', origin.host, '--registry', tokenOrigin.host],
        { cwd: REPO_ROOT, timeoutMs: 60_000 },
      );
      for (const reg of [origin, tokenOrigin]) {
        assert.ok(cli.stdout.includes(`created   ${join(hostsDir, reg.host, 'hosts.toml')}`), cli.stdout + cli.stderr);
        const toml = await readFile(join(hostsDir, reg.host, 'hosts.toml'), 'utf8');
        assert.match(toml, new RegExp(`^server = "${reg.url}"$`, 'm'), toml);
        assert.match(toml, new RegExp(`^\\[host\\."${agent.url}"\\]$`, 'm'), toml);
      }
      containerd = await startContainerd();
    });
    after(async () => {
      await containerd?.stop();
      if (containerd !== undefined) assert.deepEqual(await mountsUnder(containerd.dir), []);
    });

    const checkContent = async (ns: string, ref: string, f: Fixture, res: Awaited<ReturnType<typeof ctrPull>>): Promise<void> => {
      assert.ok(res.image);
      assert.equal(res.image.target.digest, f.pushed.digest);
      assert.equal(res.image.manifestDigest, f.pushed.digest);
      assert.equal(res.image.configDigest, configDigest(f));
      assert.deepEqual(res.image.layers, layerDigests(f));
      for (const digest of res.image.layers) {
        // ctrContentGet checks the content against its digest.
        const bytes = await ctrContentGet(containerd, digest, { namespace: ns });
        assert.ok(bytes.equals(await builtLayerBytes(f, digest)), `${ref}: layer ${digest} bytes differ from the pushed blob`);
      }
    };

    test('ctr image pull: every request carries ?ns=<origin>, content digests and bytes as pushed', async (t) => {
      const f = image('containerd');
      const ref = `${origin.host}/test/ctr:1`;
      origin.clearRequests();
      const from = agent.logs().length;
      const res = await ctrPull(containerd, ref, { hostsDir, namespace: 'first' });
      note(t, 'containerd pull via agent (cold)', res.durationMs);
      await checkContent('first', ref, f, res);
      const seen = await agentServedBlobs(from, 'test/ctr', [configDigest(f), ...layerDigests(f)]);
      assert.ok(seen.some((r) => r.method === 'HEAD' && r.path === '/v2/test/ctr/manifests/1' && r.status === 200), show(seen));
      assert.deepEqual(seen.filter((r) => r.ns !== origin.host), [], `every request names the origin with ?ns=${origin.host}`);
      const originSeen = await origin.settledRequests();
      assert.ok(originSeen.every((r) => r.userAgent === AGENT_USER_AGENT), `containerd never fell back to the origin:\n${show(originSeen)}`);
      for (const d of layerDigests(f)) {
        assert.ok(originSeen.some((r) => r.method === 'GET' && r.path === `/v2/test/ctr/blobs/${d}`), `agent fetched ${d}:\n${show(originSeen)}`);
      }
    });

    test('a second pull in a fresh namespace is served from the agent cache: no blob GET at the origin', async (t) => {
      const f = image('containerd');
      const ref = `${origin.host}/test/ctr:1`;
      origin.clearRequests();
      const from = agent.logs().length;
      // The fixture's containerd isolates namespaces' content: the fresh namespace downloads everything again.
      const res = await ctrPull(containerd, ref, { hostsDir, namespace: 'second' });
      note(t, 'containerd pull via agent (warm, fresh namespace)', res.durationMs);
      await checkContent('second', ref, f, res);
      const seen = await agentServedBlobs(from, 'test/ctr', [configDigest(f), ...layerDigests(f)]);
      assert.deepEqual(seen.filter((r) => r.ns !== origin.host), [], show(seen));
      const originSeen = await origin.settledRequests();
      assert.deepEqual(blobGets(originSeen), [], `origin saw blob GETs:\n${show(originSeen)}`);
    });

    test('token-auth origin: ctr --user authenticates through the agent (POST /token), no --user fails', async (t) => {
      const f = image('containerd-token');
      const ref = `${tokenOrigin.host}/private/app:1`;
      const token = tokenOrigin.token;
      assert.ok(token);
      const grantsBefore = token.grants().length;
      tokenOrigin.clearRequests();
      const from = agent.logs().length;
      const res = await ctrPull(containerd, ref, { hostsDir, namespace: 'token', user: `alice:${TOKEN_USERS.alice}` });
      note(t, 'containerd pull via agent (token auth, --user)', res.durationMs);
      await checkContent('token', ref, f, res);
      const seen = await agentServedBlobs(from, 'private/app', [configDigest(f), ...layerDigests(f)]);
      assert.deepEqual(seen.filter((r) => r.ns !== tokenOrigin.host), [], show(seen));
      // The agent relayed the origin's challenge (401) and containerd answered it at the mirror.
      assert.ok(seen.some((r) => r.path === '/v2/private/app/manifests/1' && r.status === 401), show(seen));
      assert.ok(seen.some((r) => r.method === 'HEAD' && r.path === '/v2/private/app/manifests/1' && r.status === 200), show(seen));
      const grants = token.grants().slice(grantsBefore);
      assert.ok(
        grants.some((g) => g.method === 'POST' && g.user === 'alice' && g.access.some((a) => a.name === 'private/app' && a.actions.includes('pull'))),
        `containerd got a token with the OAuth2 password grant: ${JSON.stringify(grants)}`,
      );
      const originSeen = await tokenOrigin.settledRequests();
      assert.ok(originSeen.every((r) => r.userAgent === AGENT_USER_AGENT), `containerd never fell back to the origin:\n${show(originSeen)}`);

      // Without credentials: the agent refuses (relaying the origin's 401) even though it has every blob cached;
      // containerd falls back to the origin, which refuses too.
      const anonFrom = agent.logs().length;
      tokenOrigin.clearRequests();
      await assert.rejects(ctrPull(containerd, ref, { hostsDir, namespace: 'token-anon' }), /pull access denied|insufficient_scope/);
      let anonSeen: AgentRequest[] = [];
      await waitFor(() => (anonSeen = agentRequests(anonFrom)).some((r) => r.path === '/v2/private/app/manifests/1' && r.status === 401), {
        timeoutMs: 10_000,
        what: 'the agent\'s 401 for the anonymous tag request',
      });
      assert.deepEqual(anonSeen.filter((r) => r.status < 400), [], `the agent served nothing:\n${show(anonSeen)}`);
      const anonOrigin = await tokenOrigin.settledRequests();
      const fallback = anonOrigin.filter((r) => r.userAgent.startsWith('containerd/'));
      assert.ok(fallback.length > 0 && fallback.every((r) => r.status === 401), `containerd fell back to the origin, which refused:\n${show(anonOrigin)}`);
      assert.deepEqual(await ctrImages(containerd, { namespace: 'token-anon' }), []);
    });
  });

  describe('dockerd', () => {
    let containerd: Containerd;
    let dockerd: Dockerd;
    before(async () => {
      const started = performance.now();
      containerd = await startContainerd();
      // The agent is both the Docker Hub mirror and, for (b), a registry of its own (loopback: plain HTTP by default).
      dockerd = await startDockerd({ containerd, registryMirrors: [agent.url] });
      timings.push(`containerd+dockerd start: ${Math.round(performance.now() - started)} ms`);
    });
    after(async () => {
      await dockerd?.stop();
      await containerd?.stop();
      if (dockerd !== undefined) assert.deepEqual(await mountsUnder(dockerd.dir), []);
    });

    test('(a) registry-mirrors: `docker pull multi:1` → agent gets /v2/library/multi, v2s2 digest unchanged', async (t) => {
      const f = image('docker-hub');
      assert.equal(f.pushed.mediaType, MEDIA.dockerManifest);
      origin.clearRequests();
      const from = agent.logs().length;
      const res = await dockerPull(dockerd, 'multi:1');
      note(t, 'dockerd pull via registry-mirrors → agent', res.durationMs);
      assert.ok(res.image.repoDigests.includes(`multi@${f.pushed.digest}`), `repo digest is the origin's: ${JSON.stringify(res.image.repoDigests)}`);
      assert.deepEqual(res.image.layers, layerDigests(f));
      assert.deepEqual(res.image.diffIds, diffIds(f));
      assert.equal(res.image.id, configDigest(f));
      const seen = await agentServedBlobs(from, 'library/multi', [configDigest(f), ...layerDigests(f)]);
      assert.ok(seen.some((r) => r.path === '/v2/library/multi/manifests/1' && r.status === 200), show(seen));
      assert.deepEqual(seen.filter((r) => r.ns !== undefined), [], 'dockerd sends no ?ns=');
      const originSeen = await origin.settledRequests();
      for (const d of layerDigests(f)) {
        assert.ok(originSeen.some((r) => r.method === 'GET' && r.path === `/v2/library/multi/blobs/${d}` && r.userAgent === AGENT_USER_AGENT), show(originSeen));
      }
    });

    test('(b) the agent as the registry itself: `docker pull <agent host>/test/dockerd:1`', async (t) => {
      const f = image('docker-direct');
      const from = agent.logs().length;
      const res = await dockerPull(dockerd, `${agent.host}/test/dockerd:1`);
      note(t, 'dockerd pull from the agent as registry', res.durationMs);
      assert.ok(res.image.repoDigests.includes(`${agent.host}/test/dockerd@${f.pushed.digest}`), JSON.stringify(res.image.repoDigests));
      assert.deepEqual(res.image.layers, layerDigests(f));
      assert.deepEqual(res.image.diffIds, diffIds(f));
      assert.equal(res.image.id, configDigest(f));
      await agentServedBlobs(from, 'test/dockerd', [configDigest(f), ...layerDigests(f)]);
    });
  });
});
