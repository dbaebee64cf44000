/**
 * The seeder's Seeding over the swarm engine: one SwarmEngine on TCP listening on --peer-listen, seeding every
 * produced blob from the seeder's verified BlobStore (pieces are read through store.open, which pins the blob while
 * it is read) and announcing it to the tracker as a complete seeder at `advertise`:port.
 *
 * Peer id: derived from the seeder id (sha1 of a fixed prefix + the id), so a restarted seeder announces under the
 * same id and replaces its own stale tracker entry instead of leaving a dead peer in every swarm until it expires.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LayerswarmError } from '../../shared/errors.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';
import { limitTransport } from '../bandwidth.ts';
import { trackerAnnounce } from '../swarm/engine/announce.ts';
import { swarmEngineConfig, type SwarmEngineConfigInput } from '../swarm/engine/config.ts';
import { SwarmEngine } from '../swarm/engine/engine.ts';
import { peerAdvertiseOf } from './config.ts';
import type { Seeding, SeedingContext } from './seeding.ts';

export interface SwarmSeedingOptions {
  /** The IP peers dial (announced to the tracker). Default: peerAdvertiseOf({ peerListen }) (config.ts). */
  readonly advertise?: string;
  /** Zone announced to the tracker (zone-aware handout). */
  readonly zone?: string;
  /** Engine overrides on top of SEEDER_ENGINE_DEFAULTS. */
  readonly engine?: SwarmEngineConfigInput;
}

/**
 * Engine settings of a seeder, over the engine's defaults:
 * - maxTorrents 4096: the seeder seeds every blob it produced and still holds (the engine default of 256 would refuse
 *   the rest).
 */
export const SEEDER_ENGINE_DEFAULTS: SwarmEngineConfigInput = {
  maxTorrents: 4096,
};

/** The seeder's 40-hex peer id, stable for a seeder id. */
export function seederPeerId(seederId: string): string {
  return createHash('sha1').update(`layerswarm seeder peer id\0${seederId}`).digest('hex');
}

/** Build the engine, listen on context.peerListen (resolves once listening), and seed through it. */
export async function createSwarmSeeding(context: SeedingContext, options: SwarmSeedingOptions = {}): Promise<Seeding> {
  const { logger, store, lifetime } = context;
  const advertise = options.advertise ?? peerAdvertiseOf({ peerListen: context.peerListen, peerAdvertise: undefined });
  const dataDir = join(context.dataDir, 'swarm');
  await mkdir(dataDir, { recursive: true });
  const overrides = options.engine ?? {};
  const config = swarmEngineConfig({
    ...SEEDER_ENGINE_DEFAULTS,
    ...overrides,
    scheduler: { ...SEEDER_ENGINE_DEFAULTS.scheduler, ...overrides.scheduler },
  });
  const engineRef: { current?: SwarmEngine } = {};
  // Byte counters ride on every announce, as the agent's do: the tracker shows the seeder's upload rate from them.
  const traffic = (digest: string): { uploaded: number; downloaded: number } | undefined => {
    const t = engineRef.current?.torrentStats(digest);
    return t && { uploaded: t.bytesUp, downloaded: t.bytesDown };
  };
  const engine = new SwarmEngine({
    transport: limitTransport(new TcpTransport(), context.bandwidth),
    announce: trackerAnnounce(context.tracker, { address: advertise, seeder: true, traffic, ...(options.zone === undefined ? {} : { zone: options.zone }) }),
    dataDir,
    config,
    logger,
    peerId: seederPeerId(context.seederId),
    ...(context.events === undefined ? {} : { events: context.events }),
  });
  engineRef.current = engine;
  const address = await engine.listen(context.peerListen);
  logger.info({ listen: address, advertise: `${advertise}:${address.port}`, peerId: engine.peerId }, 'piece seeding listening');

  let closing: Promise<void> | undefined;
  return {
    seed: async (meta: Metainfo) => {
      if (closing !== undefined) throw new LayerswarmError('ABORTED', `seed ${meta.digest}: seeding closed`);
      // Idempotent: the engine returns the running torrent of a digest (same metainfo) or joins one being started.
      try {
        await engine.seed(meta, { store }, lifetime);
      } catch (err) {
        // A blob that cannot be seeded must not stop the seeder: its metainfo stays valid, agents use the origin.
        // (startSeeder seeds every stored blob at start and fails to start on a throw.)
        if (lifetime.aborted) throw err;
        logger.error({ err, digest: meta.digest }, 'cannot seed blob; agents will fetch it from the origin');
        return;
      }
      logger.debug({ digest: meta.digest, pieces: meta.pieceHashes.length }, 'seeding');
    },
    unseed: async (digest: string) => {
      if (await engine.stopSeeding(digest)) logger.debug({ digest }, 'stopped seeding');
    },
    close: () => {
      closing ??= engine.close();
      return closing;
    },
  };
}
