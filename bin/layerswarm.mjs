#!/usr/bin/env node
// layerswarm command-line entry point. The code is TypeScript run by Node >= 22's type stripping; when started by
// an older system Node, this re-executes itself with the Node 22 that `npm ci` installed (the `node` npm package).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split('.')[0]);
if (major < 22 || (major === 22 && Number(process.versions.node.split('.')[1]) < 18)) {
  const pinned = join(here, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    console.error(`layerswarm needs Node >= 22.18 (this is ${process.version}); run "npm ci" in ${join(here, '..')} first.`);
    process.exit(1);
  }
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const COMMANDS = {
  agent: ['../agent/cmd/agent.ts', 'run the node agent (registry mirror)'],
  configure: ['../agent/cmd/configure.ts', 'configure a container runtime to use the agent (configure containerd ...)'],
  demo: ['../bench/demo.ts', 'start an origin registry, an agent, and pull a generated image through it'],
  tracker: ['../tracker/cmd/tracker.ts', 'run the swarm tracker'],
  seeder: ['../agent/cmd/seeder.ts', 'run the seeder beside the origin registry'],
  preheat: ['../agent/cmd/preheat.ts', 'have the seeder fetch and seed every layer of an image (preheat IMAGE --seeder URL)'],
  preload: ['../agent/cmd/preload.ts', 'pull an image into a node\'s store ahead of a deploy (preload IMAGE --agent URL)'],
  status: ['../tracker/cmd/status.ts', 'show the swarms a tracker knows: progress, peers, offload, events (status --tracker URL [--watch])'],
  bench: ['../bench/cmd/bench.ts', 'benchmarks: bench rollout (emulated N-node rollout), bench simulate (simulator)'],
};

const [command, ...rest] = process.argv.slice(2);
if (!command || command === '--help' || command === '-h' || command === 'help') {
  console.log('Usage: layerswarm COMMAND [options]\n\nCommands:');
  for (const [name, [, doc]] of Object.entries(COMMANDS)) console.log(`  ${name.padEnd(10)} ${doc}`);
  console.log('\nRun "layerswarm COMMAND --help" for the options of a command.');
  process.exit(command ? 0 : 2);
}
if (command === 'version' || command === '--version') {
  console.log('layerswarm 0.1.0');
  process.exit(0);
}
const entry = COMMANDS[command];
if (!entry) {
  console.error(`layerswarm: unknown command "${command}". Run "layerswarm --help".`);
  process.exit(2);
}
const mod = await import(new URL(entry[0], import.meta.url).href);
process.exitCode = await mod.main(rest, process.env);
