// `layerswarm preheat IMAGE --seeder URL` as operators run it: a real origin (distribution 2.8, no push
// notifications, so nothing is preheated unless asked), the seeder as a CLI subprocess seeding over the swarm engine,
// a real in-process tracker. The command resolves the image at the seeder, which fetches every large layer from the
// origin exactly once, publishes its metainfo to the tracker and seeds it (small blobs are skipped); an agent with
// --tracker then gets those layers from the seeder, not from the origin. Unknown image, unreachable seeder and a
// missing token end with exit 1 and a message naming them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../shared/logging.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { rawRequest } from '../fixtures/http.ts';
import { buildImage, pushImage, type PushedImage } from '../fixtures/images.ts';
import { freePort } from '../fixtures/ports.ts';
import { startSeederProcess, type ClusterProcess } from '../fixtures/cluster.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';
import { runCli } from '../fixtures/cli.ts';

const MiB = 2 ** 20;
const TOKEN = 'preheat-secret';

describe('layerswarm preheat (CLI) against a live seeder and tracker', () => {
  let work: string;
  let tracker: RunningTracker;
  let registry: Registry;
  let seeder: ClusterProcess;
  let seederUrl: string;
  let pushed: PushedImage;
  let agent: TestAgent | undefined;

  before(async () => {
    work = await makeTempDir('preheat-cli');
    tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
    registry = await startRegistry({ auth: 'none' });
    seeder = await startSeederProcess({ origin: registry.url, tracker: tracker.url, dataDir: `${work}/seeder`, logLevel: 'warn', args: ['--preheat-token', TOKEN] });
    seederUrl = seeder.url;
    const image = await buildImage(`${work}/layout`, { tag: '1', seed: 'preheat-cli', layers: [{ size: 5 * MiB }, { size: 9 * MiB }, { size: 1000 }] });
    pushed = await pushImage(image, `${registry.host}/test/app:1`);
  });
  after(async () => {
    await agent?.cleanup();
    await seeder?.stop();
    await registry?.stop();
    await tracker?.close();
    if (work) await removeTempDir(work);
  });

  const large = (): Array<{ digest: string; size: number }> => (pushed.manifests[0]?.layers ?? []).filter((l) => l.size > 4 * MiB);

  test('preheat seeds every large layer: metainfo at the tracker, each layer fetched from the origin once', async () => {
    registry.clearRequests();
    const res = await runCli(['preheat', `${registry.host}/test/app:1`, '--seeder', seederUrl, '--token', TOKEN]);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    const m = pushed.manifests[0];
    assert.ok(m);
    assert.match(res.stdout, new RegExp(`preheat ${registry.host}/test/app:1 → ${pushed.digest}`));
    for (const l of large()) assert.match(res.stdout, new RegExp(`layer +${l.digest.slice(7, 19)} .* done +seeded`));
    assert.match(res.stdout, /skipped +small/);
    assert.match(res.stdout, /^done: 2 done, 2 skipped, 0 failed/m);
    for (const l of large()) assert.ok(tracker.metainfo.peek(l.digest), `metainfo of ${l.digest} at the tracker`);
    for (const small of [m.config, ...m.layers.filter((l) => l.size <= 4 * MiB)]) assert.equal(tracker.metainfo.peek(small.digest), undefined);

    const blobGets = (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    for (const l of large()) assert.equal(blobGets.filter((r) => r.path.endsWith(`/blobs/${l.digest}`)).length, 1, l.digest);
    assert.equal(blobGets.length, 2, JSON.stringify(blobGets));

    // Again, as JSON: nothing new is fetched.
    const again = await runCli(['preheat', `${registry.host}/test/app:1`, '--seeder', seederUrl, '--token', TOKEN, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const job = JSON.parse(again.stdout) as { state: string; digest: string; items: Array<{ digest: string; state: string; result: string }> };
    assert.equal(job.state, 'done');
    assert.equal(job.digest, pushed.digest);
    for (const l of large()) assert.equal(job.items.find((i) => i.digest === l.digest)?.result, 'seeded (already)');
    assert.equal((await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).length, 2);
  });

  test('an agent with --tracker then gets the preheated layers from the seeder', async () => {
    agent = await startTestAgent({
      origin: registry.url,
      overrides: { tracker: tracker.url, peerListen: { host: '127.0.0.1', port: 0 }, peerAdvertise: '127.0.0.1', prefetch: false, metainfoTimeout: 5000 },
    });
    registry.clearRequests();
    for (const l of large()) {
      const res = await rawRequest(agent.url, `/v2/test/app/blobs/${l.digest}`, { timeoutMs: 30_000 });
      assert.equal(res.status, 200);
      assert.equal(res.body.length, l.size);
    }
    const agentGets = (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    assert.deepEqual(agentGets, [], 'no layer body from the origin');
    assert.ok((await agent.metric('layerswarm_swarm_piece_bytes_total', { direction: 'down', peer: 'seeder' })) >= large().reduce((s, l) => s + l.size, 0));
  });

  test('unknown image, missing token, unreachable seeder: exit 1 with a message naming them', async () => {
    const unknown = await runCli(['preheat', `${registry.host}/test/nope:1`, '--seeder', seederUrl, '--token', TOKEN]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, new RegExp(`image ${registry.host}/test/nope:1 not found`));
    const tag = await runCli(['preheat', `${registry.host}/test/app:2`, '--seeder', seederUrl, '--token', TOKEN]);
    assert.equal(tag.code, 1);
    assert.match(tag.stderr, /image .*test\/app:2 not found/);

    const noToken = await runCli(['preheat', `${registry.host}/test/app:1`, '--seeder', seederUrl]);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, new RegExp(`the seeder at ${seederUrl} refused the request \\(401 UNAUTHORIZED\\).*--token`));

    const closed = `http://127.0.0.1:${await freePort()}`;
    const down = await runCli(['preheat', `${registry.host}/test/app:1`, '--seeder', closed]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`cannot reach the seeder at ${closed}: .*ECONNREFUSED`));

    const usage = await runCli(['preheat', 'test/app:1']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--seeder is required/);
  });
});
