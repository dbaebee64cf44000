/**
 * The shape every long-running `layerswarm` subcommand (agent, tracker, seeder) shares: load and validate config
 * (exit 2 with every problem on invalid config), print --help, start, log JSON, and close cleanly on SIGTERM/SIGINT
 * (exit 0). Only this CLI layer writes to the console.
 */
import { isLayerswarmError } from '../errors.ts';
import { formatHelp, type OptionSpec } from '../config/options.ts';
import { createLogger, type Logger } from '../logging.ts';
import type { LevelWithSilent } from 'pino';

export interface ServiceDefinition<C extends { logLevel: LevelWithSilent }> {
  /** Subcommand name, e.g. "tracker". */
  name: string;
  usage: string;
  summary: string;
  options: readonly OptionSpec[];
  /** Undefined means --help was asked for. Throws CONFIG_INVALID. */
  load: (argv: readonly string[], env: NodeJS.ProcessEnv) => C | undefined;
  start: (config: C, logger: Logger) => Promise<{ close(): Promise<void> }>;
}

export async function runService<C extends { logLevel: LevelWithSilent }>(
  service: ServiceDefinition<C>,
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<number> {
  let config: C | undefined;
  try {
    config = service.load(argv, env);
  } catch (err) {
    if (isLayerswarmError(err, 'CONFIG_INVALID')) {
      console.error(`layerswarm ${service.name}: ${err.message}\nSee layerswarm ${service.name} --help.`);
      return 2;
    }
    throw err;
  }
  if (!config) {
    console.log(formatHelp(service.usage, service.summary, service.options));
    return 0;
  }
  const logger = createLogger({ level: config.logLevel });
  let running: { close(): Promise<void> };
  try {
    running = await service.start(config, logger);
  } catch (err) {
    logger.fatal({ err }, `${service.name} failed to start`);
    console.error(`layerswarm ${service.name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
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
