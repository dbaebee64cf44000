/** A SimRun → the shared results.json schema (bench/lib/rollout-results.ts, mode 'simulated'). */
import { ROLLOUT_SCHEMA_VERSION, percentile, summarizeRun, type NodeOutcome, type RolloutResults } from '../lib/rollout-results.ts';
import type { SimRun } from './simulation.ts';

export interface SimResultsContext {
  readonly command: string;
  readonly startedAt: Date;
  readonly machine: Record<string, unknown>;
}

export function nodeOutcomes(run: SimRun): NodeOutcome[] {
  return run.hosts.map((h) => ({
    seconds: h.completeAt === undefined ? undefined : h.completeAt / 1000,
    bytesDown: h.bytesDown, bytesUp: h.bytesUp, bytesFromSeeder: h.bytesFromSeeder, bytesFromOrigin: 0,
  }));
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Figures that explain the tail (not part of the summary arithmetic). */
export function diagnostics(run: SimRun): Record<string, unknown> {
  const firstByte = run.hosts.map((h) => (h.firstByteAt === undefined ? Number.POSITIVE_INFINITY : (h.firstByteAt - h.startAt) / 1000));
  const done = run.hosts.filter((h) => h.completeAt !== undefined);
  const dl = done.map((h) => ((h.completeAt as number) - (h.firstByteAt ?? h.startAt)) / 1000);
  const byKind = (pred: (h: SimRun['hosts'][number]) => boolean): number | null => {
    const t = run.hosts.filter(pred).map((h) => (h.completeAt ?? Number.POSITIVE_INFINITY) / 1000);
    return t.length === 0 ? null : r3(percentile(t, 50));
  };
  const seederBusy = run.seeder.bytesUp / run.options.seederRate;
  return {
    finished: run.finished,
    virtualSeconds: r3(run.endSeconds),
    /** Mean link use of nodes while downloading (fraction of capacity) and of the seeder, sampled every 100 ms. */
    linkUse: Object.fromEntries(Object.entries(run.linkUse).map(([k, v]) => [k, r3(v)])),
    /** Seeder egress / B_s: no rollout ends before the seeder has pushed its last piece. */
    seederBusySeconds: r3(seederBusy),
    firstByteP50Seconds: r3(percentile(firstByte, 50)),
    firstByteP99Seconds: r3(percentile(firstByte, 99)),
    /** Completion − first byte, per node: the download phase alone. */
    downloadP50Seconds: r3(percentile(dl, 50)),
    downloadP99Seconds: r3(percentile(dl, 99)),
    slowNodesP50Seconds: byKind((h) => h.slow),
    corruptNodesP50Seconds: byKind((h) => h.corrupt),
    closes: run.counters.closes,
    badPieces: run.counters.badPieces,
    wastedPieces: run.wastedPieces,
    abortedFlowBytes: Math.round(run.counters.abortedFlowBytes),
    trackerAnnounces: run.trackerAnnounces,
    trackerRefused: run.trackerRefused,
  };
}

export function buildResults(run: SimRun, ctx: SimResultsContext): RolloutResults {
  const o = run.options;
  const summary = summarizeRun(nodeOutcomes(run), run.imageBytes, run.boundSeconds, run.seeder.bytesUp);
  const largest = run.layers.reduce((a, b) => (b.size > a.size ? b : a));
  return {
    schemaVersion: ROLLOUT_SCHEMA_VERSION,
    mode: 'simulated',
    nodes: o.nodes,
    imageBytes: run.imageBytes,
    layers: [...o.layers],
    pieceBytes: largest.pieceLength,
    nodeLinkBytesPerSec: o.nodeRate,
    seederLinkBytesPerSec: o.seederRate,
    originLinkBytesPerSec: null,
    boundSeconds: run.boundSeconds,
    ...summary,
    parameters: {
      latencyMs: o.latencyMs, linkModel: o.linkModel, connectMs: o.connectMs, staggerMs: o.staggerMs, seed: o.seed, slowFraction: o.slowFraction, slowFactor: o.slowFactor,
      corruptFraction: o.corruptFraction, churnFraction: o.churnFraction, churnDowntimeMs: o.churnDowntimeMs, tickMs: o.tickMs,
      schedulerOverrides: o.scheduler, scheduler: run.schedulerConfig, seederScheduler: run.seederSchedulerConfig, piecePolicy: run.piecePolicy,
      layerPieces: run.layers.map((l) => ({ size: l.size, pieceLength: l.pieceLength, pieceCount: l.pieceCount })),
      tracker: { handoutSize: o.handoutSize, maxPeersPerSwarm: o.maxPeersPerSwarm, peerTtlMs: o.peerTtlMs },
      maxSeconds: o.maxSeconds,
      network: 'fluid flows, local max-min sharing per link (bench/sim/network.ts); control messages latency-only',
    },
    resources: {
      wallSeconds: r3(run.wallSeconds),
      events: run.events,
      eventsPerSecond: Math.round(run.events / Math.max(1e-9, run.wallSeconds)),
      schedulerEvents: run.counters.schedulerEvents,
      schedulerCommands: run.counters.commands,
      flowsRetimed: run.flowsRetimed,
      peakRssBytes: process.memoryUsage().rss,
      cpuSeconds: r3((process.cpuUsage().user + process.cpuUsage().system) / 1e6),
    },
    diagnostics: diagnostics(run),
    machine: ctx.machine,
    command: ctx.command,
    startedAt: ctx.startedAt.toISOString(),
  };
}
