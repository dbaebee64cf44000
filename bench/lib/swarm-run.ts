/**
 * One rollout of `npm run bench:swarm` (bench/swarm.ts): a seeder and N agents as in-process SwarmEngines on
 * loopback TCP, every node behind its own LimitedTransport (one upload and one download TokenBucket per node, shared
 * by all its connections = a node-wide limit, the product's bandwidth-limit feature).
 *
 * - swarm:  a real in-process tracker; the seeder announces as seeder, agents learn each other and trade pieces.
 * - origin: the same engines and limits, but every agent's announce only ever returns the seeder and the seeder's
 *           returns nobody, so every byte comes from the seeder (the origin-only baseline).
 */
import { mkdir } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { formatAddress, trackerAnnounce, type Announce } from '../../agent/swarm/engine/announce.ts';
import { swarmEngineConfig } from '../../agent/swarm/engine/config.ts';
import { SwarmEngine } from '../../agent/swarm/engine/engine.ts';
import type { SchedulerConfig } from '../../agent/swarm/scheduler/config.ts';
import { silentLogger } from '../../shared/logging.ts';
import type { Metainfo } from '../../shared/swarm/metainfo.ts';
import { LimitedTransport } from '../../shared/wire/limited-transport.ts';
import { TokenBucket } from '../../shared/wire/rate-limit.ts';
import { TcpTransport } from '../../shared/wire/tcp-transport.ts';
import { TrackerClient } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';

export type SwarmMode = 'swarm' | 'origin';
export const MODES: readonly SwarmMode[] = ['swarm', 'origin'];
export const MODE_NAME: Record<SwarmMode, string> = { swarm: 'swarm', origin: 'origin-only' };

export interface RolloutSpec {
  readonly mode: SwarmMode;
  readonly agents: number;
  readonly meta: Metainfo;
  /** The complete blob the seeder serves. */
  readonly blobPath: string;
  /** Upload limit of the seeder, bytes/s. */
  readonly seedRate: number;
  /** Upload and download limit of every agent, bytes/s. */
  readonly nodeRate: number;
  /** Bucket burst (bytes): small, so a full bucket at the start does not hand out a free second of transfer. */
  readonly burst: number;
  /** Where the agents' data dirs go. */
  readonly workDir: string;
  /** Progress sampling interval. */
  readonly sampleMs: number;
  /** Give up after this long. */
  readonly timeoutMs: number;
  /** Scheduler overrides (e.g. pipelineDepth); default: the product's defaults. */
  readonly scheduler?: Partial<SchedulerConfig>;
}

export interface AgentResult {
  /** Agent index (1..N). */
  readonly agent: number;
  /** Seconds from the common start to the download resolving (every piece verified + whole-blob sha256). */
  readonly seconds: number;
  readonly bytesDown: number;
  readonly bytesUp: number;
  /** Bytes this agent received from the seeder. */
  readonly fromSeeder: number;
  /** Requests of this agent that uploaders refused (queue full: a Cancel back), a sign of upload-slot contention. */
  readonly rejected: number;
}

export interface RolloutResult {
  readonly mode: SwarmMode;
  readonly agents: AgentResult[];
  /** Bytes the seeder uploaded (piece payloads): the origin egress of the rollout. */
  readonly seederBytesUp: number;
  /** Wall seconds until the last agent completed. */
  readonly wallSeconds: number;
  /** CPU seconds (user + system) of this process during the rollout, and that / (wall × cores). */
  readonly cpuSeconds: number;
  readonly cpuUtilization: number;
  /** Event-loop delay during the rollout (ms): high values mean the process waited for a CPU (its own work or other
   * processes on the machine), so timers and token-bucket refills ran late. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  /** 1-minute load average at the end of the rollout. */
  readonly loadAvgEnd: number;
  /** [seconds, fraction of N·S held verified by all agents together]. */
  readonly progress: Array<[number, number]>;
}

/**
 * The product's engine defaults except: tick 50 ms and announce every 500 ms (the default 5 s is longer than the
 * whole rollout here, so agents would meet each other only at the end), request timeout 30 s (a request queued behind
 * a rate-limited uploader is slow, not lost).
 */
export const BENCH_ENGINE_OVERRIDES = { tickMs: 50, scheduler: { announceIntervalMs: 500, requestTimeoutMs: 30_000 } } as const;

function limited(uploadRate: number, downloadRate: number, burst: number): LimitedTransport {
  return new LimitedTransport(new TcpTransport(), {
    upload: new TokenBucket({ rate: uploadRate, burst }),
    download: new TokenBucket({ rate: downloadRate, burst }),
  });
}

export async function runRollout(spec: RolloutSpec, cores: number): Promise<RolloutResult> {
  const { meta, mode } = spec;
  const host = '127.0.0.1';
  const ENGINE_CONFIG = swarmEngineConfig({ ...BENCH_ENGINE_OVERRIDES, scheduler: { ...BENCH_ENGINE_OVERRIDES.scheduler, ...spec.scheduler } });
  const engines: SwarmEngine[] = [];
  let tracker: RunningTracker | undefined;
  let client: TrackerClient | undefined;
  try {
    if (mode === 'swarm') {
      tracker = await startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host, port: 0 }, logLevel: 'silent' }, { logger: silentLogger() });
      client = new TrackerClient({ url: tracker.url, timeoutMs: 5000 });
    }
    const seederAnnounce: Announce = client ? trackerAnnounce(client, { address: host, seeder: true }) : async () => [];
    // The seeder's download limit does not matter (it downloads nothing); give it the node rate.
    const seeder = new SwarmEngine({
      transport: limited(spec.seedRate, spec.nodeRate, spec.burst), announce: seederAnnounce, dataDir: join(spec.workDir, `${mode}-seeder`), config: ENGINE_CONFIG, logger: silentLogger(),
    });
    engines.push(seeder);
    const seederAddress = formatAddress(await seeder.listen({ host, port: 0 }));
    const onlySeeder: Announce = async () => [{ peerId: seeder.peerId, address: seederAddress, complete: true }];
    const agents: SwarmEngine[] = [];
    for (let i = 1; i <= spec.agents; i++) {
      const dataDir = join(spec.workDir, `${mode}-agent${i}`);
      await mkdir(dataDir, { recursive: true });
      const agent = new SwarmEngine({
        transport: limited(spec.nodeRate, spec.nodeRate, spec.burst), announce: client ? trackerAnnounce(client, { address: host }) : onlySeeder, dataDir, config: ENGINE_CONFIG, logger: silentLogger(),
      });
      engines.push(agent);
      agents.push(agent);
      await agent.listen({ host, port: 0 });
    }
    await seeder.seed(meta, { path: spec.blobPath }, AbortSignal.timeout(30_000));
    if (tracker) await new Promise((resolve) => setTimeout(resolve, 200)); // the seeder's first announce reaches the tracker

    const total = spec.agents * meta.size;
    const progress: Array<[number, number]> = [[0, 0]];
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const started = performance.now();
    const sample = (): void => {
      let have = 0;
      for (const a of agents) have += Math.min(meta.size, (a.torrentStats(meta.digest)?.have ?? 0) * meta.pieceLength);
      progress.push([(performance.now() - started) / 1000, have / total]);
    };
    const sampler = setInterval(sample, spec.sampleMs);
    const signal = AbortSignal.timeout(spec.timeoutMs);
    const results = await Promise.all(
      agents.map(async (agent, i): Promise<AgentResult> => {
        const r = await agent.download(meta, { signal });
        return { agent: i + 1, seconds: (performance.now() - started) / 1000, bytesDown: r.stats.bytesDown, bytesUp: 0, fromSeeder: r.stats.peers[seeder.peerId]?.bytesDown ?? 0, rejected: r.stats.rejected };
      }),
    );
    const wallSeconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    loop.disable();
    progress.push([wallSeconds, 1]);
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    // Uploads by agents go on after their own completion; read them once everyone is done.
    const agentsDone = results.map((r, i) => ({ ...r, bytesUp: agents[i]?.torrentStats(meta.digest)?.bytesUp ?? 0 }));
    return {
      mode, agents: agentsDone, seederBytesUp: seeder.torrentStats(meta.digest)?.bytesUp ?? 0, wallSeconds, cpuSeconds, cpuUtilization: cpuSeconds / (wallSeconds * cores),
      loopDelayP99Ms: loop.percentile(99) / 1e6, loopDelayMaxMs: loop.max / 1e6, loadAvgEnd: loadavg()[0] ?? Number.NaN, progress,
    };
  } finally {
    await Promise.allSettled(engines.map((e) => e.close({ removeFiles: true })));
    await client?.close();
    await tracker?.close();
  }
}
