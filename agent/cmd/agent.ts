/** `layerswarm agent`: run the node agent (registry mirror endpoint). */
import { isLayerswarmError } from '../../shared/errors.ts';
import { formatHelp } from '../../shared/config/options.ts';
import { createLogger } from '../../shared/logging.ts';
import { AGENT_OPTIONS, loadAgentConfig } from '../config.ts';
import { startAgent } from '../agent.ts';

export const AGENT_USAGE = 'layerswarm agent --listen HOST:PORT --origin URL --data-dir DIR [--config FILE] [options]';

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config;
  try {
    config = loadAgentConfig(argv, env);
  } catch (err) {
    if (isLayerswarmError(err, 'CONFIG_INVALID')) {
      console.error(`layerswarm agent: ${err.message}\nSee layerswarm agent --help.`);
      return 2;
    }
    throw err;
  }
  if (!config) {
    console.log(formatHelp(AGENT_USAGE, 'Run the node agent: a verified pull-through OCI registry mirror for containerd, Docker and Podman.', AGENT_OPTIONS));
    return 0;
  }
  const logger = createLogger({ level: config.logLevel });
  let agent;
  try {
    agent = await startAgent(config, { logger });
  } catch (err) {
    logger.fatal({ err }, 'agent failed to start');
    console.error(`layerswarm agent: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  const running = agent;
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
