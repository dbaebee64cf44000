/** `layerswarm tracker`: run the swarm tracker (announce, peer handout, metainfo). */
import { isLayerswarmError } from '../../shared/errors.ts';
import { formatHelp } from '../../shared/config/options.ts';
import { createLogger } from '../../shared/logging.ts';
import { loadTrackerConfig, TRACKER_OPTIONS } from '../config.ts';
import { startTracker } from '../tracker.ts';

export const TRACKER_USAGE = 'layerswarm tracker [--listen HOST:PORT] [--config FILE] [options]';

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config;
  try {
    config = loadTrackerConfig(argv, env);
  } catch (err) {
    if (isLayerswarmError(err, 'CONFIG_INVALID')) {
      console.error(`layerswarm tracker: ${err.message}\nSee layerswarm tracker --help.`);
      return 2;
    }
    throw err;
  }
  if (!config) {
    console.log(formatHelp(TRACKER_USAGE, 'Run the swarm tracker: peers announce the blobs they hold and get peers to fetch pieces from; seeders produce metainfo.', TRACKER_OPTIONS));
    return 0;
  }
  const logger = createLogger({ level: config.logLevel });
  let tracker;
  try {
    tracker = await startTracker(config, { logger });
  } catch (err) {
    logger.fatal({ err }, 'tracker failed to start');
    console.error(`layerswarm tracker: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  const running = tracker;
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal }, 'shutting down');
      running.close().then(resolve, (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.flush();
  return 0;
}
