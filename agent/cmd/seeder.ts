/** `layerswarm seeder`: run the seeder beside the origin registry (metainfo production, preheat, seeding). */
import { runService } from '../../shared/cli/run-service.ts';
import { loadSeederConfig, SEEDER_OPTIONS } from '../seeder/config.ts';
import { startSeeder } from '../seeder/seeder.ts';

export const SEEDER_USAGE = 'layerswarm seeder --origin URL --tracker URL [--listen HOST:PORT] [--peer-listen HOST:PORT] [--data-dir DIR] [--config FILE] [options]';

export function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runService(
    {
      name: 'seeder',
      usage: SEEDER_USAGE,
      summary:
        'Run the seeder beside the origin registry: produces metainfo (piece hashes) for blobs on demand and when the registry notifies a push, seeds them, and publishes them to the tracker.',
      options: SEEDER_OPTIONS,
      load: loadSeederConfig,
      // TODO(swarm engine): pass `seeding: (ctx) => createSwarmSeeding(ctx)` once the engine is wired (agent/seeder/seeding.ts).
      start: (config, logger) => startSeeder(config, { logger }),
    },
    argv,
    env,
  );
}
