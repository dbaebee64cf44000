/**
 * `layerswarm bench rollout` (npm run bench:rollout): an emulated N-node rollout with real parts — the origin
 * registry behind a counting proxy, the tracker, the seeder, and N real agents in host processes, every agent limited
 * to B up and down by the product's bandwidth limiter — then the same agents as plain mirrors against the origin
 * limited to B_s (the baseline). Results: DIR/results.json (bench/lib/rollout-results.ts), DIR/cdf.svg, a table.
 * Options and defaults: bench/rollout/options.ts; the parts: bench/rollout/*.ts; docs: bench/README.md "Rollout".
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fluidBound } from './lib/rollout-results.ts';
import { machineInfo } from './lib/machine.ts';
import { renderFigure } from './lib/svg.ts';
import { baselineOutcomes, swarmOutcomes } from './rollout/collect.ts';
import { startOrigin, startSwarm, type Origin, type Swarm } from './rollout/infra.ts';
import { agentIndexOf } from './rollout/origin-proxy.ts';
import { assignRoles, parseRolloutOptions, USAGE, type RolloutOptions } from './rollout/options.ts';
import { rolloutFigure } from './rollout/plot.ts';
import { aggregateMetrics, buildResults, resourcesOf, resultsReadme, resultsTable, type EmulatedResults } from './rollout/report.ts';
import { runRollout, type RunRecord } from './rollout/run.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const MiB = 2 ** 20;

export interface RolloutOutput {
  readonly results: EmulatedResults;
  readonly resultsPath: string;
  readonly svgPath: string;
}

/** Run the whole bench with parsed options; returns the results (also written to disk). */
export async function runRolloutBench(o: RolloutOptions, command: string, say: (text: string) => void): Promise<RolloutOutput> {
  const startedAt = new Date();
  const t0 = performance.now();
  const machine = await machineInfo();
  say(`${machine.cores} cores (${machine.cpuModel}), ${machine.memTotalMiB} MiB, node ${machine.node}, load ${machine.loadAvg.join(' ')}`);
  const work = await mkdtemp(join(tmpdir(), 'layerswarm-rollout-'));
  let origin: Origin | undefined;
  let swarm: Swarm | undefined;
  try {
    say(`origin: distribution registry; building and pushing a ${o.layers.length}-layer image (${o.layers.map((b) => (b / MiB).toFixed(1)).join(' + ')} MiB)`);
    const N = o.nodes;
    const roles = assignRoles(N, o);
    const rateOf = (i: number): number => (roles.slow.has(i) ? o.nodeRate / o.slowFactor : o.nodeRate);
    // The proxy sends to each agent no faster than its link (B); the seeder's address is not limited there.
    origin = await startOrigin(work, o.layers, o.seed, o.pieceBytes, (address) => {
      const i = agentIndexOf(address);
      return i === undefined ? 0 : rateOf(i);
    });
    const image = origin.image;
    const S = image.bytes;
    const all = Array.from({ length: N }, (_, i) => i);
    const surviving = all.filter((i) => !roles.churn.has(i));
    const bound = fluidBound(S, surviving.length, o.seedRate, o.nodeRate);
    const timeout = o.timeoutSeconds > 0 ? o.timeoutSeconds : Math.max(600, 4 * bound);
    const originOnly = (surviving.length * S) / o.seedRate;
    say(`parameters: N = ${N} agents in ${o.hosts} host processes; S = ${(S / MiB).toFixed(2)} MiB (config + ${image.layers.length} layers, piece ${image.pieceBytes / 1024} KiB); ` +
      `B = ${(o.nodeRate / 1024).toFixed(0)} KiB/s (N·B = ${((N * o.nodeRate) / MiB).toFixed(1)} MiB/s); B_s = ${(o.seedRate / MiB).toFixed(2)} MiB/s; ` +
      `origin link ${o.originRate === undefined ? 'unlimited' : `${(o.originRate / MiB).toFixed(2)} MiB/s`} (baseline: B_s)`);
    say(`bound T* = max(S/B_s, S/B, N·S/(B_s+N·B)) = ${bound.toFixed(1)} s; origin-only takes about N·S/B_s = ${originOnly.toFixed(0)} s; swarm deadline ${timeout.toFixed(0)} s`);
    if (roles.slow.size + roles.corrupt.size + roles.churn.size > 0) say(`stress: ${roles.slow.size} slow (B/${o.slowFactor}), ${roles.corrupt.size} corrupt, ${roles.churn.size} churned`);

    origin.proxy.setRate(o.originRate ?? 0);
    origin.proxy.reset();
    say('tracker + seeder; preheating the layers into the seeder (tracker → seeder → origin)');
    swarm = await startSwarm(work, origin, o.seedRate, o.pieceBytes);
    const preheatBytes = origin.proxy.totalBytes();
    say(`preheated: the origin sent ${(preheatBytes / MiB).toFixed(2)} MiB to the seeder`);

    const common = { rateOf, hosts: o.hosts, proxy: origin.proxy, image, workDir: work, agentArgs: o.agentArgs, staggerMs: o.staggerMs, progressMs: o.progressMs, say };
    const swarmRun = await runRollout({
      ...common, kind: 'swarm', nodes: all, corrupt: roles.corrupt, tracker: swarm.tracker.url, stopAfterSeconds: timeout,
      churn: roles.churn.size > 0 ? { indexes: [...roles.churn], atSeconds: o.churnAtSeconds ?? bound / 2 } : undefined,
    });
    const seederByPeer = swarm.seederUploadsByPeer();
    const seederBytesUp = swarm.seederBytesUp();
    const seederOriginBytes = preheatBytes + (origin.proxy.bytesByAddress().get('127.0.0.1') ?? 0);
    await swarm.close();
    swarm = undefined;
    say(`swarm: ${swarmRun.done.size}/${surviving.length} complete in ${swarmRun.wallSeconds.toFixed(1)} s${swarmRun.failed.size ? `, ${swarmRun.failed.size} failed` : ''}`);

    let baselineRun: RunRecord | undefined;
    if (o.baseline !== 'off') {
      origin.proxy.setRate(o.seedRate);
      const stopAfter = o.baseline === 'capped' ? o.baselineMaxSeconds : Math.max(timeout, 3 * originOnly);
      say(`baseline (origin-only, ${o.baseline}${o.baseline === 'capped' ? ` at ${stopAfter} s` : ''}): origin limited to B_s`);
      baselineRun = await runRollout({ ...common, kind: 'baseline', nodes: surviving, corrupt: new Set(), tracker: undefined, stopAfterSeconds: stopAfter, churn: undefined });
      say(`baseline: ${baselineRun.done.size}/${surviving.length} complete in ${baselineRun.wallSeconds.toFixed(1)} s (origin sent ${(baselineRun.originTotalBytes / MiB).toFixed(1)} MiB)`);
    }

    const swarmNodes = swarmOutcomes(swarmRun, surviving, seederByPeer);
    const toAgents = all.reduce((a, i) => a + (swarmRun.originBytes.get(i) ?? 0), 0);
    const swarmEgress = seederOriginBytes + toAgents;
    const base = baselineRun === undefined ? undefined : baselineOutcomes(baselineRun, surviving, S, rateOf);
    const baselineEgress = base === undefined || baselineRun === undefined ? 0
      : baselineRun.originTotalBytes + base.outcomes.reduce((a, n, k) => a + Math.max(0, n.bytesFromOrigin - (baselineRun.originBytes.get(surviving[k] as number) ?? 0)), 0);
    const attemptsMax = Math.max(0, ...swarmRun.attempts.values());
    const harnessCpu = process.cpuUsage();
    const results = buildResults({
      image, nodeRate: o.nodeRate, seedRate: o.seedRate, originRate: o.originRate,
      swarm: swarmNodes, swarmEgress,
      baseline: base === undefined ? undefined : { outcomes: base.outcomes, egress: baselineEgress, kind: base.kind, ...(base.note === undefined ? {} : { note: base.note }) },
      parameters: {
        nodesRequested: N, hostProcesses: o.hosts, layersMiB: o.layers.map((b) => b / MiB), imageSeed: o.seed, pieceKiB: o.pieceBytes / 1024, nodeKiBps: o.nodeRate / 1024, seedMiBps: o.seedRate / MiB,
        originMiBps: o.originRate === undefined ? null : o.originRate / MiB, staggerMs: o.staggerMs, churnFraction: o.churnFraction,
        churnAtSeconds: roles.churn.size > 0 ? o.churnAtSeconds ?? bound / 2 : null, slowFraction: o.slowFraction, slowFactor: o.slowFactor,
        corruptFraction: o.corruptFraction, baseline: o.baseline, baselineMaxSeconds: o.baselineMaxSeconds, swarmTimeoutSeconds: timeout, agentArgs: o.agentArgs,
        engine: 'product defaults (startAgent: tick 250 ms, tracker announce interval 5 s, 10 connections per blob, pipeline 3)',
        bandwidth: 'agents: --upload-limit/--download-limit B (origin fetches charged to the download bucket); seeder: --upload-limit B_s; origin: proxy token bucket',
        agentsStartSeconds: { swarm: swarmRun.agentsStartSeconds, baseline: baselineRun?.agentsStartSeconds ?? null },
      },
      resources: {
        ...resourcesOf(swarmRun.hosts, { maxRssBytes: process.resourceUsage().maxRSS * 1024, cpuSeconds: (harnessCpu.user + harnessCpu.system) / 1e6 }, (performance.now() - t0) / 1000),
        ...(baselineRun ? { baselineHostProcesses: baselineRun.hosts.map((h) => ({ ...h, maxRssMiB: Math.round(h.maxRssBytes / MiB) })) } : {}),
      },
      machine: machine as unknown as Record<string, unknown>,
      command,
      startedAt: startedAt.toISOString(),
      emulation: {
        nodeIndexes: surviving,
        agentUrls: [...swarmRun.urls, ...(baselineRun?.urls ?? [])],
        roles: { slow: [...roles.slow], corrupt: [...roles.corrupt], churned: [...swarmRun.churned].map(([index, seconds]) => ({ index, seconds })) },
        failed: [...swarmRun.failed].map(([index, error]) => ({ index, error })),
        ...aggregateMetrics(swarmRun.metrics.values()),
        pullAttemptsMax: attemptsMax,
        originEgress: { total: swarmEgress, toAgents, toSeeder: seederOriginBytes },
        seederBytesUp,
        ...(baselineRun && base ? { baselineMeasured: { completed: base.measuredCompleted, wallSeconds: baselineRun.wallSeconds, originRateBytesPerSec: Math.round(base.measuredOriginRate) } } : {}),
      },
    });
    const outDir = o.outDir ?? join(HERE, 'results', `rollout-${startedAt.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}`);
    await mkdir(outDir, { recursive: true });
    const resultsPath = join(outDir, 'results.json');
    const svgPath = join(outDir, 'cdf.svg');
    await writeFile(resultsPath, JSON.stringify(results, null, 2) + '\n');
    await writeFile(svgPath, renderFigure(rolloutFigure(results)));
    await writeFile(join(outDir, 'README.md'), resultsReadme(results));
    console.log('\n' + resultsTable(results) + '\n');
    say(`results: ${relative(process.cwd(), resultsPath)}, ${relative(process.cwd(), svgPath)}`);
    return { results, resultsPath, svgPath };
  } finally {
    await swarm?.close().catch(() => undefined);
    await origin?.close().catch(() => undefined);
    if (!o.keep) await rm(work, { recursive: true, force: true });
    else say(`kept ${work}`);
  }
}

export async function main(argv: string[], _env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let o: RolloutOptions | undefined;
  try {
    o = parseRolloutOptions(argv, process.stderr.isTTY === true);
  } catch (err) {
    console.error(`bench rollout: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (o === undefined) {
    console.log(USAGE);
    return 0;
  }
  const t0 = performance.now();
  const say = (text: string): void => console.log(`[rollout +${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${text}`);
  const { results } = await runRolloutBench(o, ['layerswarm', 'bench', 'rollout', ...argv].join(' '), say);
  return results.completed === results.nodes ? 0 : 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
