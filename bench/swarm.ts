/**
 * `npm run bench:swarm`: a rollout of one blob to N agents through the swarm vs from the seeder alone (origin-only),
 * with the same per-node bandwidth limits, against the fluid bound (see bench/README.md).
 *
 * One process: a seeder and N agents (default 8) are SwarmEngines over loopback TCP, each behind a LimitedTransport
 * with its own upload and download TokenBucket (a node-wide limit, the product's bandwidth-limit feature). Swarm mode
 * uses a real in-process tracker; origin-only gives every agent only the seeder. Prints completion times (p50, p90,
 * max), origin egress (bytes the seeder uploaded) and the ratio of the slowest agent to T* = max(S/B_s, S/B,
 * N·S/(B_s + N·B)). Writes bench/results/swarm-<time>.{json,svg} and swarm-latest.{json,svg}.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_SCHEDULER_CONFIG } from '../agent/swarm/scheduler/config.ts';
import { computeMetainfo } from '../shared/swarm/metainfo.ts';
import { onProcessExit } from '../test/fixtures/process.ts';
import { machineInfo } from './lib/machine.ts';
import { humanBytes, MiB } from './lib/stats.ts';
import { renderFigure } from './lib/svg.ts';
import { bounds, buildSwarmResult, swarmFigure, swarmReport } from './lib/swarm-report.ts';
import { BENCH_ENGINE_OVERRIDES, MODE_NAME, runRollout, type RolloutResult, type SwarmMode } from './lib/swarm-run.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

const USAGE = `Usage: npm run bench:swarm -- [options]

1 seeder + N agents (in-process SwarmEngines on loopback TCP, token-bucket bandwidth limits per node): swarm vs
origin-only with the same limits, against the fluid bound T* = max(S/B_s, S/B, N·S/(B_s + N·B)).
Writes bench/results/swarm-<time>.{json,svg} (and swarm-latest.*).

Options:
  --agents N          agents (default 8)
  --size-mib N        blob size S in MiB (default 64; --quick 16)
  --piece-kib N       piece length in KiB (default 1024)
  --node-mibps X      B: upload and download limit of every agent, MiB/s (default 20)
  --seed-mibps X      B_s: upload limit of the seeder, MiB/s (default 20)
  --burst-kib N       token bucket burst in KiB (default 256)
  --pipeline N        scheduler pipelineDepth (piece requests in flight per peer; default: the product default, 3)
  --modes LIST        swarm,origin (default both)
  --quick             smoke run: 16 MiB blob (about 10 s in all)
  --out DIR           results directory (default bench/results)
  -h, --help`;

interface Options {
  agents: number;
  sizeBytes: number;
  pieceBytes: number;
  nodeRate: number;
  seedRate: number;
  burst: number;
  pipeline: number | undefined;
  modes: SwarmMode[];
  quick: boolean;
  outDir: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      agents: { type: 'string' }, 'size-mib': { type: 'string' }, 'piece-kib': { type: 'string' }, 'node-mibps': { type: 'string' }, 'seed-mibps': { type: 'string' },
      'burst-kib': { type: 'string' }, pipeline: { type: 'string' }, modes: { type: 'string' }, quick: { type: 'boolean' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const quick = values.quick === true;
  const num = (name: string, v: string | undefined, fallback: number, integer: boolean): number => {
    const n = v === undefined ? fallback : Number(v);
    if (!(n > 0) || !Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
    return n;
  };
  const modes = (values.modes ?? 'swarm,origin').split(',').map((m) => m.trim());
  for (const m of modes) if (m !== 'swarm' && m !== 'origin') throw new Error(`--modes: swarm and/or origin, got ${m}`);
  return {
    agents: num('agents', values.agents, 8, true),
    sizeBytes: num('size-mib', values['size-mib'], quick ? 16 : 64, false) * MiB,
    pieceBytes: num('piece-kib', values['piece-kib'], 1024, true) * 1024,
    nodeRate: num('node-mibps', values['node-mibps'], 20, false) * MiB,
    seedRate: num('seed-mibps', values['seed-mibps'], 20, false) * MiB,
    burst: num('burst-kib', values['burst-kib'], 256, true) * 1024,
    pipeline: values.pipeline === undefined ? undefined : num('pipeline', values.pipeline, 3, true),
    modes: modes as SwarmMode[],
    quick,
    outDir: values.out ?? join(HERE, 'results'),
  };
}

const t0 = performance.now();
function say(text: string): void {
  console.log(`[bench +${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${text}`);
}

export async function main(argv: string[]): Promise<number> {
  let opts: Options | undefined;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    console.error(`bench:swarm: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (opts === undefined) {
    console.log(USAGE);
    return 0;
  }
  const o = opts;
  const startedAt = new Date();
  const work = mkdtempSync(join(tmpdir(), 'layerswarm-bench-swarm-'));
  onProcessExit(() => rmSync(work, { recursive: true, force: true }));
  try {
    const machine = await machineInfo();
    say(`${machine.cores} cores (${machine.cpuModel}), node ${machine.node}, load ${machine.loadAvg.join(' ')}`);
    const size = Math.round(o.sizeBytes);
    const bytes = randomBytes(size);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const meta = await computeMetainfo(digest, [bytes], size, { minPieceLength: o.pieceBytes, maxPieceLength: o.pieceBytes, targetPieces: 1, originDirectMaxBytes: 0 });
    const blobPath = join(work, 'blob');
    await writeFile(blobPath, bytes);
    const b = bounds(size, o.agents, o.seedRate, o.nodeRate);
    say(`blob ${humanBytes(size)} (${meta.pieceHashes.length} pieces); ${o.agents} agents at ${o.nodeRate / MiB} MiB/s, seeder at ${o.seedRate / MiB} MiB/s`);
    say(`bounds: swarm T* = ${b.swarm.toFixed(2)} s, origin-only ${b.origin.toFixed(2)} s`);
    const runs: RolloutResult[] = [];
    for (const mode of o.modes) {
      say(`${MODE_NAME[mode]}: seeding, ${o.agents} agents download concurrently`);
      const r = await runRollout(
        {
          mode, agents: o.agents, meta, blobPath, seedRate: o.seedRate, nodeRate: o.nodeRate, burst: o.burst, workDir: join(work, mode), sampleMs: 100,
          timeoutMs: Math.max(120_000, 5 * b.origin * 1000), ...(o.pipeline === undefined ? {} : { scheduler: { pipelineDepth: o.pipeline } }),
        },
        machine.cores,
      );
      runs.push(r);
      say(`  done in ${r.wallSeconds.toFixed(2)} s; seeder uploaded ${humanBytes(r.seederBytesUp)}; CPU ${(r.cpuUtilization * 100).toFixed(0)}% of ${machine.cores} cores`);
    }
    const result = buildSwarmResult({
      startedAt, finishedAt: new Date(), machine, bounds: b, runs,
      options: { agents: o.agents, sizeBytes: size, pieceBytes: o.pieceBytes, seedRate: o.seedRate, nodeRate: o.nodeRate, burst: o.burst, quick: o.quick, pipelineDepth: o.pipeline ?? DEFAULT_SCHEDULER_CONFIG.pipelineDepth, engineOverrides: BENCH_ENGINE_OVERRIDES },
    });
    console.log('\n' + swarmReport(result) + '\n');
    const stamp = startedAt.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    await mkdir(o.outDir, { recursive: true });
    const jsonPath = join(o.outDir, `swarm-${stamp}.json`);
    const svgPath = join(o.outDir, `swarm-${stamp}.svg`);
    await writeFile(jsonPath, JSON.stringify(result, null, 2) + '\n');
    await writeFile(svgPath, renderFigure(swarmFigure(result)));
    await copyFile(jsonPath, join(o.outDir, 'swarm-latest.json'));
    await copyFile(svgPath, join(o.outDir, 'swarm-latest.svg'));
    say(`results: ${relative(process.cwd(), jsonPath)}, ${relative(process.cwd(), svgPath)} (also swarm-latest.*)`);
    return 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
