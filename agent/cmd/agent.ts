/** `layerswarm agent`: run the node agent (registry mirror endpoint). */
import { runService } from '../../shared/cli/run-service.ts';
import { AGENT_OPTIONS, loadAgentConfig } from '../config.ts';
import { startAgent } from '../agent.ts';

export const AGENT_USAGE = 'layerswarm agent --listen HOST:PORT --origin URL --data-dir DIR [--config FILE] [options]';

export function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runService(
    {
      name: 'agent',
      usage: AGENT_USAGE,
      summary: 'Run the node agent: a verified pull-through OCI registry mirror for containerd, Docker and Podman.',
      options: AGENT_OPTIONS,
      load: loadAgentConfig,
      start: (config, logger) => startAgent(config, { logger }),
    },
    argv,
    env,
  );
}
