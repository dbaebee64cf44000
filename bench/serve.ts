/**
 * `npm run bench:serve`: the agent's serving performance against a plain distribution registry, measured in one run
 * on this machine (see bench/README.md).
 *
 *  1. Cache-hit throughput: GET of a large blob (default 1 GiB) already in the agent's store vs the same blob straight
 *     from the registry, curl -o /dev/null, interleaved repetitions. Diagnostics on the side: the same store served
 *     by a freshly restarted agent (no cold fetch in its past) and by a plain node:http file server (reference).
 *  2. Cold pull: skopeo copy of a 3-layer image through a fresh agent (empty data dir) vs straight from the registry.
 *  3. Agent RSS (VmRSS, sampled every 20 ms) during cold fetch+serve of a small and the large blob: flat in blob size
 *     when the agent streams.
 *
 * Writes bench/results/serve-<time>.json and .svg (and serve-latest.*), prints a table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startRegistry } from '../test/fixtures/registry.ts';
import { buildImage, pushImage } from '../test/fixtures/images.ts';
import { onProcessExit } from '../test/fixtures/process.ts';
import { startAgentProcess } from './lib/agent-process.ts';
import type { AgentProcess } from './lib/agent-process.ts';
import { curlGet, pinToServerCpu, skopeoPull, unpin } from './lib/clients.ts';
import type { CurlResult, PullResult } from './lib/clients.ts';
import { probeFsync } from './lib/disk.ts';
import type { FsyncProbe } from './lib/disk.ts';
import { startFileServer } from './lib/file-server.ts';
import { machineInfo } from './lib/machine.ts';
import type { MachineInfo } from './lib/machine.ts';
import { parseServeOptions, USAGE } from './lib/options.ts';
import type { ServeBenchOptions } from './lib/options.ts';
import { findPid, medianKiB, peakKiB, readCpuSeconds, RssSampler } from './lib/procfs.ts';
import type { RssPoint, RssTrace } from './lib/procfs.ts';
import { GiB, humanBytes, mbps, MiB, round, summarize } from './lib/stats.ts';
import type { Summary } from './lib/stats.ts';
import { renderFigure } from './lib/svg.ts';
import type { Figure } from './lib/svg.ts';
import { fixed, formatTable } from './lib/table.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const TARGET_THROUGHPUT_RATIO = 1.0;
const TARGET_COLD_PULL_RATIO = 1.15;
/** Idle time before a cold GET: RSS samples in this window are the baseline. */
const IDLE_MS = 1000;
/** Sampling continues this long after the GET finished. */
const TAIL_MS = 300;

type GetSide = 'agent' | 'registry' | 'restarted' | 'reference';
const GET_SIDES: readonly GetSide[] = ['agent', 'registry', 'restarted', 'reference'];
const SIDE_NAME: Record<GetSide, string> = {
  agent: 'agent',
  registry: 'registry',
  restarted: 'agent (restarted)',
  reference: 'node:http+fs (ref)',
};
type PullSide = 'agent' | 'direct';

interface GetRun {
  rep: number;
  side: GetSide;
  seconds: number;
  ttfbSeconds: number;
  mbps: number;
  clientCpuSeconds: number;
  /** CPU seconds the server process used during this GET (all threads). */
  serverCpuSeconds: number | null;
}

interface AgentFetch {
  digest: string;
  bytes: number;
  /** Download + sha256 + fsync + rename, as the agent logs it ('blob fetched and verified'). */
  seconds: number;
  /** When it ended, ms since the epoch (log time). */
  endMs: number;
}

interface PullRun {
  rep: number;
  side: PullSide;
  seconds: number;
  clientCpuSeconds: number;
  /** CPU seconds of the agent (agent side) or the registry (both sides) during the pull. */
  agentCpuSeconds: number | null;
  registryCpuSeconds: number | null;
  /** Agent side: the blob fetches the pull caused. */
  fetches?: AgentFetch[];
  /** Agent side: wall time during which at least one blob fetch was in progress (union of the fetch intervals). No
   * byte of a blob is served while it is being fetched, so with a sequential client this is all added latency. */
  fetchWallSeconds?: number;
  /** Agent side: the longest blob request (fetch wait + streaming), from the agent's request log. */
  slowestBlobRequestSeconds?: number;
  /** Agent side: whether skopeo's blob GETs overlapped in time (false: one layer after the other). */
  blobRequestsOverlapped?: boolean;
  agentPeakRssKiB?: number;
}

interface ColdFetch {
  label: string;
  blobBytes: number;
  digest: string;
  ttfbSeconds: number;
  seconds: number;
  mbps: number;
  agentCpuSeconds: number | null;
  agentIdleRssKiB: number;
  agentPeakRssKiB: number;
  agentGrowthKiB: number;
  registryIdleRssKiB: number | null;
  registryPeakRssKiB: number | null;
  /** The GET started at this time on the traces' axis (ms since sampling started). */
  getStartMs: number;
  getEndMs: number;
  trace: { agent: RssPoint[]; registry: RssPoint[] };
}

interface Blob {
  digest: string;
  bytes: number;
  url: (base: string) => string;
}

const t0 = performance.now();
function say(text: string): void {
  console.log(`[bench +${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${text}`);
}

function sideSummary(runs: readonly GetRun[], side: GetSide): Summary {
  return summarize(runs.filter((r) => r.side === side).map((r) => r.mbps));
}

export async function main(argv: string[]): Promise<number> {
  let options: ServeBenchOptions | undefined;
  try {
    options = parseServeOptions(argv, join(HERE, 'results'));
  } catch (err) {
    console.error(`bench:serve: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (options === undefined) {
    console.log(USAGE);
    return 0;
  }
  const opts = options;
  const startedAt = new Date();
  // Not makeTempDir(): its exit hook would remove the dir even with --keep.
  const work = mkdtempSync(join(tmpdir(), 'layerswarm-bench-serve-'));
  let workRemoved = false;
  onProcessExit(() => {
    if (!opts.keep && !workRemoved) rmSync(work, { recursive: true, force: true });
  });
  const cleanups: Array<() => Promise<void>> = [];
  try {
    say(`work dir ${work}`);
    const machine = await machineInfo();
    say(`${machine.cores} cores (${machine.cpuModel}), ${machine.memTotalMiB} MiB RAM, node ${machine.node}, load ${machine.loadAvg.join(' ')}`);
    const imageBytes = opts.imageSizes.reduce((a, b) => a + b, 0);
    const storeMaxBytes = Math.max(4 * GiB, 2 * (opts.blobSize + opts.smallBlobSize + imageBytes));

    const largestLayer = Math.max(...opts.imageSizes);
    const fsync = await probeFsync(work, largestLayer);
    say(`disk: ${humanBytes(largestLayer)} written in ${fsync.writeSeconds.toFixed(2)} s, fsync ${fsync.fsyncSeconds.toFixed(2)} s`);

    // ---- origin and images --------------------------------------------------------------------------
    const registry = await startRegistry({ auth: 'none' });
    cleanups.push(() => registry.stop());
    const registryPid = await findPid((c) => c.includes('docker-registry') && c.includes(registry.dir));
    say(`registry at ${registry.url} (pid ${registryPid ?? 'unknown'})`);

    const layout = join(work, 'layout');
    say(`building images: blob ${humanBytes(opts.blobSize)} + ${humanBytes(opts.smallBlobSize)}; pull image ${opts.imageSizes.map(humanBytes).join(' + ')} (uncompressed tar layers)`);
    const blobImage = await buildImage(layout, { tag: 'blob', layers: [{ size: opts.blobSize, gzip: false }, { size: opts.smallBlobSize, gzip: false }] });
    const pullImage = await buildImage(layout, { tag: 'pull', layers: opts.imageSizes.map((size) => ({ size, gzip: false })) });
    say('pushing with skopeo');
    const pushedBlob = await pushImage(blobImage, `${registry.host}/bench/blob:1`, { timeoutMs: 600_000 });
    const pushedPull = await pushImage(pullImage, `${registry.host}/bench/app:1`, { timeoutMs: 600_000 });
    if (!opts.keep) await rm(layout, { recursive: true, force: true });
    const [big, small] = (pushedBlob.manifests[0]?.layers ?? []).map((l): Blob => ({
      digest: l.digest,
      bytes: l.size,
      url: (base) => `${base}/v2/bench/blob/blobs/${l.digest}`,
    }));
    const pullLayers = pushedPull.manifests[0]?.layers ?? [];
    if (big === undefined || small === undefined || pullLayers.length !== opts.imageSizes.length) throw new Error('pushed images do not have the expected layers');

    const agentOptions = (name: string, logLevel = 'warn'): Parameters<typeof startAgentProcess>[0] => ({
      origin: registry.url,
      dataDir: join(work, name),
      logFile: join(work, `${name}.log`),
      logLevel,
      storeMaxBytes,
    });

    // ---- 3. RSS during cold fetch+serve (small, then large; the large agent stays up for test 1) ------
    say(`cold fetch+serve of the ${humanBytes(small.bytes)} blob through a fresh agent (RSS sampled every ${opts.sampleMs} ms)`);
    const smallAgent = await startAgentProcess(agentOptions('agent-small'));
    let coldSmall: ColdFetch;
    try {
      coldSmall = await coldFetch('small', smallAgent, registryPid, small, opts.sampleMs);
    } finally {
      await smallAgent.stop();
    }
    if (!opts.keep) await rm(join(work, 'agent-small'), { recursive: true, force: true });
    say(`  ${describeCold(coldSmall)}`);

    say(`cold fetch+serve of the ${humanBytes(big.bytes)} blob through a fresh agent`);
    const bigAgent = await startAgentProcess(agentOptions('agent-large'));
    cleanups.unshift(() => bigAgent.stop());
    const coldBig = await coldFetch('large', bigAgent, registryPid, big, opts.sampleMs);
    say(`  ${describeCold(coldBig)}`);

    // ---- 1. cache-hit throughput --------------------------------------------------------------------
    const blobFile = join(work, 'agent-large', 'blobs', 'sha256', big.digest.slice('sha256:'.length));
    if ((await stat(blobFile)).size !== big.bytes) throw new Error(`agent store file ${blobFile} has the wrong size`);
    const reference = await startFileServer(blobFile);
    cleanups.unshift(() => reference.stop());
    // Diagnostic: a second agent process on the same store, which has not fetched anything (read-only use of the dir).
    const restarted = await startAgentProcess({ ...agentOptions('agent-large'), logFile: join(work, 'agent-large-restarted.log') });
    cleanups.unshift(() => restarted.stop());
    const servers: Record<GetSide, { url: string; pid: number | undefined }> = {
      agent: { url: big.url(bigAgent.url), pid: bigAgent.pid },
      registry: { url: big.url(registry.url), pid: registryPid },
      restarted: { url: big.url(restarted.url), pid: restarted.pid },
      reference: { url: `${reference.url}/blob`, pid: reference.pid },
    };
    say(`cache-hit GETs of ${humanBytes(big.bytes)}: one warm-up per side, then ${opts.reps} interleaved reps (${GET_SIDES.map((x) => SIDE_NAME[x]).join(', ')})`);
    for (const side of GET_SIDES) await pinToServerCpu(servers[side].pid);
    for (const side of GET_SIDES) await curlGet(servers[side].url, big.bytes);
    const warmSampler = new RssSampler({ agent: bigAgent.pid, registry: registryPid }, opts.sampleMs).start();
    const getRuns: GetRun[] = [];
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const side of GET_SIDES) {
        const { pid, url } = servers[side];
        const cpu0 = pid === undefined ? undefined : await readCpuSeconds(pid);
        const r: CurlResult = await curlGet(url, big.bytes);
        const cpu1 = pid === undefined ? undefined : await readCpuSeconds(pid);
        const run: GetRun = {
          rep, side, seconds: r.seconds, ttfbSeconds: r.ttfbSeconds, mbps: mbps(r.bytes, r.seconds), clientCpuSeconds: r.clientCpuSeconds,
          serverCpuSeconds: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : null,
        };
        getRuns.push(run);
        say(`  rep ${rep} ${SIDE_NAME[side].padEnd(18)} ${run.mbps.toFixed(0).padStart(5)} MB/s  (${run.seconds.toFixed(2)} s, server CPU ${fixed(run.serverCpuSeconds ?? undefined, 2)} s, curl CPU ${run.clientCpuSeconds.toFixed(2)} s)`);
      }
    }
    const warmTrace = await warmSampler.stop();
    await unpin(registryPid); // the cold pulls below run unpinned, as in real life
    await reference.stop();
    await restarted.stop();
    await bigAgent.stop();
    if (!opts.keep) await rm(join(work, 'agent-large'), { recursive: true, force: true });

    // ---- 2. cold pull -------------------------------------------------------------------------------
    say(`cold pulls of ${humanBytes(imageBytes)} (${opts.imageSizes.map(humanBytes).join(' + ')}): ${opts.reps} interleaved reps, fresh agent data dir each`);
    const skopeoTmp = join(work, 'skopeo-tmp');
    await mkdir(skopeoTmp, { recursive: true });
    const skopeoEnv = { TMPDIR: skopeoTmp, REGISTRY_AUTH_FILE: join(work, 'no-auth.json') };
    const pullRuns: PullRun[] = [];
    for (let rep = 1; rep <= opts.reps; rep++) {
      for (const side of ['agent', 'direct'] as const) {
        const out = join(work, `pull-${side}-${rep}`);
        let run: PullRun;
        if (side === 'agent') {
          const name = `agent-pull-${rep}`;
          const agent = await startAgentProcess(agentOptions(name, 'info'));
          try {
            run = await agentPull(rep, agent, registryPid, out, skopeoEnv, opts.sampleMs);
          } finally {
            await agent.stop();
          }
          if (!opts.keep) await rm(join(work, name), { recursive: true, force: true });
        } else {
          const cpu0 = registryPid === undefined ? undefined : await readCpuSeconds(registryPid);
          const r = await skopeoPull(`${registry.host}/bench/app:1`, out, skopeoEnv);
          const cpu1 = registryPid === undefined ? undefined : await readCpuSeconds(registryPid);
          run = { rep, side, seconds: r.seconds, clientCpuSeconds: r.clientCpuSeconds, agentCpuSeconds: null, registryCpuSeconds: diff(cpu0, cpu1) };
        }
        await checkPulled(out, pullLayers);
        if (!opts.keep) await rm(out, { recursive: true, force: true });
        pullRuns.push(run);
        const extra = run.fetchWallSeconds !== undefined ? ` (of which ${run.fetchWallSeconds.toFixed(2)} s waiting for verified fetches)` : '';
        say(`  rep ${rep} ${side.padEnd(6)} ${run.seconds.toFixed(2)} s${extra}`);
      }
    }

    // ---- results ------------------------------------------------------------------------------------
    const finishedAt = new Date();
    const result = buildResult({
      opts, machine, startedAt, finishedAt, fsync, big, small, imageBytes, pullLayers: pullLayers.map((l) => ({ digest: l.digest, bytes: l.size })),
      getRuns, pullRuns, coldSmall, coldBig, warmTrace: warmTrace.series,
    });
    const stamp = startedAt.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
    await mkdir(opts.outDir, { recursive: true });
    const jsonPath = join(opts.outDir, `serve-${stamp}.json`);
    const svgPath = join(opts.outDir, `serve-${stamp}.svg`);
    await writeFile(jsonPath, JSON.stringify(result, null, 2) + '\n');
    await writeFile(svgPath, renderFigure(figure(result)));
    await copyFile(jsonPath, join(opts.outDir, 'serve-latest.json'));
    await copyFile(svgPath, join(opts.outDir, 'serve-latest.svg'));

    console.log('');
    console.log(report(result));
    console.log('');
    console.log(`results: ${relative(process.cwd(), jsonPath)}\nplot:    ${relative(process.cwd(), svgPath)}  (also serve-latest.json / serve-latest.svg)`);
    return 0;
  } catch (err) {
    console.error(`bench:serve failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    return 1;
  } finally {
    for (const c of cleanups) await c().catch((err: unknown) => console.error(`cleanup: ${String(err)}`));
    if (opts.keep) {
      say(`kept ${work}`);
    } else {
      await rm(work, { recursive: true, force: true });
      workRemoved = true;
    }
  }
}

function diff(a: number | undefined, b: number | undefined): number | null {
  return a !== undefined && b !== undefined ? b - a : null;
}

/** Idle RSS window, then one cold GET of `blob` through `agent` with curl, sampling agent and registry RSS. */
async function coldFetch(label: string, agent: AgentProcess, registryPid: number | undefined, blob: Blob, sampleMs: number): Promise<ColdFetch> {
  await delay(500); // let start-up settle before the idle window
  const sampler = new RssSampler({ agent: agent.pid, registry: registryPid }, sampleMs).start();
  let r: CurlResult;
  let getStartMs: number;
  let getEndMs: number;
  let cpu: number | null;
  let trace: RssTrace;
  try {
    await delay(IDLE_MS);
    const cpu0 = await readCpuSeconds(agent.pid);
    getStartMs = sampler.now();
    r = await curlGet(blob.url(agent.url), blob.bytes);
    getEndMs = sampler.now();
    cpu = diff(cpu0, await readCpuSeconds(agent.pid));
    await delay(TAIL_MS);
  } finally {
    trace = await sampler.stop();
  }
  const a = trace.series['agent'] ?? [];
  const g = trace.series['registry'] ?? [];
  const idle = medianKiB(a, 0, getStartMs);
  const peak = peakKiB(a, getStartMs, getEndMs + TAIL_MS);
  return {
    label,
    blobBytes: blob.bytes,
    digest: blob.digest,
    ttfbSeconds: r.ttfbSeconds,
    seconds: r.seconds,
    mbps: mbps(r.bytes, r.seconds),
    agentCpuSeconds: cpu,
    agentIdleRssKiB: idle,
    agentPeakRssKiB: peak,
    agentGrowthKiB: peak - idle,
    registryIdleRssKiB: g.length ? medianKiB(g, 0, getStartMs) : null,
    registryPeakRssKiB: g.length ? peakKiB(g, getStartMs, getEndMs + TAIL_MS) : null,
    getStartMs,
    getEndMs,
    trace: { agent: a, registry: g },
  };
}

function describeCold(c: ColdFetch): string {
  return `first byte after ${c.ttfbSeconds.toFixed(2)} s, done after ${c.seconds.toFixed(2)} s; agent RSS idle ${(c.agentIdleRssKiB / 1024).toFixed(0)} MiB → peak ${(c.agentPeakRssKiB / 1024).toFixed(0)} MiB (+${(c.agentGrowthKiB / 1024).toFixed(1)} MiB)`;
}

async function agentPull(
  rep: number, agent: AgentProcess, registryPid: number | undefined, out: string, env: NodeJS.ProcessEnv, sampleMs: number,
): Promise<PullRun> {
  const sampler = new RssSampler({ agent: agent.pid }, sampleMs).start();
  const a0 = await readCpuSeconds(agent.pid);
  const g0 = registryPid === undefined ? undefined : await readCpuSeconds(registryPid);
  let r: PullResult;
  let trace: RssTrace;
  try {
    r = await skopeoPull(`${agent.host}/bench/app:1`, out, env);
  } finally {
    trace = await sampler.stop();
  }
  const a1 = await readCpuSeconds(agent.pid);
  const g1 = registryPid === undefined ? undefined : await readCpuSeconds(registryPid);
  await delay(100); // let the last log lines arrive
  const logs = agent.logs();
  const fetches: AgentFetch[] = logs
    .filter((l) => l['msg'] === 'blob fetched and verified')
    .map((l) => ({ digest: String(l['digest']), bytes: Number(l['size']), seconds: Number(l['durationMs']) / 1000, endMs: Date.parse(String(l['time'])) }));
  // Blob GETs as [start, end] in ms (the log line is written at the end, with the duration).
  const requestIntervals = logs
    .filter((l) => l['msg'] === 'request completed' && l['route'] === 'blob' && l['method'] === 'GET')
    .map((l): [number, number] => [Date.parse(String(l['time'])) - Number(l['ms']), Date.parse(String(l['time']))]);
  const blobRequests = requestIntervals.map(([a, b]) => (b - a) / 1000);
  const requestSum = blobRequests.reduce((n, x) => n + x, 0);
  return {
    rep,
    side: 'agent',
    seconds: r.seconds,
    clientCpuSeconds: r.clientCpuSeconds,
    agentCpuSeconds: diff(a0, a1),
    registryCpuSeconds: diff(g0, g1),
    fetches,
    fetchWallSeconds: unionSeconds(fetches.map((f) => [f.endMs - f.seconds * 1000, f.endMs])),
    ...(blobRequests.length ? { slowestBlobRequestSeconds: Math.max(...blobRequests) } : {}),
    ...(requestIntervals.length > 1 ? { blobRequestsOverlapped: unionSeconds(requestIntervals) < 0.9 * requestSum } : {}),
    agentPeakRssKiB: peakKiB(trace.series['agent'] ?? []),
  };
}

/** Total length in seconds of the union of [start, end] ms intervals. */
function unionSeconds(intervals: Array<[number, number]>): number {
  let total = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [a, b] of [...intervals].sort((x, y) => x[0] - y[0])) {
    if (a > curEnd) {
      if (curEnd > curStart) total += curEnd - curStart;
      curStart = a;
      curEnd = b;
    } else {
      curEnd = Math.max(curEnd, b);
    }
  }
  if (curEnd > curStart) total += curEnd - curStart;
  return total / 1000;
}

/** Every layer of the pulled image is in the dir: output with the right size (skopeo verified the digests). */
async function checkPulled(dir: string, layers: ReadonlyArray<{ digest: string; size: number }>): Promise<void> {
  for (const l of layers) {
    const path = join(dir, l.digest.slice('sha256:'.length));
    const st = await stat(path).catch(() => undefined);
    if (st?.size !== l.size) throw new Error(`pulled image in ${dir}: layer ${l.digest} missing or of the wrong size`);
  }
}

// ---- result document ------------------------------------------------------------------------------

interface BuildInput {
  opts: ServeBenchOptions;
  machine: MachineInfo;
  startedAt: Date;
  finishedAt: Date;
  fsync: FsyncProbe;
  big: Blob;
  small: Blob;
  imageBytes: number;
  pullLayers: Array<{ digest: string; bytes: number }>;
  getRuns: GetRun[];
  pullRuns: PullRun[];
  coldSmall: ColdFetch;
  coldBig: ColdFetch;
  warmTrace: Record<string, RssPoint[]>;
}

type ServeResult = ReturnType<typeof buildResult>;

function roundDeep<T>(value: T): T {
  if (typeof value === 'number') return round(value, 4) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => roundDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundDeep(v)])) as T;
  }
  return value;
}

function buildResult(input: BuildInput) {
  const { opts, getRuns, pullRuns, coldSmall, coldBig } = input;
  const agentTp = sideSummary(getRuns, 'agent');
  const registryTp = sideSummary(getRuns, 'registry');
  const referenceTp = sideSummary(getRuns, 'reference');
  const restartedTp = sideSummary(getRuns, 'restarted');
  const throughputRatio = agentTp.median / registryTp.median;
  const agentPull = summarize(pullRuns.filter((r) => r.side === 'agent').map((r) => r.seconds));
  const directPull = summarize(pullRuns.filter((r) => r.side === 'direct').map((r) => r.seconds));
  const pullRatio = agentPull.median / directPull.median;
  const fetchWall = summarize(pullRuns.flatMap((r) => (r.fetchWallSeconds !== undefined ? [r.fetchWallSeconds] : [])));
  const cpuPerGiB = (side: GetSide): number =>
    summarize(getRuns.filter((r) => r.side === side && r.serverCpuSeconds !== null).map((r) => (r.serverCpuSeconds as number) / (input.big.bytes / GiB))).median;
  const warmAgent = input.warmTrace['agent'] ?? [];
  const cold = (c: ColdFetch) => ({
    blobBytes: c.blobBytes,
    digest: c.digest,
    ttfbSeconds: c.ttfbSeconds,
    seconds: c.seconds,
    mbps: c.mbps,
    agentCpuSeconds: c.agentCpuSeconds,
    agentIdleRssKiB: c.agentIdleRssKiB,
    agentPeakRssKiB: c.agentPeakRssKiB,
    agentGrowthKiB: c.agentGrowthKiB,
    registryIdleRssKiB: c.registryIdleRssKiB,
    registryPeakRssKiB: c.registryPeakRssKiB,
    getStartMs: c.getStartMs,
    getEndMs: c.getEndMs,
    trace: c.trace,
  });
  return roundDeep({
    benchmark: 'serve',
    schema: 1,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationSeconds: (input.finishedAt.getTime() - input.startedAt.getTime()) / 1000,
    options: {
      blobSize: opts.blobSize, smallBlobSize: opts.smallBlobSize, imageSizes: opts.imageSizes, reps: opts.reps, sampleMs: opts.sampleMs, quick: opts.quick,
    },
    machine: input.machine,
    loadAvgAtEnd: loadavg().map((l) => round(l, 2)),
    units: { throughput: 'MB/s = 10^6 bytes per second', rss: 'KiB (VmRSS)', time: 'seconds' },
    clients: {
      throughput: `curl -sS --http1.1 -o /dev/null (${input.machine.tools['curl'] ?? ''}); time = curl time_total`,
      pull: `skopeo copy docker://… dir:… (${input.machine.tools['skopeo'] ?? ''}); time = wall time of the command`,
    },
    targets: { throughputRatioMin: TARGET_THROUGHPUT_RATIO, coldPullRatioMax: TARGET_COLD_PULL_RATIO },
    disk: { fsyncProbe: input.fsync },
    throughput: {
      blobBytes: input.big.bytes,
      digest: input.big.digest,
      runs: getRuns,
      agent: agentTp,
      registry: registryTp,
      restarted: restartedTp,
      reference: referenceTp,
      ratio: throughputRatio,
      referenceRatio: agentTp.median / referenceTp.median,
      restartedRatio: restartedTp.median / registryTp.median,
      pass: throughputRatio >= TARGET_THROUGHPUT_RATIO,
      serverCpuSecondsPerGiB: { agent: cpuPerGiB('agent'), registry: cpuPerGiB('registry'), restarted: cpuPerGiB('restarted'), reference: cpuPerGiB('reference') },
      agentWarmServePeakRssKiB: peakKiB(warmAgent),
      registryWarmServePeakRssKiB: peakKiB(input.warmTrace['registry'] ?? []),
    },
    coldPull: {
      imageBytes: input.imageBytes,
      layers: input.pullLayers,
      runs: pullRuns,
      agent: agentPull,
      direct: directPull,
      ratio: pullRatio,
      pass: pullRatio <= TARGET_COLD_PULL_RATIO,
      /** Per agent rep, the wall time with a blob fetch (download + verify + fsync) in progress: no byte of a blob is served before its fetch ends. */
      fetchWallSeconds: fetchWall,
    },
    rss: {
      sampleMs: opts.sampleMs,
      small: cold(coldSmall),
      large: cold(coldBig),
      growthRatioLargeToSmall: coldBig.agentGrowthKiB / coldSmall.agentGrowthKiB,
      /** Flat when the large blob's growth stays under twice the small one's (and under a quarter of its size). */
      flat: coldBig.agentGrowthKiB < 2 * Math.max(coldSmall.agentGrowthKiB, 16 * 1024) && coldBig.agentGrowthKiB * 1024 < coldBig.blobBytes / 4,
    },
  });
}

// ---- text report ----------------------------------------------------------------------------------

function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}

function report(r: ServeResult): string {
  const tp = r.throughput;
  const cp = r.coldPull;
  const m = r.machine;
  const blob = humanBytes(tp.blobBytes);
  const img = humanBytes(cp.imageBytes);
  const lines: string[] = [];
  lines.push(`layerswarm bench:serve — ${m.cores} cores ${m.cpuModel}, ${m.memTotalMiB} MiB RAM, node ${m.node}, load ${m.loadAvg.join('/')} → ${r.loadAvgAtEnd.join('/')}, ${r.durationSeconds.toFixed(0)} s`);
  lines.push('');
  lines.push(formatTable([
    ['measure', 'agent', 'baseline', 'ratio', 'target', ''],
    [`cache-hit GET ${blob}, MB/s (median of ${tp.agent.n})`, fixed(tp.agent.median, 0), `${fixed(tp.registry.median, 0)} registry`, fixed(tp.ratio, 2), `≥ ${TARGET_THROUGHPUT_RATIO.toFixed(2)}`, verdict(tp.pass)],
    [`cold pull ${img}, s (median of ${cp.agent.n})`, fixed(cp.agent.median, 2), `${fixed(cp.direct.median, 2)} direct`, fixed(cp.ratio, 2), `≤ ${TARGET_COLD_PULL_RATIO.toFixed(2)}`, verdict(cp.pass)],
  ], ['l', 'r', 'r', 'r', 'r', 'l']));
  lines.push('');
  lines.push('cache-hit GET detail (curl -o /dev/null)');
  const cpu = tp.serverCpuSecondsPerGiB;
  lines.push(formatTable([
    ['server', 'median MB/s', 'min', 'max', 'server CPU s/GiB', 'reps MB/s'],
    ...GET_SIDES.map((side) => {
      const s = tp[side];
      const reps = tp.runs.filter((x) => x.side === side).map((x) => x.mbps.toFixed(0)).join(' ');
      return [SIDE_NAME[side], fixed(s.median, 0), fixed(s.min, 0), fixed(s.max, 0), fixed(cpu[side], 2), reps];
    }),
  ], ['l', 'r', 'r', 'r', 'r', 'l']));
  lines.push(`agent = the process that did the cold fetch; "agent (restarted)" = a fresh agent process on the same store: ${fixed(tp.restartedRatio, 2)} × registry`);
  lines.push(`agent / reference (plain Node streaming the same file): ${fixed(tp.referenceRatio, 2)}`);
  lines.push('');
  lines.push('cold pull detail (skopeo copy → dir:, fresh agent data dir per rep)');
  lines.push(formatTable([
    ['rep', 'agent s', 'direct s', 'agent − direct s', 'fetch wait s', 'fetches (MB/s each)', 'agent CPU s', 'skopeo CPU s agent/direct'],
    ...Array.from({ length: r.options.reps }, (_, i) => {
      const a = cp.runs.find((x) => x.rep === i + 1 && x.side === 'agent');
      const d = cp.runs.find((x) => x.rep === i + 1 && x.side === 'direct');
      const speeds = (a?.fetches ?? []).filter((f) => f.bytes >= MiB).map((f) => (f.bytes / f.seconds / 1e6).toFixed(0)).join(' ');
      return [String(i + 1), fixed(a?.seconds, 2), fixed(d?.seconds, 2), fixed(a && d ? a.seconds - d.seconds : undefined, 2), fixed(a?.fetchWallSeconds, 2), speeds,
        fixed(a?.agentCpuSeconds ?? undefined, 2),
        `${fixed(a?.clientCpuSeconds, 2)} / ${fixed(d?.clientCpuSeconds, 2)}`];
    }),
  ]));
  const overlapped = cp.runs.filter((x) => x.blobRequestsOverlapped !== undefined).map((x) => x.blobRequestsOverlapped);
  lines.push(`fetch wait = time with a blob fetch (download+sha256+fsync) in progress, when the agent serves nothing of that blob; ` +
    `skopeo's blob GETs ${overlapped.length === 0 ? 'n/a' : overlapped.every((o) => !o) ? 'ran one after the other (no overlap)' : 'overlapped'}`);
  const f = r.disk.fsyncProbe;
  lines.push(`disk probe: write ${humanBytes(f.bytes)} ${f.writeSeconds.toFixed(2)} s, then fsync ${f.fsyncSeconds.toFixed(2)} s (the agent fsyncs each blob before serving it)`);
  lines.push('');
  lines.push(`agent RSS (VmRSS sampled every ${r.rss.sampleMs} ms)`);
  const mib = (k: number | null | undefined): string => (k === null || k === undefined ? 'n/a' : (k / 1024).toFixed(1));
  lines.push(formatTable([
    ['phase', 'idle MiB', 'peak MiB', 'growth MiB', 'TTFB s', 'total s', 'registry peak MiB'],
    ...[r.rss.small, r.rss.large].map((c) => [`cold fetch+serve ${humanBytes(c.blobBytes)}`, mib(c.agentIdleRssKiB), mib(c.agentPeakRssKiB), mib(c.agentGrowthKiB),
      fixed(c.ttfbSeconds, 2), fixed(c.seconds, 2), mib(c.registryPeakRssKiB)]),
    [`cache-hit serving ${blob} (${tp.agent.n + 1} GETs)`, '', mib(tp.agentWarmServePeakRssKiB), '', '', '', mib(tp.registryWarmServePeakRssKiB)],
    [`cold pull ${img} (peak over reps)`, '', mib(Math.max(...cp.runs.map((x) => x.agentPeakRssKiB ?? Number.NaN).filter(Number.isFinite))), '', '', '', ''],
  ]));
  lines.push(`RSS growth ${humanBytes(r.rss.large.blobBytes)} vs ${humanBytes(r.rss.small.blobBytes)}: ×${fixed(r.rss.growthRatioLargeToSmall, 2)} for ×${(r.rss.large.blobBytes / r.rss.small.blobBytes).toFixed(0)} the bytes → ` +
    (r.rss.flat ? 'flat in blob size (streaming)' : 'NOT flat: memory grows with the blob size (bytes are held in memory during the fetch)'));
  return lines.join('\n');
}

// ---- figure ---------------------------------------------------------------------------------------

const COLOR = { agent: '#2b6cb0', baseline: '#9c9c9c', reference: '#d69e2e', restarted: '#90cdf4', idle: '#a0aec0', peak: '#2b6cb0', registry: '#9c9c9c', small: '#38a169', large: '#c53030' };

function figure(r: ServeResult): Figure {
  const tp = r.throughput;
  const cp = r.coldPull;
  const pts = (side: string, key: 'mbps' | 'seconds', runs: ReadonlyArray<{ side: string; mbps?: number; seconds: number }>): number[] =>
    runs.filter((x) => x.side === side).map((x) => (key === 'mbps' ? (x.mbps ?? Number.NaN) : x.seconds));
  const mib = (k: number | null): number => (k === null ? Number.NaN : k / 1024);
  const rel = (c: { trace: { agent: RssPoint[]; registry: RssPoint[] } }, name: 'agent' | 'registry'): Array<[number, number]> =>
    c.trace[name].map(([t, k]) => [t / 1000, k / 1024]);
  const blob = humanBytes(tp.blobBytes);
  const small = humanBytes(r.rss.small.blobBytes);
  return {
    title: `layerswarm bench:serve — agent vs distribution registry (${r.startedAt})`,
    subtitle: `${r.machine.cores} cores ${r.machine.cpuModel}, node ${r.machine.node}, load ${r.machine.loadAvg.join('/')}; bars = median, dots = repetitions; ` +
      `throughput ratio ${fixed(tp.ratio, 2)} (target ≥ ${TARGET_THROUGHPUT_RATIO}), cold-pull ratio ${fixed(cp.ratio, 2)} (target ≤ ${TARGET_COLD_PULL_RATIO})`,
    panels: [
      {
        kind: 'bar',
        title: `Cache-hit GET of a ${blob} blob (curl → /dev/null)`,
        unit: 'MB/s (higher is better)',
        groups: [{
          label: `${blob} blob, ${tp.agent.n} reps`,
          bars: [
            { label: 'agent (from its store)', value: tp.agent.median, color: COLOR.agent, points: pts('agent', 'mbps', tp.runs) },
            { label: 'registry (baseline)', value: tp.registry.median, color: COLOR.baseline, points: pts('registry', 'mbps', tp.runs) },
            { label: 'agent restarted (diagnostic)', value: tp.restarted.median, color: COLOR.restarted, points: pts('restarted', 'mbps', tp.runs) },
            { label: 'node:http+fs (reference)', value: tp.reference.median, color: COLOR.reference, points: pts('reference', 'mbps', tp.runs) },
          ],
        }],
        refLines: [{ value: tp.registry.median * TARGET_THROUGHPUT_RATIO, label: `target: agent ≥ ${TARGET_THROUGHPUT_RATIO.toFixed(2)} × registry`, color: '#c53030' }],
        note: `agent/registry ${fixed(tp.ratio, 2)} ${verdict(tp.pass)}; server CPU s/GiB: agent ${fixed(tp.serverCpuSecondsPerGiB.agent, 2)}, registry ${fixed(tp.serverCpuSecondsPerGiB.registry, 2)}`,
      },
      {
        kind: 'bar',
        title: `Cold pull of a ${humanBytes(cp.imageBytes)} image (skopeo copy → dir:)`,
        unit: 'seconds (lower is better)',
        digits: 2,
        groups: [{
          label: `${cp.layers.length} layers, ${cp.agent.n} reps`,
          bars: [
            { label: 'through a cold agent', value: cp.agent.median, color: COLOR.agent, points: pts('agent', 'seconds', cp.runs),
              inner: { value: cp.fetchWallSeconds.median, label: 'waiting for fetch+verify+fsync (no byte served)' } },
            { label: 'registry direct (baseline)', value: cp.direct.median, color: COLOR.baseline, points: pts('direct', 'seconds', cp.runs) },
          ],
        }],
        refLines: [{ value: cp.direct.median * TARGET_COLD_PULL_RATIO, label: `target: ≤ ${TARGET_COLD_PULL_RATIO} × direct`, color: '#c53030' }],
        note: `agent/direct ${fixed(cp.ratio, 2)} ${verdict(cp.pass)}; disk probe: fsync of ${humanBytes(r.disk.fsyncProbe.bytes)} took ${fixed(r.disk.fsyncProbe.fsyncSeconds, 2)} s`,
      },
      {
        kind: 'bar',
        title: 'Agent RSS: idle baseline vs peak during a cold fetch+serve',
        unit: 'MiB (VmRSS)',
        digits: 0,
        groups: [
          { label: `${small} blob`, bars: [
            { label: 'agent idle', value: mib(r.rss.small.agentIdleRssKiB), color: COLOR.idle },
            { label: 'agent peak', value: mib(r.rss.small.agentPeakRssKiB), color: COLOR.peak },
            { label: 'registry peak', value: mib(r.rss.small.registryPeakRssKiB), color: COLOR.registry },
          ] },
          { label: `${blob} blob`, bars: [
            { label: 'agent idle', value: mib(r.rss.large.agentIdleRssKiB), color: COLOR.idle },
            { label: 'agent peak', value: mib(r.rss.large.agentPeakRssKiB), color: COLOR.peak },
            { label: 'registry peak', value: mib(r.rss.large.registryPeakRssKiB), color: COLOR.registry },
          ] },
        ],
        note: `agent growth: +${fixed(mib(r.rss.small.agentGrowthKiB), 1)} MiB (${small}) vs +${fixed(mib(r.rss.large.agentGrowthKiB), 1)} MiB (${blob}): ` +
          (r.rss.flat ? 'flat in blob size (streaming)' : 'grows with the blob size (not streaming)'),
      },
      {
        kind: 'line',
        title: 'RSS over time during the cold fetch+serve',
        xLabel: `seconds since sampling started (idle ${IDLE_MS / 1000} s, then the GET)`,
        yLabel: 'MiB (VmRSS)',
        series: [
          { label: `agent, ${small}`, color: COLOR.small, points: rel(r.rss.small, 'agent') },
          { label: `agent, ${blob}`, color: COLOR.large, points: rel(r.rss.large, 'agent') },
          { label: `registry, ${blob}`, color: COLOR.registry, points: rel(r.rss.large, 'registry') },
        ],
        markers: [
          { x: r.rss.large.getStartMs / 1000, label: 'GET sent', color: '#444' },
          { x: (r.rss.large.getStartMs / 1000) + r.rss.large.ttfbSeconds, label: `${blob}: first byte`, color: COLOR.large },
          { x: (r.rss.large.getStartMs / 1000) + r.rss.large.seconds, label: `${blob}: last byte`, color: COLOR.large },
        ],
        note: `${blob}: first byte ${fixed(r.rss.large.ttfbSeconds, 2)} s after the GET (the whole blob is fetched, hashed and fsynced first), last byte after ${fixed(r.rss.large.seconds, 2)} s`,
      },
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
