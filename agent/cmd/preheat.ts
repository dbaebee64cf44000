/** `layerswarm preheat IMAGE --seeder URL`: have the seeder fetch, hash and seed every layer of an image now. */
import { runJobCommand, type CommandIo } from '../preload/job-command.ts';

export function main(argv: string[], env: NodeJS.ProcessEnv, io: CommandIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  return runJobCommand({
    name: 'preheat',
    component: 'seeder',
    path: '/v1/preheat',
    urlDoc: 'Base URL of the seeder\'s HTTP API (its --listen), e.g. http://seeder:5070.',
    summary: [
      'Resolves IMAGE ([HOST[:PORT]/]REPOSITORY[:TAG|@DIGEST]; an index: every platform, or --platform) at the',
      'seeder\'s registry, and has the seeder fetch every layer larger than its --origin-direct-max-bytes once from the',
      'origin, verify it, compute its metainfo, publish it to the tracker and seed it, so that the first nodes to pull',
      'get it from the swarm. Smaller blobs are listed as skipped (agents fetch them from the origin). Shows one line',
      'per blob; exits 0 when every blob is done, 1 otherwise (unreachable seeder, unknown image, refused token, a',
      'blob that failed), 2 on usage errors.',
    ].join('\n'),
  }, argv, env, io);
}
