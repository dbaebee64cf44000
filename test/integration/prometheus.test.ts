// A real Prometheus (Debian package `prometheus`, run as a child process, never the system service) scrapes a live
// tracker, seeder and two agents (each a `bin/layerswarm.mjs` process) every second while the agents pull an image
// through the swarm from a real registry; the test then asserts PromQL results against what happened (origin bytes ≈
// one image, peer and seeder bytes, no fallbacks, piece counts, tracker peer states, seeder productions) and runs
// `promtool check metrics` on every component's /metrics.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startAgentProcess, startSeederBesideRegistry, startTrackerProcess, type ClusterProcess } from '../fixtures/cluster.ts';
import { skopeoCopyToDir } from '../fixtures/clients/skopeo.ts';
import { buildImage, pushImage, type PushedImage } from '../fixtures/images.ts';
import { freePort, retryOnPortClash } from '../fixtures/ports.ts';
import { run, startProcess, waitFor, type ProcessHandle } from '../fixtures/process.ts';
import type { Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;
const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';

interface PromTarget {
  labels: { job: string; instance: string };
  health: string;
  lastScrape: string;
  lastError: string;
}

describe('Prometheus scrapes a live cluster during a swarm pull', () => {
  let work: string;
  let registry: Registry;
  let tracker: ClusterProcess;
  let seeder: ClusterProcess;
  let agents: ClusterProcess[] = [];
  let prometheus: ProcessHandle | undefined;
  let promUrl: string;

  /** An instant query whose result is one number (a scalar or a one-element vector); undefined when empty. */
  const query = async (expr: string): Promise<number | undefined> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { status: string; error?: string; data: { resultType: string; result: unknown } };
    assert.equal(body.status, 'success', `${expr}: ${body.error ?? ''}`);
    if (body.data.resultType === 'scalar') return Number((body.data.result as [number, string])[1]);
    const vector = body.data.result as Array<{ metric: Record<string, string>; value: [number, string] }>;
    assert.ok(vector.length <= 1, `${expr}: one series expected, got ${JSON.stringify(vector)}`);
    return vector[0] === undefined ? undefined : Number(vector[0].value[1]);
  };
  const vector = async (expr: string): Promise<Map<string, number>> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    assert.equal(body.status, 'success', expr);
    return new Map(body.data.result.map((r) => [r.metric['instance'] ?? JSON.stringify(r.metric), Number(r.value[1])]));
  };
  const targets = async (): Promise<PromTarget[]> =>
    ((await (await fetch(`${promUrl}/api/v1/targets?state=active`, { signal: AbortSignal.timeout(5000) })).json()) as { data: { activeTargets: PromTarget[] } }).data.activeTargets;

  before(async () => {
    work = await makeTempDir('prometheus');
    tracker = await startTrackerProcess();
    ({ seeder, registry } = await startSeederBesideRegistry({ tracker: tracker.url, dataDir: join(work, 'seeder'), seederId: 'prom-seeder', logLevel: 'warn' }));
    agents = await Promise.all([0, 1].map((i) => startAgentProcess({ name: `agent${i}`, origin: registry.url, tracker: tracker.url, dir: join(work, 'agents'), logLevel: 'warn' })));

    const job = (name: string, hosts: string[]): object => ({ job_name: name, static_configs: [{ targets: hosts }] });
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      scrape_configs: [
        job('layerswarm-tracker', [tracker.host]),
        job('layerswarm-seeder', [seeder.host]),
        job('layerswarm-agent', agents.map((a) => a.host)),
      ],
    };
    await writeFile(join(work, 'prometheus.yml'), JSON.stringify(config, null, 2)); // JSON is YAML
    prometheus = await retryOnPortClash(async () => {
      const port = await freePort();
      promUrl = `http://127.0.0.1:${port}`;
      return startProcess(PROMETHEUS, [
        `--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ], {
        name: 'prometheus', readyTimeoutMs: 20_000, stopGraceMs: 5000,
        ready: async (signal) => (await fetch(`${promUrl}/-/ready`, { signal })).ok,
      });
    });
  });
  after(async () => {
    await prometheus?.stop();
    await Promise.all(agents.map((a) => a.stop()));
    await seeder?.stop();
    await tracker?.stop();
    await registry?.stop();
    if (work) await removeTempDir(work);
  });

  test('PromQL over the scraped metrics matches the pull; promtool accepts every /metrics', async (t) => {
    // Two 8 MiB layers (swarmed: above the 4 MiB origin-direct threshold) and a small config (always from the origin).
    const image = await buildImage(join(work, 'layout'), { tag: 'v1', seed: 'prometheus-test', layers: [{ size: 8 * MiB, gzip: false }, { size: 8 * MiB, gzip: false }] });
    const pushed: PushedImage = await pushImage(image, `${registry.host}/test/app:v1`);
    const manifest = pushed.manifests[0];
    assert.ok(manifest);
    const layerBytes = manifest.layers.reduce((s, l) => s + l.size, 0);
    const imageBytes = layerBytes + manifest.config.size;
    // The push notification makes the seeder produce and seed both layers.
    let pieces = 0;
    for (const layer of manifest.layers) {
      const meta = await waitFor(async () => {
        const res = await fetch(`${tracker.url}/v1/metainfo/${layer.digest}`);
        return res.ok ? ((await res.json()) as { pieceHashes: string[] }) : undefined;
      }, { timeoutMs: 20_000, what: `metainfo of ${layer.digest}` });
      pieces += meta.pieceHashes.length;
      await waitFor(async () => {
        const { swarms } = (await (await fetch(`${tracker.url}/v1/swarms?limit=100`)).json()) as { swarms: Array<{ digest: string; seeders: number }> };
        return swarms.some((s) => s.digest === layer.digest && s.seeders > 0);
      }, { timeoutMs: 20_000, what: `the seeder seeding ${layer.digest}` });
    }

    // Pull through agent0, then agent1 (which the tracker points at agent0, complete, and at the seeder).
    for (const [i, agent] of agents.entries()) {
      const res = await skopeoCopyToDir(pushed.reference, join(work, `pull-${i}`), { mirrorConf: { mirror: agent.host }, timeoutMs: 60_000 });
      assert.equal(res.manifestDigest, pushed.digest);
      for (const l of manifest.layers) assert.ok(res.blobs.some((b) => b.digest === l.digest && b.size === l.size), `agent${i}: ${l.digest} pulled and verified`);
    }
    const pulledAt = Date.now();

    // Every target up and scraped (a scrape that started) after the pull finished.
    await waitFor(async () => {
      const active = await targets();
      return active.length === 4 && active.every((t) => t.health === 'up' && Date.parse(t.lastScrape) > pulledAt + 100);
    }, { timeoutMs: 15_000, intervalMs: 200, what: 'a scrape of every target after the pull' });
    assert.equal(await query('count(up == 1)'), 4);

    // Agents: bytes by source.
    const originAll = await query('sum(layerswarm_blob_bytes_total{source="origin"}) + sum(layerswarm_seeder_origin_bytes_total)');
    assert.ok(originAll !== undefined && originAll >= imageBytes && originAll <= 1.05 * imageBytes, `origin bytes (agents + seeder) ${originAll} ≈ image ${imageBytes}`);
    // Exactly: the seeder fetched each layer once, each agent the config (small blobs never use the swarm).
    assert.equal(originAll, layerBytes + 2 * manifest.config.size);
    assert.equal(await query('sum(layerswarm_seeder_origin_bytes_total)'), layerBytes);
    const swarmed = await vector('sum by (instance) (layerswarm_blob_bytes_total{job="layerswarm-agent", source=~"peer|seeder"})');
    assert.deepEqual([...swarmed.values()], [layerBytes, layerBytes], `each agent got both layers from the swarm: ${JSON.stringify([...swarmed])}`);
    const peerBytes = await query('max(layerswarm_blob_bytes_total{source="peer"})');
    assert.ok(peerBytes !== undefined && peerBytes > 0, `peer bytes on at least one agent: ${peerBytes}`);
    const fromSeeder = await query('sum(layerswarm_blob_bytes_total{source="seeder"})');
    assert.ok(fromSeeder !== undefined && fromSeeder > 0, `seeder bytes ${fromSeeder}`);
    const seeded = await query('sum(layerswarm_seeder_seeded_bytes_total)');
    assert.ok(seeded !== undefined && seeded >= fromSeeder, `the seeder uploaded ${seeded} ≥ the ${fromSeeder} agents credited to it`);
    const offload = await query('sum(layerswarm_blob_bytes_total{source=~"peer|seeder"}) / sum(layerswarm_blob_bytes_total{source=~"peer|seeder|origin"})');
    assert.ok(offload !== undefined && offload > 0.99 && offload < 1, `origin offload ratio ${offload}`);
    assert.equal(await query('sum(layerswarm_swarm_fallbacks_total)'), 0);
    assert.equal(await query('sum(layerswarm_swarm_pieces_total{result="failed"})'), 0);
    assert.equal(await query('sum(layerswarm_swarm_pieces_total{result="verified"})'), 2 * pieces);
    // One pull-duration observation per blob GET (2 agents × 3 blobs); peers were connected.
    assert.equal(await query('sum(layerswarm_blob_pull_duration_seconds_count)'), 6);
    assert.equal(await query('sum(layerswarm_blob_fetch_duration_seconds_count{source="swarm"})'), 6);
    assert.equal(await query('sum(layerswarm_store_evictions_total)'), 0);
    assert.equal(await query('sum(layerswarm_access_checks_total{result="denied"})') ?? 0, 0);

    // Tracker: both agents complete in both swarms (the last announce may land just after the pull: poll).
    await waitFor(async () => (await query('sum(layerswarm_tracker_peers_by_state{state="complete"})')) === 4, {
      timeoutMs: 10_000, intervalMs: 200, what: 'the tracker gauge: 4 complete peers',
    });
    assert.equal(await query('sum(layerswarm_tracker_peers_by_state{state="seeder"})'), 2);
    assert.equal(await query('sum(layerswarm_tracker_peers_by_state{state="leecher"})'), 0);
    assert.equal(await query('layerswarm_tracker_swarms'), 2);
    const announces = await query('sum(layerswarm_tracker_announces_total{result="ok"})');
    assert.ok(announces !== undefined && announces >= 6, `announces ${announces}`);
    assert.equal(await query('sum(layerswarm_tracker_handout_duration_seconds_count)'), announces, 'one handout latency observation per ok announce');
    const p99 = await query('histogram_quantile(0.99, sum by (le) (layerswarm_tracker_handout_duration_seconds_bucket))');
    assert.ok(p99 !== undefined && p99 > 0 && p99 < 0.1, `handout latency p99 ${p99} s`);

    // Seeder: both layers preheated, metainfo generated twice.
    assert.equal(await query('sum(layerswarm_seeder_preheats_total{result="produced"})'), 2);
    assert.equal(await query('layerswarm_seeder_metainfo_generation_seconds_count'), 2);

    t.diagnostic(JSON.stringify({ imageBytes, layerBytes, originAll, peerBytes, fromSeeder, seeded, offload, pieces: 2 * pieces, announces, handoutP99: p99 }));

    // promtool lints each component's exposition.
    for (const p of [tracker, seeder, ...agents]) {
      const text = await (await fetch(`${p.url}/metrics`)).text();
      const res = await run(PROMTOOL, ['check', 'metrics'], { input: text, timeoutMs: 10_000 });
      assert.equal(`${res.stdout}${res.stderr}`.trim(), '', `promtool check metrics on ${p.name}`);
    }
  });
});
