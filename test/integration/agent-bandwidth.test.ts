// An agent's downloadLimit caps blob bodies from a real origin registry even without a tracker (origin-only mode),
// measured on the agent's bucket clock (virtual: it advances only when the bucket makes the download wait, so the
// test asserts bytes / rate without timing flakiness); uploadLimit / downloadLimit are per agent instance.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { BandwidthClock } from '../../agent/bandwidth.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { rawRequest } from '../fixtures/http.ts';
import { buildImage, pushImage, sha256Digest, type BuiltLayer } from '../fixtures/images.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;

function virtualClock(): BandwidthClock & { elapsed(): number } {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
    },
    elapsed: () => t,
  };
}

describe('agent bandwidth limits', () => {
  let dir: string;
  let registry: Registry;
  let layer: BuiltLayer;
  const agents: TestAgent[] = [];

  before(async () => {
    dir = await makeTempDir('agent-bandwidth-');
    registry = await startRegistry({ auth: 'none' });
    const image = await buildImage(join(dir, 'img'), { tag: '1', seed: 'agent-bandwidth', layers: [{ size: 6 * MiB, gzip: false }] });
    await pushImage(image, `${registry.host}/test/bw:1`);
    const built = image.manifests[0]?.layers[0];
    assert.ok(built);
    layer = built;
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.cleanup()));
    await registry?.stop();
    if (dir) await removeTempDir(dir);
  });

  test('origin-only agent: a blob download is charged to the download bucket at the configured rate', async () => {
    const clock = virtualClock();
    const agent = await startTestAgent({
      origin: registry.url,
      overrides: { prefetch: false, downloadLimit: 2 * MiB, uploadLimit: 3 * MiB },
      deps: { bandwidthClock: clock },
    });
    agents.push(agent);
    const { download, upload } = agent.running.bandwidth;
    assert.ok(download && upload);
    assert.equal(download.rate, 2 * MiB);
    assert.equal(upload.rate, 3 * MiB);

    const res = await rawRequest(agent.url, `/v2/test/bw/blobs/${layer.digest}`, { timeoutMs: 20_000 });
    assert.equal(res.status, 200);
    assert.equal(sha256Digest(res.body), layer.digest);
    const expected = ((layer.size - download.burst) * 1000) / download.rate;
    assert.ok(clock.elapsed() >= expected - 1, `bucket time ${clock.elapsed()} ms, expected ≥ ${expected}`);
    // Whole-ms rounding per chunk only (the registry sends ≤ 64 KiB chunks here: ≤ ~100 chunks).
    assert.ok(clock.elapsed() <= expected + 250, `bucket time ${clock.elapsed()} ms, expected ≈ ${expected}`);

    // A second agent in the same process has its own buckets.
    const other = await startTestAgent({ origin: registry.url, overrides: { prefetch: false, downloadLimit: 2 * MiB } });
    agents.push(other);
    assert.ok(other.running.bandwidth.download);
    assert.notEqual(other.running.bandwidth.download, download);
    assert.equal(other.running.bandwidth.upload, undefined);
  });

  test('unlimited by default', async () => {
    const agent = await startTestAgent({ origin: registry.url, overrides: { prefetch: false } });
    agents.push(agent);
    assert.equal(agent.running.bandwidth.download, undefined);
    assert.equal(agent.running.bandwidth.upload, undefined);
    const res = await rawRequest(agent.url, `/v2/test/bw/blobs/${layer.digest}`, { timeoutMs: 20_000 });
    assert.equal(res.status, 200);
    assert.equal(sha256Digest(res.body), layer.digest);
  });
});
