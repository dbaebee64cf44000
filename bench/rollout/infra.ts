/**
 * The rollout's fixed parts, all real: the origin (distribution registry, test/fixtures/registry.ts) with a generated
 * image pushed by skopeo, the counting/limiting origin proxy in front of it, the tracker (startTracker) and the
 * seeder (startSeeder, upload limit B_s through the product's bandwidth option), preheated by asking the tracker
 * for each layer's metainfo (the tracker asks the seeder, which fetches the layer from the origin once).
 *
 * The seeder's Seeding is built here rather than by createSwarmSeeding only to keep a handle on its SwarmEngine, whose
 * per-peer traffic table gives the bytes each agent received from the seeder; it is the same engine, transport
 * (limitTransport with the seeder's buckets), announce, peer id and engine defaults.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { limitTransport } from '../../agent/bandwidth.ts';
import { loadSeederConfig } from '../../agent/seeder/config.ts';
import { startSeeder, type RunningSeeder } from '../../agent/seeder/seeder.ts';
import type { Seeding, SeedingFactory } from '../../agent/seeder/seeding.ts';
import { SEEDER_ENGINE_DEFAULTS, seederPeerId } from '../../agent/seeder/swarm-seeding.ts';
import { trackerAnnounce } from '../../agent/swarm/engine/announce.ts';
import { swarmEngineConfig } from '../../agent/swarm/engine/config.ts';
import { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import { silentLogger } from '../../shared/logging.ts';
import { DEFAULT_PIECE_POLICY, pieceLengthFor, shouldSwarm } from '../../shared/swarm/metainfo.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { buildImage, pushImage } from '../../test/fixtures/images.ts';
import { startRegistry, type Registry } from '../../test/fixtures/registry.ts';
import { startOriginProxy, type OriginProxy } from './origin-proxy.ts';

export const REPOSITORY = 'rollout/app';
export const TAG = '1';

export interface ImageInfo {
  readonly repository: string;
  readonly tag: string;
  readonly manifestDigest: string;
  readonly config: { digest: string; size: number };
  readonly layers: Array<{ digest: string; size: number }>;
  /** S: config + layers, what every node fetches. */
  readonly bytes: number;
  /** Piece length of the largest layer under the seeder's piece policy. */
  readonly pieceBytes: number;
}

export interface Origin {
  readonly registry: Registry;
  readonly proxy: OriginProxy;
  readonly image: ImageInfo;
  close(): Promise<void>;
}

/** Registry + image + proxy (unlimited until setRate). */
export async function startOrigin(workDir: string, layers: number[], seed: string, pieceBytes: number, clientRate: (address: string) => number): Promise<Origin> {
  const registry = await startRegistry({ auth: 'none' });
  try {
    const built = await buildImage(join(workDir, 'layout'), { tag: TAG, seed, layers: layers.map((size) => ({ size })) });
    const pushed = await pushImage(built, `${registry.host}/${REPOSITORY}:${TAG}`);
    const m = pushed.manifests[0];
    if (m === undefined) throw new Error('pushed image has no manifest');
    const [host, port] = registry.host.split(':');
    const proxy = await startOriginProxy({ host: host ?? '127.0.0.1', port: Number(port) }, 0, clientRate);
    const layerList = m.layers.map((l) => ({ digest: l.digest, size: l.size }));
    const bytes = m.config.size + layerList.reduce((a, l) => a + l.size, 0);
    const largest = Math.max(...layerList.map((l) => l.size));
    return {
      registry, proxy,
      image: { repository: REPOSITORY, tag: TAG, manifestDigest: m.digest, config: { digest: m.config.digest, size: m.config.size }, layers: layerList, bytes, pieceBytes: pieceLengthFor(largest, { ...DEFAULT_PIECE_POLICY, minPieceLength: pieceBytes }) },
      close: async () => {
        await proxy.close();
        await registry.stop();
      },
    };
  } catch (err) {
    await registry.stop();
    throw err;
  }
}

export interface Swarm {
  readonly tracker: RunningTracker;
  readonly seeder: RunningSeeder;
  /** Bytes the seeder uploaded to each peer, by peer id prefix (8 hex), over every blob. */
  seederUploadsByPeer(): Map<string, number>;
  seederBytesUp(): number;
  close(): Promise<void>;
}

/** Tracker + seeder (upload limit `seedRate`), and every swarm-eligible layer preheated into the seeder. */
export async function startSwarm(workDir: string, origin: Origin, seedRate: number, pieceBytes: number): Promise<Swarm> {
  const tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
  let engine: SwarmEngine | undefined;
  const seeding: SeedingFactory = async (context) => {
    const dataDir = join(context.dataDir, 'swarm');
    await mkdir(dataDir, { recursive: true });
    const e = new SwarmEngine({
      transport: limitTransport(new TcpTransport(), context.bandwidth),
      announce: trackerAnnounce(context.tracker, { address: '127.0.0.1', seeder: true }),
      dataDir, config: swarmEngineConfig(SEEDER_ENGINE_DEFAULTS), logger: context.logger, peerId: seederPeerId(context.seederId),
    });
    await e.listen(context.peerListen);
    engine = e;
    const s: Seeding = {
      seed: async (meta) => {
        await e.seed(meta, { store: context.store }, context.lifetime);
      },
      unseed: async (digest) => {
        await e.stopSeeding(digest);
      },
      close: () => e.close(),
    };
    return s;
  };
  const config = loadSeederConfig([
    '--origin', `http://127.0.0.1:${origin.proxy.port}`, '--tracker', tracker.url, '--listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0',
    '--peer-advertise', '127.0.0.1', '--seeder-id', 'rollout-seeder', '--data-dir', join(workDir, 'seeder'),
    '--log-level', 'warn', '--heartbeat-interval', '1s', '--upload-limit', String(Math.round(seedRate)),
    '--min-piece-length', String(pieceBytes), '--max-piece-length', String(Math.max(pieceBytes, DEFAULT_PIECE_POLICY.maxPieceLength)),
  ], {});
  if (config === undefined) throw new Error('unreachable: --help');
  // Listening on port 0: the seeder advertises its real port to the tracker (advertiseUrl is derived after listen).
  const seeder = await startSeeder(config, { logger: silentLogger(), seeding });
  const client = new TrackerClient({ url: tracker.url, timeoutMs: 120_000, metainfoTimeoutMs: 150_000 });
  try {
    // Registered? (the first heartbeat runs at start; wait for the tracker to list the seeder.)
    for (let i = 0; ; i++) {
      const res = await fetch(`${seeder.url}/readyz`);
      if (res.ok && ((await res.json()) as { tracker?: string }).tracker === 'registered') break;
      if (i > 100) throw new Error('seeder did not register with the tracker');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const layer of origin.image.layers) {
      if (shouldSwarm(layer.size)) await client.getMetainfo({ digest: layer.digest, repository: origin.image.repository });
    }
  } finally {
    await client.close();
  }
  const uploads = (): Map<string, number> => {
    const out = new Map<string, number>();
    for (const layer of origin.image.layers) {
      const stats = engine?.torrentStats(layer.digest);
      for (const [peer, t] of Object.entries(stats?.peers ?? {})) out.set(peer.slice(0, 8), (out.get(peer.slice(0, 8)) ?? 0) + t.bytesUp);
    }
    return out;
  };
  return {
    tracker, seeder,
    seederUploadsByPeer: uploads,
    seederBytesUp: () => [...uploads().values()].reduce((a, b) => a + b, 0),
    close: async () => {
      await seeder.close();
      await tracker.close();
    },
  };
}
