/**
 * `layerswarm bench simulate` (`npm run bench:simulate`): a discrete-event rollout simulation of 1 seeder + N agents
 * that drives the agent's own swarm Scheduler, the tracker's peer store and handout policy and the piece-length
 * policy over a virtual network. See bench/README.md "Simulator" and bench/sim/*.ts.
 *
 * One run writes DIR/results.json (the shared rollout schema, mode 'simulated') and DIR/cdf.svg and prints a table;
 * --project sweeps N × image size and writes one directory per point plus DIR/summary.{md,json}.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkConsistency, type RolloutResults } from './lib/rollout-results.ts';
import { machineInfo } from './lib/machine.ts';
import { humanBytes } from './lib/stats.ts';
import { renderFigure } from './lib/svg.ts';
import { parseSimArgs, scaleLayers, USAGE, type SimOptions } from './sim/options.ts';
import { projectTable, simFigure, simTable } from './sim/report.ts';
import { buildResults } from './sim/results.ts';
import { simulate } from './sim/simulation.ts';

function say(text: string): void {
  console.log(`[simulate] ${text}`);
}

async function runOne(o: SimOptions, command: string, machine: Record<string, unknown>, outDir: string): Promise<RolloutResults> {
  const startedAt = new Date();
  if (o.nodes + 1 > o.maxPeersPerSwarm) {
    say(`warning: ${o.nodes} agents + the seeder exceed the tracker's maxPeersPerSwarm ${o.maxPeersPerSwarm}: later peers get handouts but are not recorded (nobody is told about them); ` +
      'pass --max-peers-per-swarm to raise it');
  }
  const run = simulate(o, o.quiet ? undefined : (p) => {
    if (p.events > 0) process.stdout.write(`\r[simulate] t = ${p.virtualSeconds.toFixed(1)} s virtual, ${p.completed}/${p.nodes} complete, ${p.events.toLocaleString('en-US')} events   `);
  });
  if (!o.quiet) process.stdout.write('\n');
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
  const machine = { ...(await machineInfo()) } as Record<string, unknown>;
  if (project === undefined) {
    const results = await runOne(options, command, machine, options.outDir);
    return results.completed === options.nodes && checkConsistency(results).length === 0 ? 0 : 1;
  }
  const points: Array<{ label: string; results: RolloutResults }> = [];
  for (const nodes of project.nodes) {
    for (const size of project.imageSizes) {
      const label = `${nodes}-${humanBytes(size).replace(/\s+/g, '')}`;
      const maxPeersPerSwarm = Math.max(options.maxPeersPerSwarm, nodes + 1);
      const o: SimOptions = { ...options, nodes, layers: scaleLayers(options.layers, size), maxPeersPerSwarm };
      say(`point ${label}: ${nodes} agents, image ${humanBytes(size)}${maxPeersPerSwarm !== options.maxPeersPerSwarm ? ` (tracker maxPeersPerSwarm raised to ${maxPeersPerSwarm})` : ''}`);
      points.push({ label, results: await runOne(o, `${command} # point ${label}`, machine, join(options.outDir, label)) });
    }
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
