/** `layerswarm preload IMAGE --agent URL`: pull an image into a node's store ahead of a deploy. */
import { runJobCommand, type CommandIo } from '../preload/job-command.ts';

export function main(argv: string[], env: NodeJS.ProcessEnv, io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  return runJobCommand({
    name: 'preload',
    component: 'agent',
    defaultUrl: 'http://127.0.0.1:5050',
    path: '/v1/preload',
    urlDoc: 'Base URL of the agent\'s registry endpoint (its --listen). The agent answers loopback callers only unless it has a --preload-token.',
    summary: [
      'Resolves IMAGE ([HOST[:PORT]/]REPOSITORY[:TAG|@DIGEST]; an index: every platform, or --platform) through the',
      'agent (its manifest cache and access records filled as for a pull) and has the agent bring the config and every',
      'layer into its verified store (from the swarm when it has a --tracker), so that the deploy\'s pull is served',
      'from the node. Shows one line per blob; exits 0 when every blob is stored, 1 otherwise (unreachable agent,',
      'unknown image, refused token, a blob that failed), 2 on usage errors.',
    ].join('\n'),
  }, argv, env, io);
}
