// `layerswarm seeder` seeds pieces: a real origin (distribution 2.8 with push notifications) preheats a ~10 MiB
// layer into the seeder (CLI subprocess, swarm engine on --peer-listen), which announces itself to a real in-process
// tracker as a seeder. A downloader (an in-process SwarmEngine over TCP, announcing to the same tracker) then gets
// the layer over the piece protocol: the bytes equal the layer and the origin served the layer once in total (the
// seeder's preheat fetch).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSeederConfig, peerAdvertiseOf } from '../../agent/seeder/config.ts';
import { startSeeder } from '../../agent/seeder/seeder.ts';
import { createSwarmSeeding, seederPeerId } from '../../agent/seeder/swarm-seeding.ts';
import { trackerAnnounce } from '../../agent/swarm/engine/announce.ts';
import { swarmEngineConfig } from '../../agent/swarm/engine/config.ts';
import { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import { silentLogger } from '../../shared/logging.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startSeederBesideRegistry, type ClusterProcess } from '../fixtures/cluster.ts';
import { buildImage, pushImage, type BuiltImage } from '../fixtures/images.ts';
import { waitFor } from '../fixtures/process.ts';
import type { Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;
const SEEDER_ID = 'seeder-swarm-test';

describe('layerswarm seeder (CLI): piece seeding over the swarm engine', () => {
  let work: string;
  let tracker: RunningTracker;
  let registry: Registry;
  let seeder: ClusterProcess;
  let peerPort: number;
  let image: BuiltImage;
  let client: TrackerClient;
  let downloader: SwarmEngine;
  const newDownloader = async (name: string): Promise<SwarmEngine> => {
    const engine = new SwarmEngine({
      transport: new TcpTransport(),
      announce: trackerAnnounce(client, { address: '127.0.0.1' }),
      dataDir: join(work, name),
      config: swarmEngineConfig({ tickMs: 50, scheduler: { announceIntervalMs: 300, requestTimeoutMs: 5000 } }),
      logger: silentLogger(),
    });
    await engine.listen({ host: '127.0.0.1', port: 0 });
    return engine;
  };

  before(async () => {
    work = await makeTempDir('seeder-swarm');
    tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
    ({ seeder, registry, peerPort } = await startSeederBesideRegistry({ tracker: tracker.url, dataDir: `${work}/seeder`, seederId: SEEDER_ID, logLevel: 'warn' }));
    image = await buildImage(`${work}/layout`, { tag: '1', seed: 'seeder-swarm', layers: [{ size: 10 * MiB }] });
    client = new TrackerClient({ url: tracker.url, timeoutMs: 5000 });
    downloader = await newDownloader('downloader');
  });
  after(async () => {
    await downloader?.close({ removeFiles: true });
    await client?.close();
    await seeder?.stop();
    await registry?.stop();
    await tracker?.close();
    if (work) await removeTempDir(work);
  });

  test('a pushed layer is preheated, seeded, and downloaded from the seeder over the piece protocol', async () => {
    await pushImage(image, `${registry.host}/test/app:1`);
    const layer = image.manifests[0]?.layers[0];
    assert.ok(layer);
    assert.ok(layer.size > 9 * MiB, `layer of ${layer.size} bytes`);

    const meta = await waitFor(() => tracker.metainfo.peek(layer.digest), { timeoutMs: 15_000, what: 'metainfo of the layer at the tracker' });
    // Seeding starts before the metainfo is published; its first announce follows at once.
    const seederPeer = await waitFor(() => tracker.store.peers(layer.digest).find((p) => p.seeder), { timeoutMs: 5000, what: 'the seeder in the layer\'s swarm' });
    assert.equal(seederPeer.peerId, seederPeerId(SEEDER_ID));
    assert.deepEqual({ address: seederPeer.address, port: seederPeer.port, complete: seederPeer.complete }, { address: '127.0.0.1', port: peerPort, complete: true });

    const result = await downloader.download(meta, { signal: AbortSignal.timeout(10_000) });
    assert.ok((await readFile(result.path)).equals(await readFile(layer.path)), 'downloaded bytes equal the layer');
    assert.equal(result.stats.piecesDown, meta.pieceHashes.length);
    assert.equal(result.stats.peers[seederPeer.peerId]?.bytesDown, layer.size, 'every byte came from the seeder');

    const layerGets = (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`));
    assert.equal(layerGets.length, 1, JSON.stringify(layerGets));
    assert.ok(layerGets[0]?.userAgent.startsWith('layerswarm-seeder'), 'the one origin fetch was the seeder\'s');
  });

  test('SIGTERM → clean exit 0 (the swarm engine closes)', async () => {
    process.kill(seeder.handle.pid, 'SIGTERM');
    assert.equal(await seeder.handle.exited, 0);
  });

  test('a restarted seeder seeds the blobs it holds, without the origin', async () => {
    const layer = image.manifests[0]?.layers[0];
    const meta = layer && tracker.metainfo.peek(layer.digest);
    assert.ok(layer && meta);
    // The first downloader seeds its completed copy too: stop it so only the seeder can serve.
    await downloader.close({ removeFiles: true });
    tracker.store.remove(layer.digest, downloader.peerId);
    tracker.store.remove(layer.digest, seederPeerId(SEEDER_ID));
    const config = loadSeederConfig([
      '--origin', registry.url, '--tracker', tracker.url, '--listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0',
      '--seeder-id', SEEDER_ID, '--data-dir', `${work}/seeder`, '--heartbeat-interval', '1s',
    ], {});
    assert.ok(config);
    const restarted = await startSeeder(config, { logger: silentLogger(), seeding: (context) => createSwarmSeeding(context, { advertise: peerAdvertiseOf(config) }) });
    try {
      const peer = await waitFor(() => tracker.store.peers(layer.digest).find((p) => p.seeder), { timeoutMs: 5000, what: 'the restarted seeder in the swarm' });
      assert.equal(peer.peerId, seederPeerId(SEEDER_ID), 'same peer id across restarts');
      const second = await newDownloader('downloader2');
      try {
        const result = await second.download(meta, { signal: AbortSignal.timeout(10_000) });
        assert.ok((await readFile(result.path)).equals(await readFile(layer.path)));
        assert.equal(result.stats.peers[peer.peerId]?.bytesDown, layer.size);
      } finally {
        await second.close({ removeFiles: true });
      }
    } finally {
      await restarted.close();
    }
    const layerGets = (await registry.settledRequests()).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${layer.digest}`));
    assert.equal(layerGets.length, 1, 'still the one preheat fetch');
  });

  test('--peer-advertise: default from --peer-listen, validated', () => {
    const base = ['--origin', 'http://127.0.0.1:1', '--tracker', 'http://127.0.0.1:2'];
    const load = (...extra: string[]) => loadSeederConfig([...base, ...extra], {});
    const explicit = load('--peer-listen', '10.1.2.3:5071');
    assert.ok(explicit);
    assert.equal(peerAdvertiseOf(explicit), '10.1.2.3');
    const wildcard = load();
    assert.ok(wildcard);
    assert.equal(wildcard.peerListen.host, '0.0.0.0');
    assert.match(peerAdvertiseOf(wildcard), /^\d+\.\d+\.\d+\.\d+$/);
    assert.notEqual(peerAdvertiseOf(wildcard), '0.0.0.0');
    const given = load('--peer-advertise', '192.0.2.7');
    assert.ok(given);
    assert.equal(peerAdvertiseOf(given), '192.0.2.7');
    assert.throws(() => load('--peer-advertise', 'seeder.example'), /peerAdvertise "seeder.example" is not an IP address/);
    assert.throws(() => load('--peer-advertise', '0.0.0.0'), /wildcard/);
    assert.throws(() => load('--peer-listen', 'seeder.example:5071'), /set peerAdvertise/);
  });
});
