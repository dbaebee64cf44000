/** `layerswarm seeder`: run the seeder beside the origin registry (metainfo production, preheat, seeding). */
import { runService } from '../../shared/cli/run-service.ts';
import { loadSeederConfig, peerAdvertiseOf, SEEDER_OPTIONS } from '../seeder/config.ts';
import { startSeeder } from '../seeder/seeder.ts';
import type { SeedingFactory } from '../seeder/seeding.ts';
import { createSwarmSeeding } from '../seeder/swarm-seeding.ts';

export const SEEDER_USAGE = 'layerswarm seeder --origin URL --tracker URL [--listen HOST:PORT] [--peer-listen HOST:PORT] [--data-dir DIR] [--config FILE] [options]';

export interface SeederCommandDependencies {
  /** Replaces the swarm engine (tests: `() => NOOP_SEEDING` from seeder/seeding.ts). */
  seeding?: SeedingFactory;
}

export function main(argv: string[], env: NodeJS.ProcessEnv, deps: SeederCommandDependencies = {}): Promise<number> {
  return runService(
    {
      name: 'seeder',
      usage: SEEDER_USAGE,
      summary:
        'Run the seeder beside the origin registry: produces metainfo (piece hashes) for blobs on demand and when the registry notifies a push, seeds them, and publishes them to the tracker.',
      options: SEEDER_OPTIONS,
      load: loadSeederConfig,
      start: (config, logger) =>
        startSeeder(config, {
          logger,
          // Piece seeding over the swarm engine on --peer-listen, announced at --peer-advertise.
          seeding: deps.seeding ?? ((context) => createSwarmSeeding(context, { advertise: peerAdvertiseOf(config) })),
        }),
    },
    argv,
    env,
  );
}
