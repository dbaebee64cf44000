// `layerswarm preload IMAGE --agent URL` ahead of a deploy: a real origin (distribution 2.8), an agent (the real
// startAgent, in-process) and the CLI as a subprocess. After the preload, skopeo pulling the image through the agent
// makes no blob GET at the origin (the tag is still resolved there: tags are mutable). An index is preloaded for one
// --platform only. Unknown image or platform, unreachable agent, a missing token and a non-loopback caller without a
// configured token are refused with clear messages (exit 1).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { skopeoCopyToDir } from '../fixtures/clients/skopeo.ts';
import { buildImage, pushImage, type PushedImage } from '../fixtures/images.ts';
import { freePort } from '../fixtures/ports.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';
import { runCli } from '../fixtures/cli.ts';

const MiB = 2 ** 20;
const TOKEN = 'preload-secret';

describe('layerswarm preload (CLI) into an agent', () => {
  let work: string;
  let registry: Registry;
  let agent: TestAgent;
  let single: PushedImage;
  let multi: PushedImage;

  before(async () => {
    work = await makeTempDir('preload-cli');
    registry = await startRegistry({ auth: 'none' });
    agent = await startTestAgent({ origin: registry.url });
    const one = await buildImage(`${work}/one`, { tag: '1', seed: 'preload-one', layers: [{ size: 3 * MiB }, { size: MiB }, { size: 2000 }] });
    single = await pushImage(one, `${registry.host}/test/one:1`);
    const many = await buildImage(`${work}/multi`, {
      tag: '1', seed: 'preload-multi', layers: [{ size: MiB }, { size: 1000 }],
      platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    });
    multi = await pushImage(many, `${registry.host}/test/multi:1`);
  });
  after(async () => {
    await agent?.cleanup();
    await registry?.stop();
    if (work) await removeTempDir(work);
  });

  const blobGets = async (): Promise<string[]> =>
    (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).map((r) => r.path.slice(r.path.indexOf('/blobs/') + 7));

  test('after a preload, a skopeo pull through the agent makes no blob GET at the origin', async () => {
    registry.clearRequests();
    const res = await runCli(['preload', `${registry.host}/test/one:1`, '--agent', agent.url]);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    const m = single.manifests[0];
    assert.ok(m);
    assert.match(res.stdout, new RegExp(`preload ${registry.host}/test/one:1 → ${single.digest}: 4 blobs`));
    assert.match(res.stdout, /^done: 4 done, 0 skipped, 0 failed/m);
    const fetched = await blobGets();
    for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) assert.equal(fetched.filter((x) => x === d).length, 1, `${d} fetched once`);

    registry.clearRequests();
    const pulled = await skopeoCopyToDir(`${registry.host}/test/one:1`, join(work, 'pulled'), { mirrorConf: { mirror: agent.url } });
    assert.deepEqual(pulled.layers, m.layers.map((l) => l.digest));
    assert.deepEqual(await blobGets(), [], 'no blob GET at the origin after the preload');
  });

  test('an index is preloaded for --platform only; --json prints the job', async () => {
    registry.clearRequests();
    const res = await runCli(['preload', `${registry.host}/test/multi:1`, '--agent', agent.url, '--platform', 'linux/arm64', '--json']);
    assert.equal(res.code, 0, res.stderr);
    const job = JSON.parse(res.stdout) as { state: string; digest: string; manifests: Array<{ platform: string }>; items: Array<{ digest: string; state: string }> };
    assert.equal(job.state, 'done');
    assert.equal(job.digest, multi.digest);
    assert.deepEqual(job.manifests.map((x) => x.platform), ['linux/arm64/v8']);
    const arm = multi.manifests.find((x) => x.platform?.architecture === 'arm64');
    const amd = multi.manifests.find((x) => x.platform?.architecture === 'amd64');
    assert.ok(arm && amd);
    const armBlobs = [arm.config.digest, ...arm.layers.map((l) => l.digest)];
    assert.deepEqual(job.items.map((i) => i.digest).sort(), [...armBlobs].sort());
    assert.ok(job.items.every((i) => i.state === 'done'));
    const fetched = await blobGets();
    assert.deepEqual([...fetched].sort(), [...armBlobs].sort(), 'only the arm64 blobs came from the origin');

    const none = await runCli(['preload', `${registry.host}/test/multi:1`, '--agent', agent.url, '--platform', 'linux/s390x']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /image .*test\/multi:1 not found: .*no manifest for platform linux\/s390x \(platforms: linux\/amd64, linux\/arm64\/v8\)/);
  });

  test('unknown image, unreachable agent, usage errors: exit 1 or 2 with a message naming them', async () => {
    const unknown = await runCli(['preload', `${registry.host}/test/nope:1`, '--agent', agent.url]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, new RegExp(`layerswarm preload: image ${registry.host}/test/nope:1 not found`));
    const other = await runCli(['preload', 'elsewhere.example:5000/test/one:1', '--agent', agent.url]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /registry elsewhere\.example:5000 is not configured on this mirror/);

    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = await runCli(['preload', 'test/one:1', '--agent', closed]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`cannot reach the agent at ${closed}: .*ECONNREFUSED`));

    const usage = await runCli(['preload', '--agent', agent.url]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /IMAGE is required/);
  });

  test('without a token only loopback callers may preload; with --preload-token the token is required', async () => {
    const remote = await agent.running.app.inject({ method: 'POST', url: '/v1/preload', remoteAddress: '10.1.2.3', payload: { image: 'test/one:1' } });
    assert.equal(remote.statusCode, 403);
    assert.equal((JSON.parse(remote.body) as { errors: Array<{ code: string }> }).errors[0]?.code, 'DENIED');

    const guarded = await startTestAgent({ origin: registry.url, overrides: { preloadToken: TOKEN } });
    try {
      const refused = await runCli(['preload', 'test/one:1', '--agent', guarded.url]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, new RegExp(`the agent at ${guarded.url} refused the request \\(401 UNAUTHORIZED\\).*--token`));
      const ok = await runCli(['preload', 'test/one:1', '--agent', guarded.url, '--token', TOKEN]);
      assert.equal(ok.code, 0, ok.stderr);
      const fromRemote = await guarded.running.app.inject({ method: 'POST', url: '/v1/preload', remoteAddress: '10.1.2.3', headers: { authorization: `Bearer ${TOKEN}` }, payload: { image: 'test/one:1' } });
      assert.equal(fromRemote.statusCode, 202);
    } finally {
      await guarded.cleanup();
    }
  });
});
