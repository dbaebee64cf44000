// Regression: the origin access check that runs after a swarm download (blob-routes.ts) gets a deadline of its own.
// It used to share one deadline (upstreamHeadersTimeout + upstreamConnectTimeout) created when the request came in,
// so after a swarm download longer than that the check ran with an expired signal, failed with UPSTREAM_TIMEOUT at
// once and fell back to a stale access decision ("origin unreachable; using an earlier access decision") or, with
// staleMaxAge 0, failed the pull (504).
//
// Setup: a real origin registry, an in-process tracker and seeding engine, and one agent whose downloads are slowed
// by its own bandwidth limit (downloadLimit) so that the swarm download takes about twice the timeout sum. The agent
// asks the origin on every check (accessCacheTtl 0) and may not fall back to an earlier decision (staleMaxAge 0).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../shared/logging.ts';
import { computeMetainfo, type Metainfo } from '../../shared/swarm/metainfo.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { rawRequest } from '../fixtures/http.ts';
import { buildImage, pushImage, sha256Digest, type BuiltLayer } from '../fixtures/images.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { startSeedingEngine, type SeedingEngine } from '../fixtures/seeding-engine.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const KiB = 1024;
/** upstreamHeadersTimeout + upstreamConnectTimeout: the deadline of one origin access check. */
const HEADERS_TIMEOUT_MS = 1000;
const CONNECT_TIMEOUT_MS = 1000;
const CHECK_DEADLINE_MS = HEADERS_TIMEOUT_MS + CONNECT_TIMEOUT_MS;
/** 640 KiB at 160 KiB/s: the swarm download takes ~4 s, twice the check deadline. */
const LAYER_SIZE = 640 * KiB;
const DOWNLOAD_LIMIT = 160 * KiB;

describe('access check after a swarm download longer than the origin request timeout', () => {
  let dir: string;
  let registry: Registry;
  let tracker: RunningTracker;
  let seeding: SeedingEngine | undefined;
  let agent: TestAgent | undefined;
  let layer: BuiltLayer;
  let meta: Metainfo;

  before(async () => {
    dir = await makeTempDir('access-after-long-download-');
    [registry, tracker] = await Promise.all([
      startRegistry({ auth: 'none' }),
      startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() }),
    ]);
    const image = await buildImage(join(dir, 'img'), { tag: '1', seed: 'access-after-long-download', layers: [{ size: LAYER_SIZE, gzip: false }] });
    await pushImage(image, `${registry.host}/test/slow:1`);
    const built = image.manifests[0]?.layers[0];
    assert.ok(built);
    layer = built;
    meta = await computeMetainfo(layer.digest, createReadStream(layer.path), layer.size);

    // The seeding node: an engine seeding the blob, its metainfo published at the tracker (what the seeder role does).
    seeding = await startSeedingEngine({ dir, trackerUrl: tracker.url, meta, blobPath: layer.path });
    registry.clearRequests();
  });

  after(async () => {
    await agent?.cleanup();
    await seeding?.close();
    await tracker?.close();
    await registry?.stop();
    if (dir) await removeTempDir(dir);
  });

  test('the check after the download gets its own deadline: 200 with verified bytes, no stale fallback', async () => {
    agent = await startTestAgent({
      origin: registry.url,
      overrides: {
        tracker: tracker.url, peerListen: { host: '127.0.0.1', port: 0 }, peerAdvertise: '127.0.0.1', prefetch: false,
        metainfoTimeout: 5000, swarmStallTimeout: 10_000,
        // Through the swarm, not origin-direct.
        swarmOriginDirectMaxBytes: 0,
        upstreamHeadersTimeout: HEADERS_TIMEOUT_MS, upstreamConnectTimeout: CONNECT_TIMEOUT_MS,
        // Every check asks the origin (the one after the download is not answered from the cache), and an earlier
        // decision may not stand in for an origin that did not answer: a timed-out check fails the pull.
        accessCacheTtl: 0, staleMaxAge: 0,
        downloadLimit: DOWNLOAD_LIMIT,
      },
    });
    const pulling = agent;
    const started = performance.now();
    const res = await rawRequest(pulling.url, `/v2/test/slow/blobs/${layer.digest}`, { timeoutMs: 20_000 });
    const elapsed = performance.now() - started;
    const logs = JSON.stringify(pulling.logs().filter((l) => typeof l.level === 'number' && l.level >= 40));
    assert.equal(res.status, 200, `${res.body.toString().slice(0, 300)}\nwarnings/errors: ${logs}`);
    assert.equal(res.body.length, layer.size);
    assert.equal(sha256Digest(res.body), layer.digest);

    // The premise: the blob came from the swarm, and the download outlasted one check's deadline.
    assert.equal(await pulling.metric('layerswarm_swarm_bytes_total', { source: 'peers' }), layer.size, 'from the swarm');
    assert.equal(await pulling.metric('layerswarm_swarm_fallbacks_total'), 0);
    const blobGets = (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`));
    assert.equal(blobGets.length, 0, 'no blob GET at the origin');
    assert.ok(elapsed > CHECK_DEADLINE_MS * 1.5, `the pull took ${Math.round(elapsed)} ms, not clearly longer than the ${CHECK_DEADLINE_MS} ms check deadline`);

    // Both checks (before and after the download) were answered by the origin; none timed out or went stale.
    assert.equal(await pulling.metric('layerswarm_access_checks_total', { result: 'allowed' }), 2);
    assert.equal(await pulling.metric('layerswarm_access_checks_total', { result: 'error' }), 0);
    assert.equal(await pulling.metric('layerswarm_access_checks_total', { result: 'stale' }), 0);
    assert.ok(!pulling.logs().some((l) => l.msg === 'origin unreachable; using an earlier access decision'), logs);
  });
});
