/**
 * The seam between the seeder role and the swarm engine (agent/swarm/engine).
 *
 * The producer calls `seed(metainfo, blobPath)` after the blob is in the verified store and its metainfo is persisted,
 * and before the metainfo is published to the tracker, so agents that learn the metainfo find a seeder. `seed` must
 * resolve once the blob is being seeded (served on --peer-listen and announced to the tracker as a complete seeder),
 * not when seeding ends; seeding the same digest twice must be a no-op. It is also called at start for every stored
 * blob with known metainfo.
 *
 * Implementations: `createSwarmSeeding` (swarm-seeding.ts: the swarm engine on `context.peerListen`, seeding from
 * `{ store: context.store }` and announcing `{digest, complete: true, seeder: true}` to the tracker; the default of
 * `layerswarm seeder`, agent/cmd/seeder.ts) and NOOP_SEEDING (the default of startSeeder without
 * SeederDependencies.seeding, for tests). Prefer `{ store }` over `{ path: blobPath }` as the engine's seed source:
 * the engine's stopSeeding removes a path source's file.
 */
import type { HostPort } from '../../shared/config/options.ts';
import type { Logger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import type { TrackerClient } from '../../tracker/client.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { NodeBandwidth } from '../bandwidth.ts';
import type { SwarmEngineEvents } from '../swarm/engine/stats.ts';

export interface Seeding {
  seed(metainfo: Metainfo, blobPath: string): Promise<void>;
  /** Stop seeding a blob: it left the store (LRU eviction), noticed at the next heartbeat. Optional. */
  unseed?(digest: string): Promise<void>;
  /** Stop everything (seeder shutdown). Optional. */
  close?(): Promise<void>;
}

export interface SeedingContext {
  /** --peer-listen: where the piece protocol listens. */
  readonly peerListen: HostPort;
  readonly tracker: TrackerClient;
  /** The seeder's id (stable; the engine may derive its 40-hex peer id from it). */
  readonly seederId: string;
  /**
   * The seeder's verified blob store: seeding from it (SwarmEngine.seed(meta, { store }, signal)) reads pieces through
   * store.open, which pins the blob while it is read, instead of trusting `blobPath` to stay put.
   */
  readonly store: BlobStore;
  /** --data-dir; the engine may keep its own files under `<dataDir>/swarm`. */
  readonly dataDir: string;
  readonly logger: Logger;
  /** Aborted when the seeder shuts down. */
  readonly lifetime: AbortSignal;
  /** The seeder's node-wide token buckets (--upload-limit / --download-limit): the piece transport is charged to them. */
  readonly bandwidth?: NodeBandwidth;
  /** Piece traffic hooks of the seeder's engine (metrics: bytes seeded). */
  readonly events?: SwarmEngineEvents;
}

/** Builds the Seeding at start; may listen (resolves once listening). */
export type SeedingFactory = (context: SeedingContext) => Seeding | Promise<Seeding>;

/** Seeds nothing: metainfo is still produced and published, agents fetch the bytes from the origin. */
export const NOOP_SEEDING: Seeding = {
  seed: async () => undefined,
};
