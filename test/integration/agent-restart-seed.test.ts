// An agent persists the metainfo of the swarm blobs it commits (<dataDir>/swarm/meta) and, after a restart on the
// same data dir, seeds the stored blobs again: a fresh agent gets the layer through the swarm with the seeder gone
// and the origin serving no blob byte. A corrupt metainfo file is deleted at start.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentConfig } from '../../agent/config.ts';
import type { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, parseMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { rawRequest } from '../fixtures/http.ts';
import { buildImage, pushImage, sha256Digest, type BuiltLayer } from '../fixtures/images.ts';
import { waitFor } from '../fixtures/process.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { startSeedingEngine, type SeedingEngine } from '../fixtures/seeding-engine.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;
const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

describe('agent restart: stored blobs are seeded again', () => {
  let dir: string;
  let registry: Registry;
  let tracker: RunningTracker;
  let seeding: SeedingEngine | undefined;
  let seeder: SwarmEngine;
  let layer: BuiltLayer;
  let meta: Metainfo;
  const agents: TestAgent[] = [];

  const swarmAgent = async (dataDir?: string): Promise<TestAgent> => {
    const overrides: Partial<AgentConfig> = {
      tracker: tracker.url, peerListen: { host: '127.0.0.1', port: 0 }, peerAdvertise: '127.0.0.1', prefetch: false,
      metainfoTimeout: 5000, swarmStallTimeout: 10_000,
    };
    const agent = await startTestAgent({ origin: registry.url, overrides, ...(dataDir === undefined ? {} : { dataDir }) });
    agents.push(agent);
    return agent;
  };
  const getLayer = async (agent: TestAgent): Promise<void> => {
    const res = await rawRequest(agent.url, `/v2/test/restart/blobs/${layer.digest}`, { timeoutMs: 20_000 });
    assert.equal(res.status, 200, res.body.toString().slice(0, 300));
    assert.equal(sha256Digest(res.body), layer.digest);
  };
  const blobGets = async (): Promise<number> =>
    (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`)).length;

  before(async () => {
    dir = await makeTempDir('agent-restart-seed-');
    [registry, tracker] = await Promise.all([
      startRegistry({ auth: 'none' }),
      startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() }),
    ]);
    const image = await buildImage(join(dir, 'img'), { tag: '1', seed: 'agent-restart-seed', layers: [{ size: 10 * MiB, gzip: false }] });
    await pushImage(image, `${registry.host}/test/restart:1`);
    const built = image.manifests[0]?.layers[0];
    assert.ok(built);
    layer = built;
    meta = await computeMetainfo(layer.digest, createReadStream(layer.path), layer.size);
    seeding = await startSeedingEngine({ dir, trackerUrl: tracker.url, meta, blobPath: layer.path });
    seeder = seeding.engine;
  });

  after(async () => {
    for (const a of agents) await a.cleanup();
    await seeding?.close();
    await tracker?.close();
    await registry?.stop();
    if (dir) await removeTempDir(dir);
  });

  test('stop, restart on the same data dir, seeder gone: a fresh agent downloads from the restarted one', async () => {
    const first = await swarmAgent();
    await getLayer(first);
    const metaFile = join(first.dataDir, 'swarm', 'meta', `${layer.digest.slice('sha256:'.length)}.json`);
    await waitFor(() => exists(metaFile), { timeoutMs: 5000, what: 'metainfo persisted' });
    assert.deepEqual(parseMetainfo((JSON.parse(await readFile(metaFile, 'utf8')) as { metainfo: unknown }).metainfo), meta);
    await first.stop();
    await seeder.close();

    // A corrupt metainfo file next to the good one is deleted at start.
    const badFile = join(first.dataDir, 'swarm', 'meta', `${'ab'.repeat(32)}.json`);
    await writeFile(badFile, '{"metainfo": {"digest": "nope"}}');

    const restarted = await swarmAgent(first.dataDir);
    await waitFor(async () => (await restarted.metric('layerswarm_swarm_torrents', { role: 'seed' })) === 1, { timeoutMs: 10_000, what: 'the restarted agent seeds the stored blob' });
    assert.equal(await exists(badFile), false, 'the corrupt metainfo file was deleted');
    assert.ok(restarted.logs().some((l) => l.msg === 'deleting an unreadable metainfo file'));

    registry.clearRequests();
    const fresh = await swarmAgent();
    await getLayer(fresh);
    assert.equal(await blobGets(), 0, 'no blob GET at the origin');
    assert.equal(await fresh.metric('layerswarm_swarm_bytes_total', { source: 'peers' }), layer.size);
    assert.equal(await fresh.metric('layerswarm_swarm_fallbacks_total'), 0);
    assert.equal(await restarted.metric('layerswarm_swarm_piece_bytes_total', { direction: 'up' }), layer.size);
  });
});
