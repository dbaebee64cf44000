/** `layerswarm tracker`: run the swarm tracker (announce, peer handout, metainfo). */
import { runService } from '../../shared/cli/run-service.ts';
import { loadTrackerConfig, TRACKER_OPTIONS } from '../config.ts';
import { startTracker } from '../tracker.ts';

export const TRACKER_USAGE = 'layerswarm tracker [--listen HOST:PORT] [--config FILE] [options]';

export function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runService(
    {
      name: 'tracker',
      usage: TRACKER_USAGE,
      summary: 'Run the swarm tracker: peers announce the blobs they hold and get peers to fetch pieces from; seeders produce metainfo.',
      options: TRACKER_OPTIONS,
      load: loadTrackerConfig,
      start: (config, logger) => startTracker(config, { logger }),
    },
    argv,
    env,
  );
}
