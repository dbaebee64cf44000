/**
 * Bounds, summary, table and figure of `npm run bench:swarm` (bench/swarm.ts).
 *
 * Fluid bound (Kumar & Ross 2006; /work/shared/research/README.md) for a blob of S bytes, N agents with up/down
 * limit B each and a seeder with upload B_s:
 *   origin-only  T_origin = max(N·S/B_s, S/B)
 *   ideal swarm  T*       = max(S/B_s, S/B, N·S/(B_s + N·B))   → S/min(B_s, B) for large N
 */
import type { MachineInfo } from './machine.ts';
import { humanBytes, MiB, round } from './stats.ts';
import type { Figure } from './svg.ts';
import { MODE_NAME, MODES, type RolloutResult, type SwarmMode } from './swarm-run.ts';
import { fixed, formatTable } from './table.ts';

export interface Bounds {
  /** T* of the ideal swarm, seconds. */
  readonly swarm: number;
  /** T_origin of origin-only distribution, seconds. */
  readonly origin: number;
  /** S / min(B_s, B), seconds (the large-N limit of T*). */
  readonly limit: number;
}

export function bounds(size: number, agents: number, seedRate: number, nodeRate: number): Bounds {
  return {
    swarm: Math.max(size / seedRate, size / nodeRate, (agents * size) / (seedRate + agents * nodeRate)),
    origin: Math.max((agents * size) / seedRate, size / nodeRate),
    limit: size / Math.min(seedRate, nodeRate),
  };
}

/** Linear-interpolation percentile (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = ((s.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

export interface ModeSummary {
  readonly mode: SwarmMode;
  readonly p50: number;
  readonly p90: number;
  readonly max: number;
  /** Seeder upload in bytes and in multiples of S. */
  readonly originEgressBytes: number;
  readonly originEgressTimesS: number;
  /** max completion / T* (the swarm bound): 1.0 = as fast as any distribution can be. */
  readonly ratioToSwarmBound: number;
  /** max completion / this mode's own fluid bound (T* for swarm, T_origin for origin-only). */
  readonly ratioToModeBound: number;
  /** Aggregate delivered MiB/s (N·S / max completion). */
  readonly aggregateMiBps: number;
  readonly cpuUtilization: number;
  /** Origin egress / B_s: how long the seeder's link was busy. Pieces enter the swarm only through it, so every
   * duplicate copy it sends delays the rollout; in swarm mode this is the bound the run actually faced. */
  readonly seederBusySeconds: number;
  readonly loopDelayMaxMs: number;
  readonly loadAvgEnd: number;
}

export function summarizeMode(r: RolloutResult, size: number, seedRate: number, b: Bounds): ModeSummary {
  const times = r.agents.map((a) => a.seconds);
  const max = Math.max(...times);
  return {
    mode: r.mode,
    p50: percentile(times, 50),
    p90: percentile(times, 90),
    max,
    originEgressBytes: r.seederBytesUp,
    originEgressTimesS: r.seederBytesUp / size,
    ratioToSwarmBound: max / b.swarm,
    ratioToModeBound: max / (r.mode === 'swarm' ? b.swarm : b.origin),
    aggregateMiBps: (r.agents.length * size) / MiB / max,
    cpuUtilization: r.cpuUtilization,
    seederBusySeconds: r.seederBytesUp / seedRate,
    loopDelayMaxMs: r.loopDelayMaxMs,
    loadAvgEnd: r.loadAvgEnd,
  };
}

export interface SwarmBenchInput {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly machine: MachineInfo;
  readonly options: { agents: number; sizeBytes: number; pieceBytes: number; seedRate: number; nodeRate: number; burst: number; quick: boolean; pipelineDepth: number; engineOverrides: object };
  readonly bounds: Bounds;
  readonly runs: RolloutResult[];
}

export const CPU_CAVEAT =
  'All engines (seeder + agents) share this one process and its cores: per-piece sha256, the final whole-blob sha256 and loopback TCP of every node compete for the same CPU. ' +
  'The limits are meant to be low enough that bandwidth, not CPU, binds; the check is the origin-only run, which should take ≈ N·S/B_s (its ratio to its own bound ≈ 1.0), plus the CPU use, event-loop delay and load average columns (other processes on a shared machine take the same cores).';

export function buildSwarmResult(input: SwarmBenchInput) {
  const { options: o, bounds: b } = input;
  const summaries = input.runs.map((r) => summarizeMode(r, o.sizeBytes, o.seedRate, b));
  const swarm = summaries.find((s) => s.mode === 'swarm');
  const origin = summaries.find((s) => s.mode === 'origin');
  const originCheck = origin ? origin.ratioToModeBound : Number.NaN;
  return {
    bench: 'swarm',
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    machine: input.machine,
    options: o,
    method:
      'one process; seeder + N agents as SwarmEngines over TcpTransport on 127.0.0.1, each wrapped in a LimitedTransport with its own upload and download TokenBucket (node-wide limits). ' +
      'swarm: real in-process tracker, agents trade pieces; origin: agents only ever learn the seeder. Completion = download() resolved (all pieces verified + whole-blob sha256), from a common start. ' +
      'Origin egress = piece bytes the seeder uploaded (the seeder is the only node that holds the blob from the origin).',
    bounds: { swarmSeconds: round(b.swarm, 3), originSeconds: round(b.origin, 3), limitSeconds: round(b.limit, 3), formula: 'T* = max(S/B_s, S/B, N·S/(B_s + N·B)); T_origin = max(N·S/B_s, S/B)' },
    summary: summaries.map((s) => roundAll(s)),
    speedup: swarm && origin ? round(origin.max / swarm.max, 2) : null,
    bandwidthBound: { originRatioToOwnBound: round(originCheck, 3), ok: originCheck < 1.15 },
    cpuCaveat: CPU_CAVEAT,
    runs: input.runs.map((r) => ({
      ...r,
      wallSeconds: round(r.wallSeconds, 3),
      cpuSeconds: round(r.cpuSeconds, 2),
      cpuUtilization: round(r.cpuUtilization, 3),
      loopDelayP99Ms: round(r.loopDelayP99Ms, 1),
      loopDelayMaxMs: round(r.loopDelayMaxMs, 1),
      agents: r.agents.map((a) => ({ ...a, seconds: round(a.seconds, 3) })),
      progress: r.progress.map(([t, f]): [number, number] => [round(t, 2), round(f, 4)]),
    })),
  };
}

export type SwarmBenchResult = ReturnType<typeof buildSwarmResult>;

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? round(v, 3) : v])) as T;
}

const rate = (bps: number): string => `${fixed(bps / MiB, 1)} MiB/s`;

export function swarmReport(r: SwarmBenchResult): string {
  const o = r.options;
  const lines: string[] = [];
  lines.push(
    `1 seeder (B_s = ${rate(o.seedRate)} up) + ${o.agents} agents (B = ${rate(o.nodeRate)} up and down each), blob S = ${humanBytes(o.sizeBytes)} in ${humanBytes(o.pieceBytes)} pieces`,
  );
  lines.push(`bounds: T* = max(S/B_s, S/B, N·S/(B_s+N·B)) = ${fixed(r.bounds.swarmSeconds, 2)} s (S/min(B_s,B) = ${fixed(r.bounds.limitSeconds, 2)} s); origin-only T = max(N·S/B_s, S/B) = ${fixed(r.bounds.originSeconds, 2)} s`);
  lines.push('');
  const rows = [['mode', 'p50 s', 'p90 s', 'max s', 'origin egress', '× S', 'egress/B_s s', 'max / T*', 'max / own bound', 'MiB/s delivered', 'CPU use', 'loop delay max ms', 'load']];
  for (const s of r.summary) {
    rows.push([
      MODE_NAME[s.mode],
      fixed(s.p50, 2),
      fixed(s.p90, 2),
      fixed(s.max, 2),
      `${s.originEgressBytes} B (${humanBytes(s.originEgressBytes)})`,
      fixed(s.originEgressTimesS, 2),
      fixed(s.seederBusySeconds, 2),
      fixed(s.ratioToSwarmBound, 2),
      fixed(s.ratioToModeBound, 2),
      fixed(s.aggregateMiBps, 1),
      `${fixed(s.cpuUtilization * 100, 0)}%`,
      fixed(s.loopDelayMaxMs, 0),
      fixed(s.loadAvgEnd, 1),
    ]);
  }
  lines.push(formatTable(rows));
  lines.push('');
  const sw = r.summary.find((s) => s.mode === 'swarm');
  if (sw) {
    lines.push(
      `swarm: the seeder sent ${fixed(sw.originEgressTimesS, 2)}× S; new pieces enter the swarm only through its ${rate(o.seedRate)} link, so the run could not end before ` +
        `egress/B_s = ${fixed(sw.seederBusySeconds, 2)} s (T* assumes it sends each piece once: S/B_s = ${fixed(o.sizeBytes / o.seedRate, 2)} s); max exceeds it by ${fixed(sw.max - sw.seederBusySeconds, 2)} s`,
    );
  }
  if (r.speedup !== null) lines.push(`swarm speed-up vs origin-only (max completion): ${fixed(r.speedup, 2)}×`);
  const check = r.bandwidthBound.originRatioToOwnBound;
  if (Number.isFinite(check)) {
    lines.push(
      r.bandwidthBound.ok
        ? `bandwidth-bound check: origin-only took ${fixed(check, 2)}× N·S/B_s, so the token buckets, not the CPU, set the pace`
        : `WARNING: origin-only took ${fixed(check, 2)}× N·S/B_s (> 1.15): something other than the limits binds: CPU, this process's (CPU use) or other processes' on the machine (load, loop delay); rerun on a quiet machine or lower --node-mibps/--seed-mibps`,
    );
  }
  lines.push(`CPU caveat: ${r.cpuCaveat}`);
  return lines.join('\n');
}

const COLOR: Record<SwarmMode, string> = { swarm: '#2b6cb0', origin: '#9c9c9c' };

export function swarmFigure(r: SwarmBenchResult): Figure {
  const o = r.options;
  const byMode = new Map(r.runs.map((run) => [run.mode, run]));
  const agentIds = Array.from({ length: o.agents }, (_, i) => i + 1);
  const seconds = (mode: SwarmMode, agent: number): number => byMode.get(mode)?.agents.find((a) => a.agent === agent)?.seconds ?? Number.NaN;
  const present = MODES.filter((m) => byMode.has(m));
  const swarmSummary = r.summary.find((s) => s.mode === 'swarm');
  const tStar = { value: r.bounds.swarmSeconds, label: `swarm bound T* = ${fixed(r.bounds.swarmSeconds, 2)} s`, color: '#c53030' };
  const tOrigin = { value: r.bounds.originSeconds, label: `origin-only bound N·S/B_s = ${fixed(r.bounds.originSeconds, 1)} s`, color: '#555' };
  return {
    title: `bench:swarm — 1 seeder + ${o.agents} agents, ${humanBytes(o.sizeBytes)} blob, B_s = ${rate(o.seedRate)}, B = ${rate(o.nodeRate)}`,
    subtitle: `${r.startedAt} · ${r.machine.cores} cores (${r.machine.cpuModel}) · node ${r.machine.node} · one process, loopback TCP, token-bucket limits per node`,
    columns: 2,
    panels: [
      {
        kind: 'bar',
        title: 'Completion time per agent, both modes',
        unit: 'seconds',
        digits: 1,
        groups: agentIds.map((a) => ({ label: `a${a}`, bars: present.map((m) => ({ label: MODE_NAME[m], value: seconds(m, a), color: COLOR[m] })) })),
        refLines: [tStar, ...(byMode.has('origin') ? [tOrigin] : [])],
        note: r.speedup === null ? undefined : `swarm speed-up vs origin-only: ${fixed(r.speedup, 2)}× (max completion).`,
      },
      {
        kind: 'bar',
        title: 'Swarm completion per agent vs the bound',
        unit: 'seconds',
        digits: 2,
        groups: agentIds.map((a) => ({ label: `a${a}`, bars: [{ label: 'swarm', value: seconds('swarm', a), color: COLOR.swarm }] })),
        refLines: [tStar, ...(swarmSummary ? [{ value: swarmSummary.seederBusySeconds, label: `seeder busy = egress/B_s = ${fixed(swarmSummary.seederBusySeconds, 2)} s`, color: '#d69e2e' }] : [])],
        note: `max / T* = ${fixed(swarmSummary?.ratioToSwarmBound, 2)} (Kraken's 2,600-host test: p50 1.0×, p99 1.8×).`,
      },
      {
        kind: 'line',
        title: 'Delivered so far (all agents, fraction of N·S)',
        xLabel: 'seconds from start',
        yLabel: 'fraction',
        series: present.map((m) => ({ label: MODE_NAME[m], color: COLOR[m], points: byMode.get(m)?.progress ?? [] })),
        markers: [
          { x: r.bounds.swarmSeconds, label: 'T*', color: '#c53030' },
          ...(byMode.has('origin') ? [{ x: r.bounds.originSeconds, label: 'N·S/B_s', color: '#555' }] : []),
        ],
        note: 'Verified pieces held by all agents together, sampled during each run.',
      },
      {
        kind: 'bar',
        title: 'Origin egress (seeder upload)',
        unit: '× S',
        digits: 2,
        groups: r.summary.map((s) => ({ label: MODE_NAME[s.mode], bars: [{ label: MODE_NAME[s.mode], value: s.originEgressTimesS, color: COLOR[s.mode] }] })),
        refLines: [{ value: o.agents, label: `N·S (every agent from origin)`, color: '#555' }, { value: 1, label: 'S (each piece sent once)', color: '#c53030' }],
        note: `One process, ${r.machine.cores} cores: CPU use ${r.summary.map((s) => `${MODE_NAME[s.mode]} ${fixed(s.cpuUtilization * 100, 0)}%`).join(', ')}; origin-only took ${fixed(r.bandwidthBound.originRatioToOwnBound, 2)}× N·S/B_s (≈ 1 = bandwidth-bound).`,
      },
    ],
  };
}
