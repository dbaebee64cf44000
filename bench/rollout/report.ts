/** The rollout's results.json (bench/lib/rollout-results.ts, mode 'emulated') and its text table. */
import { checkConsistency, fluidBound, speedup, summarizeRun, ROLLOUT_SCHEMA_VERSION, type NodeOutcome, type RolloutResults, type RunSummary } from '../lib/rollout-results.ts';
import { formatTable } from '../lib/table.ts';
import type { HostResources } from './host-pool.ts';
import type { ImageInfo } from './infra.ts';
import type { NodeMetrics } from './protocol.ts';

/** What the emulation adds beyond the shared schema (readers of results.json may ignore it). */
export interface EmulationDetails {
  /** Node indexes (0..N-1 of the requested N) behind the per-node arrays, in order. */
  readonly nodeIndexes: number[];
  /** Registry endpoints of the agents of both runs (all closed when the bench returns). */
  readonly agentUrls: string[];
  readonly roles: { slow: number[]; corrupt: number[]; churned: Array<{ index: number; seconds: number }> };
  readonly failed: Array<{ index: number; error: string }>;
  readonly fallbacks: Record<string, number>;
  readonly badPieces: number;
  readonly peersBanned: number;
  readonly pullAttemptsMax: number;
  /** Bytes the origin sent: to the seeder (preheat + anything else) and to agents. */
  readonly originEgress: { total: number; toAgents: number; toSeeder: number };
  readonly seederBytesUp: number;
  readonly agentWarnings: { total: number; sample: string[] };
  readonly baselineMeasured?: { completed: number; wallSeconds: number; originRateBytesPerSec: number };
}

export type EmulatedResults = RolloutResults & { readonly emulation: EmulationDetails };

export interface BuildInput {
  readonly image: ImageInfo;
  readonly nodeRate: number;
  readonly seedRate: number;
  readonly originRate: number | undefined;
  readonly swarm: NodeOutcome[];
  readonly swarmEgress: number;
  readonly baseline: { outcomes: NodeOutcome[]; egress: number; kind: 'measured' | 'projected'; note?: string } | undefined;
  readonly parameters: Record<string, unknown>;
  readonly resources: Record<string, unknown>;
  readonly machine: Record<string, unknown>;
  readonly command: string;
  readonly startedAt: string;
  readonly emulation: EmulationDetails;
}

export function buildResults(i: BuildInput): EmulatedResults {
  const nodes = i.swarm.length;
  const bound = fluidBound(i.image.bytes, nodes, i.seedRate, i.nodeRate);
  const summary = summarizeRun(i.swarm, i.image.bytes, bound, i.swarmEgress);
  const baseline = i.baseline === undefined ? undefined : {
    ...summarizeRun(i.baseline.outcomes, i.image.bytes, bound, i.baseline.egress),
    kind: i.baseline.kind,
    ...(i.baseline.note === undefined ? {} : { note: i.baseline.note }),
  };
  return {
    schemaVersion: ROLLOUT_SCHEMA_VERSION,
    mode: 'emulated',
    nodes,
    imageBytes: i.image.bytes,
    layers: i.image.layers.map((l) => l.size),
    pieceBytes: i.image.pieceBytes,
    nodeLinkBytesPerSec: i.nodeRate,
    seederLinkBytesPerSec: i.seedRate,
    originLinkBytesPerSec: i.originRate ?? null,
    boundSeconds: Math.round(bound * 1000) / 1000,
    ...summary,
    ...(baseline === undefined ? {} : { baseline, speedup: speedup(summary, baseline) }),
    parameters: i.parameters,
    resources: i.resources,
    machine: i.machine,
    command: i.command,
    startedAt: i.startedAt,
    emulation: i.emulation,
  };
}

/** Sum of fallbacks, bad pieces, bans and warnings over nodes. */
export function aggregateMetrics(metrics: Iterable<NodeMetrics>): Pick<EmulationDetails, 'fallbacks' | 'badPieces' | 'peersBanned' | 'agentWarnings'> {
  const fallbacks: Record<string, number> = {};
  let badPieces = 0;
  let peersBanned = 0;
  let total = 0;
  const sample: string[] = [];
  for (const m of metrics) {
    for (const [k, v] of Object.entries(m.fallbacks)) fallbacks[k] = (fallbacks[k] ?? 0) + v;
    badPieces += m.badPieces;
    peersBanned += m.peersBanned;
    total += m.warnings;
    for (const w of m.lastWarnings) if (sample.length < 10 && !sample.includes(w)) sample.push(w);
  }
  return { fallbacks, badPieces, peersBanned, agentWarnings: { total, sample } };
}

export function resourcesOf(hosts: HostResources[], harness: { maxRssBytes: number; cpuSeconds: number }, wallSeconds: number): Record<string, unknown> {
  const totalRss = hosts.reduce((a, h) => a + h.maxRssBytes, 0) + harness.maxRssBytes;
  const cpu = hosts.reduce((a, h) => a + h.cpuSecondsDuringRun, 0);
  return {
    wallSeconds: Math.round(wallSeconds * 10) / 10,
    hostProcesses: hosts.map((h) => ({ ...h, maxRssMiB: Math.round(h.maxRssBytes / 2 ** 20) })),
    harness: { ...harness, maxRssMiB: Math.round(harness.maxRssBytes / 2 ** 20), note: 'tracker, seeder, origin proxy, harness (one process); cpuSeconds over the whole bench' },
    peakRssBytesTotal: totalRss,
    peakRssMiBTotal: Math.round(totalRss / 2 ** 20),
    note: 'peak RSS per process (getrusage maxRSS; the sum over processes is an upper bound of the simultaneous total); cpuSecondsDuringRun: host processes from the pull start to collection',
    cpuSecondsHostsDuringRun: Math.round(cpu * 10) / 10,
  };
}

const s = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '∞');
const r = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '∞');

export function resultsTable(res: EmulatedResults): string {
  const rows: string[][] = [['run', 'done', 'p50 s', 'p90 s', 'p99 s', 'max s', 'p50/T*', 'p99/T*', 'max/T*', 'origin/S', 'up max/mean']];
  const row = (name: string, x: RunSummary): string[] => [
    name, `${x.completed}/${x.nodeSeconds.length}`, s(x.p50Seconds), s(x.p90Seconds), s(x.p99Seconds), s(x.maxSeconds),
    r(x.p50Ratio), r(x.p99Ratio), r(x.maxRatio), r(x.originEgressRatio), r(x.uploadMaxOverMean),
  ];
  rows.push(row('swarm', res));
  if (res.baseline) rows.push(row(`origin-only (${res.baseline.kind})`, res.baseline));
  const lines = [formatTable(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'])];
  lines.push(`T* = ${res.boundSeconds.toFixed(1)} s (N = ${res.nodes}, S = ${(res.imageBytes / 2 ** 20).toFixed(2)} MiB, B = ${(res.nodeLinkBytesPerSec / 1024).toFixed(0)} KiB/s, B_s = ${(res.seederLinkBytesPerSec / 2 ** 20).toFixed(2)} MiB/s)`);
  if (res.speedup) lines.push(`speed-up (origin-only / swarm): p50 ${res.speedup.p50}×, p99 ${res.speedup.p99}×, max ${res.speedup.max}×`);
  const e = res.emulation;
  lines.push(`origin egress (swarm run): ${(e.originEgress.total / 2 ** 20).toFixed(1)} MiB = ${res.originEgressRatio}× S (seeder ${(e.originEgress.toSeeder / 2 ** 20).toFixed(1)} MiB, agents ${(e.originEgress.toAgents / 2 ** 20).toFixed(1)} MiB); seeder uploaded ${(e.seederBytesUp / 2 ** 20).toFixed(1)} MiB = ${(e.seederBytesUp / res.imageBytes).toFixed(2)}× S`);
  lines.push(`fallbacks ${JSON.stringify(e.fallbacks)}, bad pieces ${e.badPieces}, peers banned ${e.peersBanned}, failed ${e.failed.length}, churned ${e.roles.churned.length}, agent warnings ${e.agentWarnings.total}`);
  const rs = res.resources as { peakRssMiBTotal?: number; cpuSecondsHostsDuringRun?: number; hostProcesses?: Array<{ maxRssMiB: number }> };
  lines.push(`resources: peak RSS ${rs.peakRssMiBTotal} MiB total (hosts ${(rs.hostProcesses ?? []).map((h) => h.maxRssMiB).join(', ')} MiB), host CPU during the swarm run ${rs.cpuSecondsHostsDuringRun} s`);
  const problems = checkConsistency(res);
  if (problems.length > 0) lines.push(`consistency: ${problems.join('; ')}`);
  return lines.join('\n');
}

/** DIR/README.md: the exact command, the machine, and the table (for committed results). */
export function resultsReadme(res: EmulatedResults): string {
  const m = res.machine as { cpuModel?: string; cores?: number; memTotalMiB?: number; os?: string; kernel?: string; node?: string; loadAvg?: number[]; tools?: Record<string, string> };
  return [
    `# layerswarm bench rollout: N = ${res.nodes}`,
    '',
    `Started ${res.startedAt}. Command (from the repository root):`,
    '',
    '```',
    res.command,
    '```',
    '',
    `Machine: ${m.cpuModel} (${m.cores} cores), ${m.memTotalMiB} MiB RAM, ${m.os}, kernel ${m.kernel}, Node ${m.node}; load average at the start ${(m.loadAvg ?? []).join(' ')} ` +
      '(other work shared the machine: see the load average).',
    '',
    '```',
    resultsTable(res),
    '```',
    '',
    'Files: `results.json` (schema bench/lib/rollout-results.ts, mode "emulated"; per-node arrays, parameters, resources, machine; `emulation` holds fallbacks by reason, stress roles, origin egress split), `cdf.svg` (completion-time CDFs and T*).',
    ...(res.baseline?.note ? ['', `Baseline: ${res.baseline.note}`] : []),
    '',
  ].join('\n');
}
