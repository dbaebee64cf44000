// Multi-process integration on loopback with the real distribution registry: a tracker, a seeder and agents, each a
// separate `bin/layerswarm.mjs` process; skopeo pulls through each agent's registry endpoint (registries.conf mirror).
//
// Where pieces came from: no metric says which peer sent a piece, so the agents and the seeder run with
// --log-level trace and every `sendPiece` command of every process is counted (by receiving peer id), minus the
// uploads it logged as failed (test/fixtures/cluster.ts piecesSent). The seeder's peer id is fixed by its seeder id.
//
// Faults (smaller images, 3–4 agents): an agent started with LAYERSWARM_TEST_CORRUPT_UPLOADS=1 (a test-only hook in
// agent/swarm/engine/torrent.ts) flips a byte of every piece it uploads; the tracker, then the seeder, SIGKILLed
// mid-pull. Every pull is checked by skopeo's dir output hashed against the manifest's digests.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { seederPeerId } from '../../agent/seeder/swarm-seeding.ts';
import { pieceLengthFor, pieceRange } from '../../shared/swarm/metainfo.ts';
import { piecesSent, startAgentProcess, startSeederBesideRegistry, startTrackerProcess, enginePeerPrefix, type ClusterProcess, type LogLine } from '../fixtures/cluster.ts';
import { skopeoCopyToDir } from '../fixtures/clients/skopeo.ts';
import { buildImage, pushImage, type PushedImage } from '../fixtures/images.ts';
import { waitFor } from '../fixtures/process.ts';
import type { Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;
const SEEDER_ID = 'cluster-seeder';
const SEEDER_PEER = seederPeerId(SEEDER_ID);

describe('swarm cluster: tracker + seeder + agents as processes, real registry, skopeo pulls', () => {
  let work: string;
  let registry: Registry;
  let tracker: ClusterProcess;
  let trackerPort: number;
  let seeder: ClusterProcess;
  let agents: ClusterProcess[] = [];
  const t0 = performance.now();
  const elapsed = (): string => `${((performance.now() - t0) / 1000).toFixed(1)}s`;

  const stopAgents = async (): Promise<void> => {
    await Promise.all(agents.map((a) => a.stop()));
    agents = [];
  };
  const blobGetBytes = async (digests?: Set<string>): Promise<{ bytes: number; gets: Array<{ path: string; bytes: number; ua: string }> }> => {
    const gets = (await registry.settledRequests())
      .filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.path) && (r.status === 200 || r.status === 206))
      .filter((r) => digests === undefined || digests.has(r.path.slice(r.path.lastIndexOf('/') + 1)))
      .map((r) => ({ path: r.path, bytes: r.bytes, ua: r.userAgent }));
    return { bytes: gets.reduce((s, g) => s + g.bytes, 0), gets };
  };
  /** Build + push with notifications, then wait until the seeder produced and published every large layer. */
  const pushAndPreheat = async (tag: string, layers: number, size: number): Promise<PushedImage> => {
    const image = await buildImage(join(work, `layout-${tag}`), { tag, seed: `cluster-${tag}`, layers: Array.from({ length: layers }, () => ({ size, gzip: false })) });
    const pushed = await pushImage(image, `${registry.host}/test/app:${tag}`);
    const manifest = pushed.manifests[0];
    assert.ok(manifest);
    for (const layer of manifest.layers) {
      await waitFor(async () => (await fetch(`${tracker.url}/v1/metainfo/${layer.digest}`)).ok, { timeoutMs: 20_000, what: `tracker metainfo of ${layer.digest}` });
      await waitFor(async () => {
        const { swarms } = (await (await fetch(`${tracker.url}/v1/swarms?limit=1000`)).json()) as { swarms: Array<{ digest: string; seeders: number }> };
        return swarms.some((s) => s.digest === layer.digest && s.seeders > 0);
      }, { timeoutMs: 20_000, what: `the seeder seeding ${layer.digest}` });
    }
    return pushed;
  };
  const pull = async (agent: ClusterProcess, image: PushedImage, label: string): Promise<void> => {
    const manifest = image.manifests[0];
    assert.ok(manifest);
    const dir = join(work, `pull-${label}`);
    const res = await skopeoCopyToDir(`${image.reference}`, dir, { mirrorConf: { mirror: agent.host }, timeoutMs: 60_000 });
    // readSkopeoDir hashed every blob file and checked it against its digest (file name).
    assert.deepEqual(res.layers, manifest.layers.map((l) => l.digest), `${label}: layers`);
    for (const l of manifest.layers) assert.ok(res.blobs.some((b) => b.digest === l.digest && b.size === l.size), `${label}: ${l.digest} pulled and verified`);
    assert.equal(res.manifestDigest, image.digest, `${label}: manifest digest`);
    await removeTempDir(dir).catch(() => undefined);
  };
  const startAgents = async (n: number, prefix: string, extra: { args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ClusterProcess[]> => {
    const started = await Promise.all(Array.from({ length: n }, (_, i) => startAgentProcess({
      name: `${prefix}${i}`, origin: registry.url, tracker: tracker.url, dir: join(work, 'agents'), logLevel: 'trace', ...extra,
    })));
    agents.push(...started);
    return started;
  };

  before(async () => {
    work = await makeTempDir('swarm-cluster');
    tracker = await startTrackerProcess();
    trackerPort = Number(new URL(tracker.url).port);
    ({ seeder, registry } = await startSeederBesideRegistry({ tracker: tracker.url, dataDir: join(work, 'seeder'), seederId: SEEDER_ID, logLevel: 'trace' }));
  });
  after(async () => {
    await stopAgents().catch(() => undefined);
    await seeder?.stop();
    await tracker?.stop();
    await registry?.stop();
    if (work) await removeTempDir(work);
  });

  test('6 agents pull a 100 MiB, 5-layer image at once: verified, origin ≈ 1× image, every agent got pieces from other agents', async () => {
    const pushed = await pushAndPreheat('big', 5, 20 * MiB);
    const manifest = pushed.manifests[0];
    assert.ok(manifest);
    const imageBytes = manifest.layers.reduce((s, l) => s + l.size, 0) + manifest.config.size;
    const layerDigests = new Set(manifest.layers.map((l) => l.digest));
    // Preheated before the first pull: the only layer GETs so far are the seeder's, one per layer.
    const preheat = await blobGetBytes(layerDigests);
    assert.equal(preheat.gets.length, manifest.layers.length, JSON.stringify(preheat.gets));
    assert.ok(preheat.gets.every((g) => g.ua.startsWith('layerswarm-seeder')), JSON.stringify(preheat.gets));
    const preheated = elapsed();

    const six = await startAgents(6, 'agent');
    const started = performance.now();
    await Promise.all(six.map((a, i) => pull(a, pushed, `big-${i}`)));
    const pullMs = performance.now() - started;

    // Origin: preheat (1× the layers) + what the agents fetched themselves (manifests are not blobs; config is small).
    const origin = await blobGetBytes();
    assert.ok(origin.bytes <= 1.1 * imageBytes, `origin sent ${origin.bytes} blob bytes for an image of ${imageBytes}: ${JSON.stringify(origin.gets)}`);

    // Agents' own accounting: every large layer came from peers.
    for (const a of six) {
      assert.equal(await a.metric('layerswarm_swarm_bytes_total', { source: 'peers' }), imageBytes - manifest.config.size, `${a.name} swarm bytes from peers`);
      assert.equal(await a.metric('layerswarm_swarm_fallbacks_total'), 0, `${a.name} fallbacks`);
    }

    // Who sent what: seeder uploads vs uploads by agents, per receiving agent. The agents' trace logs are complete
    // only once they exited (pino writes asynchronously; under load the last lines may still be buffered).
    await Promise.all(six.map((a) => a.stop()));
    const sizeOf = new Map(manifest.layers.map((l) => [l.digest.slice(7, 19), l.size]));
    const bytesOf = (digest12: string, piece: number): number => {
      const size = sizeOf.get(digest12) ?? 0;
      return pieceRange({ size, pieceLength: pieceLengthFor(size) }, piece).length;
    };
    const seederUp = piecesSent(seeder).filter((s) => sizeOf.has(s.digest12)).reduce((sum, s) => sum + bytesOf(s.digest12, s.piece), 0);
    const fromAgents = new Map<string, number>();
    let agentsUp = 0;
    for (const a of six) {
      for (const s of piecesSent(a)) {
        if (!sizeOf.has(s.digest12)) continue;
        const b = bytesOf(s.digest12, s.piece);
        agentsUp += b;
        fromAgents.set(s.to, (fromAgents.get(s.to) ?? 0) + b);
      }
    }
    const totalDown = 6 * (imageBytes - manifest.config.size);
    const perAgent = six.map((a) => {
      const prefix = enginePeerPrefix(a);
      assert.ok(prefix, `${a.name} peer id in its logs`);
      const got = [...fromAgents].filter(([to]) => to.startsWith(prefix)).reduce((s, [, b]) => s + b, 0);
      return { agent: a.name, fromOtherAgentsMiB: +(got / MiB).toFixed(1) };
    });
    const report = {
      imageMiB: +(imageBytes / MiB).toFixed(2), originBlobMiB: +(origin.bytes / MiB).toFixed(2), originGets: origin.gets.length,
      agentsDownloadedMiB: totalDown / MiB, seederUploadedMiB: +(seederUp / MiB).toFixed(1), agentsUploadedMiB: +(agentsUp / MiB).toFixed(1),
      perAgent, preheatedAt: preheated, pullMs: Math.round(pullMs),
    };
    console.log(`[swarm-cluster] ${JSON.stringify(report)}`);
    assert.ok(!fromAgents.has(SEEDER_PEER), 'the seeder downloads nothing');
    // Pieces flow between agents. Not necessarily into every one: an agent the seeder serves fast enough can get its
    // whole image from the seeder (seen once in CI: 1 of 6 with 0 MiB from agents, the others 45–111 MiB).
    const fedByAgents = perAgent.filter((p) => p.fromOtherAgentsMiB > 0).length;
    assert.ok(fedByAgents >= perAgent.length - 1, `at least ${perAgent.length - 1} of ${perAgent.length} agents received pieces from other agents: ${JSON.stringify(report)}`);
    // Observed on 2 cores: the seeder sends ~50 % of what the agents download, agents the rest (plus endgame duplicates).
    assert.ok(seederUp <= 0.8 * totalDown, `most bytes must not come from the seeder: ${JSON.stringify(report)}`);
    await stopAgents();
  });

  test('an agent serving corrupt pieces: its pieces are rejected, it is banned, no corrupt byte is served', async () => {
    const pushed = await pushAndPreheat('corrupt', 3, 10 * MiB);
    const manifest = pushed.manifests[0];
    assert.ok(manifest);
    const [bad] = await startAgents(1, 'corrupt', { env: { LAYERSWARM_TEST_CORRUPT_UPLOADS: '1' } });
    assert.ok(bad);
    // It downloads correctly (only its uploads are corrupted), then seeds every layer as a complete peer.
    await pull(bad, pushed, 'corrupt-self');
    const badPrefix = enginePeerPrefix(bad);
    assert.ok(badPrefix);
    const three = await startAgents(3, 'honest');
    await Promise.all(three.map((a, i) => pull(a, pushed, `corrupt-${i}`)));

    const digests12 = new Set(manifest.layers.map((l) => l.digest.slice(7, 19)));
    let rejected = 0;
    for (const a of three) {
      const logs = a.logs();
      for (const d of digests12) {
        const inTorrent = logs.filter((l) => l['digest'] === d);
        const failures = inTorrent.filter((l) => l.msg === 'piece failed verification');
        assert.ok(failures.every((l) => String(l['peer']).startsWith(badPrefix)), `${a.name}: only the corrupt peer sent bad pieces`);
        rejected += failures.length;
        const first = inTorrent.findIndex((l) => l.msg === 'piece failed verification');
        if (first < 0) continue;
        // Banned: closed for bad_piece, never asked again for this blob.
        assert.ok(inTorrent.some((l) => l.msg === 'closing peer' && l['reason'] === 'bad_piece' && String(l['peer']).startsWith(badPrefix)), `${a.name}: closed the corrupt peer`);
        const laterAsks: LogLine[] = inTorrent.slice(first + 1).filter((l) => l['command'] === 'request' && String(l['peer']).startsWith(badPrefix));
        assert.equal(laterAsks.length, 0, `${a.name} asked the banned peer again: ${JSON.stringify(laterAsks.slice(0, 3))}`);
        assert.ok(failures.length <= 3, `${a.name}: at most a pipeline of bad pieces from it per blob, got ${failures.length}`);
      }
      assert.equal(await a.metric('layerswarm_blob_fetches_total', { result: 'ok' }), await a.metric('layerswarm_blob_fetches_total'), `${a.name}: every blob fetch ok`);
    }
    // Every (receiver, blob) the corrupt agent sent pieces to rejected one and banned it (the rest of its pipelined
    // pieces arrive on a connection already closed and are dropped unread).
    const sentTo = new Set(piecesSent(bad).filter((s) => digests12.has(s.digest12)).map((s) => `${s.to.slice(0, 8)} ${s.digest12}`));
    const rejectedBy = new Set(three.flatMap((a) => a.logs().filter((l) => l.msg === 'piece failed verification').map((l) => `${enginePeerPrefix(a) ?? '?'} ${String(l['digest'])}`)));
    console.log(`[swarm-cluster] corrupt: the corrupt agent sent pieces in ${sentTo.size} (agent, blob) pairs; ${rejected} pieces rejected in ${rejectedBy.size} pairs`);
    assert.ok(sentTo.size > 0, 'the corrupt agent was asked for pieces (else the test shows nothing)');
    // Every rejection was of a piece it sent, and its pieces were rejected in most pairs. Not necessarily all: a
    // receiver that completes the blob from others closes the connection, and a corrupt piece still in flight is
    // dropped unread (seen in CI: 8 of 9 pairs). What matters holds either way: no corrupt piece was accepted (every
    // fetch ok, digests verified by the pulls) and every receiver that got one banned the sender (above).
    for (const pair of rejectedBy) assert.ok(sentTo.has(pair), `rejected a piece the corrupt agent did not send: ${pair}`);
    assert.ok(rejectedBy.size >= Math.ceil(sentTo.size / 2), `rejected in ${rejectedBy.size} of ${sentTo.size} pairs`);
    await stopAgents();
  });

  /** 3 fresh agents pull a preheated 3 × 10 MiB image; `fault` runs mid-pull (the seeder has sent 12 pieces of it). */
  const pullThroughFault = async (tag: string, fault: () => Promise<void>): Promise<Record<string, unknown>> => {
    const pushed = await pushAndPreheat(tag, 3, 10 * MiB);
    const manifest = pushed.manifests[0];
    assert.ok(manifest);
    const three = await startAgents(3, `${tag}-`, { args: ['--swarm-stall-timeout', '3s', '--metainfo-timeout', '2s'] });
    const started = performance.now();
    const pulls = Promise.all(three.map((a, i) => pull(a, pushed, `${tag}-${i}`)));
    pulls.catch(() => undefined);
    // Mid-pull: the seeder has sent 12 of the 3 × 3 × 10 pieces the agents need (the trace log of its sendPiece commands).
    const digests12 = new Set(manifest.layers.map((l) => l.digest.slice(7, 19)));
    await waitFor(() => piecesSent(seeder).filter((x) => digests12.has(x.digest12)).length >= 12, { timeoutMs: 20_000, intervalMs: 5, what: 'pieces under way' });
    const faultAt = Math.round(performance.now() - started);
    await fault();
    await pulls;
    const pullMs = Math.round(performance.now() - started);
    const layerBytes = manifest.layers.reduce((sum, l) => sum + l.size, 0);
    const per = await Promise.all(three.map(async (a) => {
      const peers = await a.metric('layerswarm_swarm_bytes_total', { source: 'peers' });
      const fromOrigin = await a.metric('layerswarm_swarm_bytes_total', { source: 'origin' });
      assert.equal(peers + fromOrigin, layerBytes, `${a.name}: every large layer committed, from peers or the origin`);
      return {
        agent: a.name, peersMiB: +(peers / MiB).toFixed(1), originMiB: +(fromOrigin / MiB).toFixed(1),
        fallbacks: Object.fromEntries(await Promise.all(['tracker_unreachable', 'no_metainfo', 'stalled', 'swarm_error'].map(async (r) => [r, await a.metric('layerswarm_swarm_fallbacks_total', { reason: r })]))),
      };
    }));
    const origin = await blobGetBytes(new Set(manifest.layers.map((l) => l.digest)));
    // At most the preheat plus one origin download per agent and layer: no retry storm.
    assert.ok(origin.bytes <= 4 * layerBytes, `origin sent ${origin.bytes} layer bytes`);
    return { faultAtMs: faultAt, pullMs, originLayerMiB: +(origin.bytes / MiB).toFixed(1), per };
  };

  test('the tracker killed mid-pull: pulls complete (known peers, origin fallback)', async () => {
    const report = await pullThroughFault('tk', () => tracker.kill());
    console.log(`[swarm-cluster] tracker killed: ${JSON.stringify(report)}`);
    await stopAgents();
    tracker = await startTrackerProcess({ port: trackerPort });
    await waitFor(async () => ((await (await fetch(`${seeder.url}/readyz`)).json()) as { tracker?: string }).tracker === 'registered', { timeoutMs: 10_000, what: 'the seeder registered again' });
  });

  test('the seeder killed mid-pull: pulls complete via peers or the origin', async () => {
    const report = await pullThroughFault('sk', () => seeder.kill());
    console.log(`[swarm-cluster] seeder killed: ${JSON.stringify(report)}`);
    await stopAgents();
  });
});
