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
import { tmpdir } from 'node:os';
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
import { startFileServer } from './lib/file-server.ts';
import { machineInfo } from './lib/machine.ts';
import { parseServeOptions, USAGE } from './lib/options.ts';
import type { ServeBenchOptions } from './lib/options.ts';
import { findPid, medianKiB, peakKiB, readCpuSeconds, RssSampler } from './lib/procfs.ts';
import type { RssTrace } from './lib/procfs.ts';
import { GiB, humanBytes, mbps } from './lib/stats.ts';
import { renderFigure } from './lib/svg.ts';
import { fixed } from './lib/table.ts';
import {
  GET_SIDES, IDLE_MS, SIDE_NAME, TAIL_MS, type AgentFetch, type Blob, type ColdFetch, type GetRun, type GetSide, type PullRun,
} from './lib/serve-types.ts';
import { buildResult, figure, report } from './lib/serve-report.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const t0 = performance.now();
function say(text: string): void {
  console.log(`[bench +${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${text}`);
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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
