// Agents with --tracker: a large layer comes from the swarm (a seeding engine + each other), never from the origin;
// agents keep seeding it from their stores; without a tracker, without metainfo or without progress they fall back
// to the origin with a metric per reason; the origin's authorization still decides who gets a swarm-served blob.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import type { AgentConfig } from '../../agent/config.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { rawRequest } from '../fixtures/http.ts';
import { buildImage, pushImage, sha256Digest, type BuiltLayer } from '../fixtures/images.ts';
import { freePort } from '../fixtures/ports.ts';
import { waitFor } from '../fixtures/process.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { startSeedingEngine, type SeedingEngine } from '../fixtures/seeding-engine.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;
const USERS = { alice: 'alice-pw' };
const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const startTrackerHere = (): Promise<RunningTracker> =>
  startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });

describe('agent with a tracker: blobs through the swarm', () => {
  let dir: string;
  let registry: Registry;
  let htpasswd: Registry;
  let tracker: RunningTracker;
  let seeding: SeedingEngine | undefined;
  let seeder: SwarmEngine;
  let layer: BuiltLayer;
  let meta: Metainfo;
  const agents: TestAgent[] = [];
  const others: Array<{ close(): Promise<unknown> }> = [];

  const swarmAgent = async (origin: Registry, overrides: Partial<AgentConfig> = {}): Promise<TestAgent> => {
    const agent = await startTestAgent({
      origin: origin.url,
      overrides: {
        tracker: tracker.url, peerListen: { host: '127.0.0.1', port: 0 }, peerAdvertise: '127.0.0.1', prefetch: false,
        metainfoTimeout: 5000, swarmStallTimeout: 10_000, ...overrides,
      },
    });
    agents.push(agent);
    return agent;
  };
  const blobGets = async (origin: Registry): Promise<number> =>
    (await origin.settledRequests()).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`)).length;
  const getLayer = async (agent: TestAgent, repo = 'test/swarm', headers: Record<string, string> = {}): Promise<void> => {
    const res = await rawRequest(agent.url, `/v2/${repo}/blobs/${layer.digest}`, { headers, timeoutMs: 20_000 });
    assert.equal(res.status, 200, res.body.toString().slice(0, 300));
    assert.equal(res.body.length, layer.size);
    assert.equal(sha256Digest(res.body), layer.digest);
  };

  before(async () => {
    dir = await makeTempDir('agent-swarm-');
    [registry, htpasswd, tracker] = await Promise.all([startRegistry({ auth: 'none' }), startRegistry({ auth: 'htpasswd', users: USERS }), startTrackerHere()]);
    const image = await buildImage(join(dir, 'img'), { tag: '1', seed: 'agent-swarm', layers: [{ size: 12 * MiB, gzip: false }] });
    await Promise.all([
      pushImage(image, `${registry.host}/test/swarm:1`),
      pushImage(image, `${htpasswd.host}/private/swarm:1`, { creds: { username: 'alice', password: USERS.alice } }),
    ]);
    const built = image.manifests[0]?.layers[0];
    assert.ok(built);
    layer = built;
    meta = await computeMetainfo(layer.digest, createReadStream(layer.path), layer.size);
    assert.ok(meta.pieceHashes.length >= 12);

    // The seeding node: an engine seeding the blob, its metainfo published at the tracker (what the seeder role does).
    seeding = await startSeedingEngine({ dir, trackerUrl: tracker.url, meta, blobPath: layer.path });
    seeder = seeding.engine;
    registry.clearRequests();
    htpasswd.clearRequests();
  });

  after(async () => {
    for (const a of agents) await a.cleanup();
    await seeding?.close();
    for (const o of others) await o.close();
    await tracker?.close();
    await Promise.all([registry?.stop(), htpasswd?.stop()]);
    if (dir) await removeTempDir(dir);
  });

  test('3 agents pull the same 12 MiB layer at once: verified bytes, all from peers, none from the origin', async () => {
    const three = await Promise.all([swarmAgent(registry), swarmAgent(registry), swarmAgent(registry)]);
    await Promise.all(three.map((a) => getLayer(a)));
    assert.equal(await blobGets(registry), 0, 'no blob GET at the origin');
    for (const a of three) {
      assert.equal(await a.metric('layerswarm_swarm_bytes_total', { source: 'peers' }), layer.size);
      assert.equal(await a.metric('layerswarm_swarm_bytes_total', { source: 'origin' }), 0);
      assert.equal(await a.metric('layerswarm_swarm_fallbacks_total'), 0);
      assert.equal(await a.metric('layerswarm_blob_fetches_total', { source: 'swarm', result: 'ok' }), 1);
      assert.ok(a.logs().some((l) => l.msg === 'blob downloaded from the swarm'));
      // Piece traffic: every piece credited once to the peer that delivered it first.
      assert.equal(await a.metric('layerswarm_swarm_piece_bytes_total', { direction: 'down' }), layer.size);
      assert.equal(await a.metric('layerswarm_swarm_bad_pieces_total'), 0);
      assert.equal(await a.metric('layerswarm_swarm_peers_banned_total'), 0);
    }
    let fromSeeds = 0;
    for (const a of three) fromSeeds += await a.metric('layerswarm_swarm_piece_bytes_total', { direction: 'down', peer: 'seeder' });
    assert.ok(fromSeeds > 0, 'the seeding node served pieces');
    // Committed blobs are seeded from the store: the engine's download file is gone.
    for (const a of three) {
      const file = join(a.dataDir, 'swarm', layer.digest.slice('sha256:'.length));
      await waitFor(async () => !(await access(file).then(() => true, () => false)), { timeoutMs: 5000, what: `${file} removed` });
      assert.equal(await a.metric('layerswarm_swarm_torrents', { role: 'seed' }), 1);
      assert.equal(await a.metric('layerswarm_swarm_torrents', { role: 'download' }), 0);
    }
    // Served again from the store.
    await getLayer(three[0] as TestAgent);
    assert.equal(await (three[0] as TestAgent).metric('layerswarm_blob_fetches_total', { source: 'swarm', result: 'ok' }), 1);
  });

  test('agents keep seeding from their stores: a 4th agent gets the layer with the seeding node gone', async () => {
    await seeder.stopSeeding(meta.digest);
    const three = [...agents];
    const upBefore = await Promise.all(three.map((a) => a.metric('layerswarm_swarm_piece_bytes_total', { direction: 'up' })));
    const fourth = await swarmAgent(registry);
    await getLayer(fourth);
    assert.equal(await fourth.metric('layerswarm_swarm_bytes_total', { source: 'peers' }), layer.size);
    assert.equal(await fourth.metric('layerswarm_swarm_piece_bytes_total', { direction: 'down' }), layer.size);
    // Its peers are the three agents, all complete when it connected: a peer's label is what it was at connect, and
    // a finished agent cannot be told from the seeder role (neither the handshake nor the tracker's handout says).
    assert.equal(await fourth.metric('layerswarm_swarm_piece_bytes_total', { direction: 'down', peer: 'seeder' }), layer.size);
    assert.equal(await fourth.metric('layerswarm_swarm_piece_bytes_total', { direction: 'down', peer: 'agent' }), 0);
    // The three agents uploaded it (their up bytes, to a downloading peer, grew by at least the layer).
    const upAfter = await Promise.all(three.map((a) => a.metric('layerswarm_swarm_piece_bytes_total', { direction: 'up', peer: 'agent' })));
    assert.ok(upAfter.reduce((x, y) => x + y, 0) - upBefore.reduce((x, y) => x + y, 0) >= layer.size, `agents uploaded ${String(upAfter)} (before ${String(upBefore)})`);
    assert.equal(await blobGets(registry), 0, 'still no blob GET at the origin');
    await seeder.seed(meta, { path: join(dir, 'seed-blob') }, AbortSignal.timeout(5000));
  });

  test('the origin\'s authorization still applies to a swarm-served blob (htpasswd origin)', async () => {
    const agent = await swarmAgent(htpasswd);
    const anonymous = await rawRequest(agent.url, `/v2/private/swarm/blobs/${layer.digest}`);
    assert.equal(anonymous.status, 401);
    await getLayer(agent, 'private/swarm', { authorization: basic('alice', USERS.alice) });
    assert.equal(await agent.metric('layerswarm_swarm_bytes_total', { source: 'peers' }), layer.size, 'from the swarm');
    assert.equal(await blobGets(htpasswd), 0);
    for (const authorization of [undefined, basic('alice', 'wrong')]) {
      const refused = await rawRequest(agent.url, `/v2/private/swarm/blobs/${layer.digest}`, { headers: authorization ? { authorization } : {} });
      assert.equal(refused.status, 401, 'cached and swarm-served, still refused');
      assert.notEqual(refused.body.length, layer.size);
    }
  });

  test('fallback to the origin: tracker unreachable', async () => {
    const agent = await swarmAgent(registry, { tracker: `http://127.0.0.1:${await freePort()}` });
    const before = await blobGets(registry);
    await getLayer(agent);
    assert.equal(await blobGets(registry), before + 1);
    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total', { reason: 'tracker_unreachable' }), 1);
    assert.equal(await agent.metric('layerswarm_swarm_bytes_total', { source: 'origin' }), layer.size);
    assert.ok(agent.logs().some((l) => l.reason === 'tracker_unreachable' && l.msg === 'swarm download not possible; fetching from the origin'));
  });

  test('fallback to the origin: the tracker has no metainfo and no seeder to produce it', async () => {
    const empty = await startTrackerHere();
    others.push(empty);
    const agent = await swarmAgent(registry, { tracker: empty.url });
    await getLayer(agent);
    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total', { reason: 'no_metainfo' }), 1);
    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total'), 1);
  });

  test('fallback to the origin: metainfo but no peer, the swarm stalls', async () => {
    const lonely = await startTrackerHere();
    others.push(lonely);
    const c = new TrackerClient({ url: lonely.url });
    others.push(c);
    await c.putMetainfo(meta);
    const agent = await swarmAgent(registry, { tracker: lonely.url, swarmStallTimeout: 500 });
    const before = await blobGets(registry);
    await getLayer(agent);
    assert.equal(await blobGets(registry), before + 1);
    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total', { reason: 'stalled' }), 1);
  });

  test('fallback to the origin: metainfo but no peer holds the blob → no_peers after swarmNoPeerTimeout, not the stall timeout', async () => {
    const lonely = await startTrackerHere();
    others.push(lonely);
    const c = new TrackerClient({ url: lonely.url });
    others.push(c);
    await c.putMetainfo(meta);
    const agent = await swarmAgent(registry, { tracker: lonely.url, swarmNoPeerTimeout: 300, swarmStallTimeout: 60_000 });
    const before = await blobGets(registry);
    const started = Date.now();
    await getLayer(agent);
    assert.ok(Date.now() - started < 10_000, 'did not wait for the stall timeout');
    assert.equal(await blobGets(registry), before + 1);
    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total', { reason: 'no_peers' }), 1);
    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total'), 1);
  });

  test('small blobs go straight to the origin without asking the tracker', async () => {
    const agent = await swarmAgent(registry, { swarmOriginDirectMaxBytes: 64 * MiB });
    const before = await blobGets(registry);
    await getLayer(agent);
    assert.equal(await blobGets(registry), before + 1);
    assert.equal(await agent.metric('layerswarm_swarm_fallbacks_total'), 0);
    assert.equal(await agent.metric('layerswarm_swarm_bytes_total'), 0);
  });
});
