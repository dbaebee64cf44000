/**
 * The stable `results.json` schema shared by `layerswarm bench rollout` (emulated: real agents, tracker, seeder and
 * registry) and `layerswarm bench simulate` (discrete-event simulation of the same scheduler), plus the arithmetic
 * both use: the fluid bound, percentiles, ratios. Every figure in a RolloutResults is computed here from the recorded
 * per-node arrays, so the two tools report the same things the same way.
 *
 * Schema version 1 (docs: bench/README.md "results.json"). Fields are only ever added, never renamed.
 * Times are seconds from the rollout's common start; rates bytes/s; sizes bytes.
 */

export const ROLLOUT_SCHEMA_VERSION = 1;

export type RolloutMode = 'emulated' | 'simulated';

/** What one node did in one run. Arrays in RunResult are indexed by node (0..nodes-1), same order in every array. */
export interface NodeOutcome {
  /** Seconds from the common start to the node having the whole image verified; undefined: it never completed. */
  readonly seconds: number | undefined;
  readonly bytesDown: number;
  readonly bytesUp: number;
  /** Bytes this node received from the seeder (or, origin-only, from the origin). */
  readonly bytesFromSeeder: number;
  /** Bytes this node fetched from the origin directly (fallbacks; everything in origin-only mode). */
  readonly bytesFromOrigin: number;
}

export interface Percentiles {
  readonly p50Seconds: number;
  readonly p90Seconds: number;
  readonly p99Seconds: number;
  readonly maxSeconds: number;
}

export interface RunSummary extends Percentiles {
  /** Nodes that completed with verified digests. */
  readonly completed: number;
  readonly originEgressBytes: number;
  /** originEgressBytes / imageBytes. */
  readonly originEgressRatio: number;
  /** Percentiles divided by boundSeconds. */
  readonly p50Ratio: number;
  readonly p90Ratio: number;
  readonly p99Ratio: number;
  readonly maxRatio: number;
  /** Per-node arrays (index = node). */
  readonly nodeSeconds: ReadonlyArray<number | null>;
  readonly nodeBytesDown: readonly number[];
  readonly nodeBytesUp: readonly number[];
  readonly nodeBytesFromSeeder: readonly number[];
  readonly nodeBytesFromOrigin: readonly number[];
  /** Upload fairness over nodes: max/mean and Jain's index (1 = perfectly even) of nodeBytesUp. */
  readonly uploadMaxOverMean: number;
  readonly uploadJainIndex: number;
}

export interface RolloutResults extends RunSummary {
  readonly schemaVersion: number;
  readonly mode: RolloutMode;
  readonly nodes: number;
  readonly imageBytes: number;
  readonly layers: readonly number[];
  /** Piece length of the largest layer (the piece policy picks one per layer). */
  readonly pieceBytes: number;
  readonly nodeLinkBytesPerSec: number;
  readonly seederLinkBytesPerSec: number;
  /** Origin link (bytes/s), null when unlimited. */
  readonly originLinkBytesPerSec: number | null;
  /** T* = max(S/B_s, S/B, N·S/(B_s + N·B)). */
  readonly boundSeconds: number;
  /** The origin-only run with the same limits (absent when not run). */
  readonly baseline?: RunSummary & {
    /** 'measured': every node completed in the run; 'projected': see baselineNote. */
    readonly kind: 'measured' | 'projected';
    readonly note?: string;
  };
  /** baseline.p50Seconds / p50Seconds (and p99, max) when a baseline ran. */
  readonly speedup?: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Free-form parameters of the run (stagger, churn, slow/corrupt fractions, scheduler overrides, ...). */
  readonly parameters: Record<string, unknown>;
  /** Resource use: CPU seconds, peak RSS (bytes) per host process and in all; wall seconds. */
  readonly resources: Record<string, unknown>;
  /**
   * Optional figures that explain the result without entering the summary arithmetic (the simulator: seeder busy
   * time, first-byte and download-phase percentiles, connection closes by reason, tracker refusals, ...).
   */
  readonly diagnostics?: Record<string, unknown>;
  readonly machine: Record<string, unknown>;
  readonly command: string;
  readonly startedAt: string;
}

/** The fluid lower bound on the last node's completion: T* = max(S/B_s, S/B, N·S/(B_s + N·B)). */
export function fluidBound(imageBytes: number, nodes: number, seederRate: number, nodeRate: number): number {
  return Math.max(imageBytes / seederRate, imageBytes / nodeRate, (nodes * imageBytes) / (seederRate + nodes * nodeRate));
}

/** Nearest-rank percentile (p in 0..100) of values; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

/** Jain's fairness index of non-negative values: (Σx)² / (n·Σx²); 1 when all equal, 1/n when one has everything. */
export function jainIndex(values: readonly number[]): number {
  const sum = values.reduce((a, b) => a + b, 0);
  const squares = values.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (values.length * squares);
}

/**
 * Summarize one run. Percentiles are over all nodes, a node that never completed counting as +Infinity (so a
 * failed node shows up in max/p99 instead of silently improving them).
 */
export function summarizeRun(nodes: readonly NodeOutcome[], imageBytes: number, boundSeconds: number, originEgressBytes: number): RunSummary {
  const times = nodes.map((n) => n.seconds ?? Number.POSITIVE_INFINITY);
  const p = (q: number): number => percentile(times, q);
  const up = nodes.map((n) => n.bytesUp);
  const meanUp = up.reduce((a, b) => a + b, 0) / Math.max(1, up.length);
  const round = (x: number): number => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : x);
  const summary = {
    completed: nodes.filter((n) => n.seconds !== undefined).length,
    p50Seconds: round(p(50)), p90Seconds: round(p(90)), p99Seconds: round(p(99)), maxSeconds: round(p(100)),
    originEgressBytes,
    originEgressRatio: round(originEgressBytes / imageBytes),
    p50Ratio: round(p(50) / boundSeconds), p90Ratio: round(p(90) / boundSeconds),
    p99Ratio: round(p(99) / boundSeconds), maxRatio: round(p(100) / boundSeconds),
    nodeSeconds: nodes.map((n) => (n.seconds === undefined ? null : round(n.seconds))),
    nodeBytesDown: nodes.map((n) => n.bytesDown),
    nodeBytesUp: up,
    nodeBytesFromSeeder: nodes.map((n) => n.bytesFromSeeder),
    nodeBytesFromOrigin: nodes.map((n) => n.bytesFromOrigin),
    uploadMaxOverMean: round(meanUp === 0 ? 0 : Math.max(...up) / meanUp),
    uploadJainIndex: round(jainIndex(up)),
  };
  return summary;
}

/** The speed-up of the swarm over the baseline (baseline time / swarm time), per percentile. */
export function speedup(swarm: Percentiles, baseline: Percentiles): { p50: number; p99: number; max: number } {
  const r = (a: number, b: number): number => Math.round((a / b) * 100) / 100;
  return { p50: r(baseline.p50Seconds, swarm.p50Seconds), p99: r(baseline.p99Seconds, swarm.p99Seconds), max: r(baseline.maxSeconds, swarm.maxSeconds) };
}

/** Points of an empirical CDF (seconds, fraction of nodes complete), for the plot. Incomplete nodes never reach 1. */
export function cdfPoints(nodeSeconds: ReadonlyArray<number | null>): Array<[number, number]> {
  const done = nodeSeconds.filter((s): s is number => s !== null).sort((a, b) => a - b);
  const n = nodeSeconds.length;
  const points: Array<[number, number]> = [[0, 0]];
  done.forEach((s, i) => {
    points.push([s, i / n], [s, (i + 1) / n]);
  });
  return points;
}

/**
 * Consistency checks the harness tests assert (and the tools run before writing): bytes add up, ratios match the
 * recorded times. Returns the problems found (empty: consistent).
 */
export function checkConsistency(r: RolloutResults): string[] {
  const problems: string[] = [];
  const close = (a: number, b: number, what: string): void => {
    if (!(Math.abs(a - b) <= 1e-3 * Math.max(1, Math.abs(a), Math.abs(b)))) problems.push(`${what}: ${a} ≠ ${b}`);
  };
  close(r.boundSeconds, fluidBound(r.imageBytes, r.nodes, r.seederLinkBytesPerSec, r.nodeLinkBytesPerSec), 'boundSeconds');
  if (r.nodeSeconds.length !== r.nodes) problems.push(`nodeSeconds has ${r.nodeSeconds.length} entries for ${r.nodes} nodes`);
  const times = r.nodeSeconds.map((s) => s ?? Number.POSITIVE_INFINITY);
  for (const [q, field] of [[50, 'p50Seconds'], [90, 'p90Seconds'], [99, 'p99Seconds'], [100, 'maxSeconds']] as const) {
    const expected = percentile(times, q);
    if (Number.isFinite(expected)) close(r[field], expected, field);
    else if (Number.isFinite(r[field])) problems.push(`${field} is finite but a node never completed`);
  }
  if (Number.isFinite(r.p99Seconds)) close(r.p99Ratio, r.p99Seconds / r.boundSeconds, 'p99Ratio');
  // Every completed node received the whole image: bytesDown ≥ imageBytes (duplicates in endgame may add a little).
  r.nodeSeconds.forEach((s, i) => {
    const down = r.nodeBytesDown[i] ?? 0;
    if (s !== null && down < r.imageBytes) problems.push(`node ${i} completed with only ${down} of ${r.imageBytes} bytes received`);
  });
  // What the nodes received came from someone's upload, the seeder's or the origin's. Over real sockets a sender
  // counts bytes that were still in flight (socket buffers) when a connection closed and never arrived, so received
  // may fall short of sent (emulated runs: by at most 15%); it may never exceed it. A simulation is exact.
  const down = r.nodeBytesDown.reduce((a, b) => a + b, 0);
  const up = r.nodeBytesUp.reduce((a, b) => a + b, 0);
  const fromSeeder = r.nodeBytesFromSeeder.reduce((a, b) => a + b, 0);
  const fromOrigin = r.nodeBytesFromOrigin.reduce((a, b) => a + b, 0);
  const sent = up + fromSeeder + fromOrigin;
  const slack = 0.01 * Math.max(1, down);
  const exact = r.mode === 'simulated';
  if (down > sent + slack || (exact && down < sent - slack) || (!exact && down < 0.85 * sent)) {
    problems.push(`bytes do not add up: nodes received ${down}, nodes uploaded ${up} + seeder ${fromSeeder} + origin ${fromOrigin} = ${sent}`);
  }
  close(r.originEgressRatio, r.originEgressBytes / r.imageBytes, 'originEgressRatio');
  return problems;
}
