/**
 * `layerswarm bench simulate` (`npm run bench:simulate`): a discrete-event rollout simulation of 1 seeder + N agents
 * that drives the agent's own swarm Scheduler, the tracker's peer store and handout policy and the piece-length
 * policy over a virtual network. See bench/README.md "Simulator" and bench/sim/*.ts.
 *
 * One run writes DIR/results.json (the shared rollout schema, mode 'simulated') and DIR/cdf.svg and prints a table;
 * --project sweeps N × image size and writes one directory per point plus DIR/summary.{md,json}.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkConsistency, type RolloutResults } from './lib/rollout-results.ts';
import { machineInfo } from './lib/machine.ts';
import { humanBytes } from './lib/stats.ts';
import { renderFigure } from './lib/svg.ts';
import { parseSimArgs, scaleLayers, USAGE, type SimOptions } from './sim/options.ts';
import { projectTable, simFigure, simTable } from './sim/report.ts';
import { buildResults } from './sim/results.ts';
import { simulate, type SimProgress } from './sim/simulation.ts';

function say(text: string): void {
  console.log(`[simulate] ${text}`);
}

/** Progress on stderr, one line every PROGRESS_EVERY_S wall seconds (and the first at 1 s): long runs can be followed in a log. */
const PROGRESS_EVERY_S = 10;

function progressPrinter(): (p: SimProgress) => void {
  let next = 1;
  return (p) => {
    if (p.wallSeconds < next) return;
    next = p.wallSeconds + PROGRESS_EVERY_S;
    const rate = Math.round(p.events / Math.max(p.wallSeconds, 1e-9)).toLocaleString('en-US');
    process.stderr.write(`[simulate] virtual ${p.virtualSeconds.toFixed(2)} s, ${p.completed}/${p.nodes} complete, ` +
      `${p.events.toLocaleString('en-US')} events, wall ${p.wallSeconds.toFixed(0)} s (${rate} events/s)\n`);
  };
}

/**
 * V8's young generation: 16 MiB semi-spaces by default. At N = 10,000 that holds only a few virtual milliseconds of
 * messages, so most of them survive a scavenge and are promoted (measured: GC 26% of the time, user CPU -13% with
 * 128 MiB). The flag must be given at start-up, so the command runs itself again with it (once; not when the flag or
 * LAYERSWARM_SIM_NO_REEXEC=1 is already there).
 */
const NURSERY_FLAG = '--max-semi-space-size=128';

async function reexecWithLargerNursery(argv: string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  if (env['LAYERSWARM_SIM_NO_REEXEC'] === '1' || process.execArgv.some((a) => a.startsWith('--max-semi-space-size'))) return undefined;
  const script = new URL(import.meta.url).pathname;
  const child = spawn(process.execPath, [...process.execArgv, NURSERY_FLAG, script, ...argv], { stdio: 'inherit', env: { ...env, LAYERSWARM_SIM_NO_REEXEC: '1' } });
  return await new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
    child.on('error', () => resolve(1));
  });
}

async function runOne(o: SimOptions, command: string, machine: Record<string, unknown>, outDir: string): Promise<RolloutResults> {
  const startedAt = new Date();
  if (o.nodes + 1 > o.maxPeersPerSwarm) {
    say(`warning: ${o.nodes} agents + the seeder exceed the tracker's maxPeersPerSwarm ${o.maxPeersPerSwarm}: later peers get handouts but are not recorded (nobody is told about them); ` +
      'pass --max-peers-per-swarm to raise it');
  }
  const run = simulate(o, o.quiet ? undefined : progressPrinter());
  const results = buildResults(run, { command, startedAt, machine });
  const problems = checkConsistency(results);
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  await writeFile(join(outDir, 'cdf.svg'), renderFigure(simFigure(results)));
  console.log('\n' + simTable(results) + '\n');
  if (!run.finished) say(`stopped at ${run.endSeconds.toFixed(1)} virtual s with ${results.completed}/${o.nodes} nodes complete (--max-seconds)`);
  for (const p of problems) say(`consistency: ${p}`);
  say(`wrote ${join(outDir, 'results.json')} and ${join(outDir, 'cdf.svg')}`);
  return results;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  void env;
  let parsed;
  try {
    parsed = parseSimArgs(argv);
  } catch (err) {
    console.error(`bench simulate: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  const { options, project, command } = parsed;
  const child = await reexecWithLargerNursery(argv, env);
  if (child !== undefined) return child;
  const machine = { ...(await machineInfo()) } as Record<string, unknown>;
  if (project === undefined) {
    const results = await runOne(options, command, machine, options.outDir);
    return results.completed === options.nodes && checkConsistency(results).length === 0 ? 0 : 1;
  }
  const points: Array<{ label: string; results: RolloutResults }> = [];
  for (const { nodes, imageBytes: size } of project.points) {
    const label = `${nodes}-${humanBytes(size).replace(/\s+/g, '')}`;
    const maxPeersPerSwarm = Math.max(options.maxPeersPerSwarm, nodes + 1);
    const o: SimOptions = { ...options, nodes, layers: scaleLayers(options.layers, size), maxPeersPerSwarm };
    say(`point ${label}: ${nodes} agents, image ${humanBytes(size)}${maxPeersPerSwarm !== options.maxPeersPerSwarm ? ` (tracker maxPeersPerSwarm raised to ${maxPeersPerSwarm})` : ''}`);
    points.push({ label, results: await runOne(o, `${command} # point ${label}`, machine, join(options.outDir, label)) });
  }
  const table = projectTable(points);
  console.log('\n' + table + '\n');
  await writeFile(join(options.outDir, 'summary.md'), '```\n' + table + '\n```\n');
  await writeFile(join(options.outDir, 'summary.json'), JSON.stringify(points.map(({ label, results: r }) => ({
    point: label, nodes: r.nodes, imageBytes: r.imageBytes, boundSeconds: r.boundSeconds, p50Seconds: r.p50Seconds, p99Seconds: r.p99Seconds,
    p50Ratio: r.p50Ratio, p99Ratio: r.p99Ratio, maxRatio: r.maxRatio, originEgressRatio: r.originEgressRatio, uploadJainIndex: r.uploadJainIndex,
    completed: r.completed, wallSeconds: r.resources['wallSeconds'], eventsPerSecond: r.resources['eventsPerSecond'],
  })), null, 2) + '\n');
  say(`wrote ${join(options.outDir, 'summary.md')} and summary.json`);
  return points.every((p) => p.results.completed === p.results.nodes) ? 0 : 1;
}

if (import.meta.main) {
  main(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
