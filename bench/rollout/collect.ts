/**
 * From run records to per-node outcomes (bench/lib/rollout-results.ts NodeOutcome), and the projection of a capped
 * origin-only baseline.
 *
 * Per node (swarm run):
 * - bytesFromOrigin: what the origin proxy sent to the node's loopback address (manifests, the small config blob,
 *   and any fallback downloads; HTTP headers included);
 * - bytesFromSeeder: what the seeder's engine uploaded to the node's peer id;
 * - bytesDown: what the node's download token bucket (--download-limit) was charged: every piece-protocol frame
 *   received, endgame duplicates and pieces that failed verification included, plus origin blob bodies (manifests and
 *   HTTP headers, a few KiB, are not charged). The metric layerswarm_swarm_piece_bytes_total{direction="down"} credits
 *   each verified piece once, so it cannot add up with the uploaders' counts; it is kept in the emulation details.
 * - bytesUp: what the node's upload bucket was charged: every piece-protocol frame sent.
 * Without limits (no buckets), the metrics are used instead.
 * Baseline: everything comes from the origin (bytesDown = bytesFromOrigin, bytesFromSeeder = 0).
 */
import type { NodeOutcome } from '../lib/rollout-results.ts';
import type { RunRecord } from './run.ts';

export function swarmOutcomes(run: RunRecord, nodes: readonly number[], seederByPeer: Map<string, number>): NodeOutcome[] {
  return nodes.map((i) => {
    const m = run.metrics.get(i);
    const origin = run.originBytes.get(i) ?? 0;
    const prefix = run.peerPrefix.get(i);
    const pieceDown = (m?.pieceDownFromAgents ?? 0) + (m?.pieceDownFromComplete ?? 0);
    const charged = m !== undefined && m.chargedDown > 0;
    return {
      seconds: run.done.get(i),
      bytesDown: charged ? m.chargedDown : pieceDown + origin,
      bytesUp: charged ? m.chargedUp : m?.pieceUp ?? 0,
      bytesFromSeeder: prefix === undefined ? 0 : seederByPeer.get(prefix) ?? 0,
      bytesFromOrigin: origin,
    };
  });
}

export interface BaselineOutcome {
  readonly outcomes: NodeOutcome[];
  readonly kind: 'measured' | 'projected';
  readonly note?: string;
  /** Origin throughput measured over the run (bytes/s). */
  readonly measuredOriginRate: number;
  readonly measuredCompleted: number;
}

/**
 * Completion times of nodes that share one link of `rate` bytes/s fairly (processor sharing, each node also capped
 * at its own rate), starting together with `remaining` bytes each. Returns seconds from now, same order.
 */
export function fairShareFinish(remaining: readonly number[], caps: readonly number[], rate: number): number[] {
  const left = [...remaining];
  const finish = new Array<number>(left.length).fill(0);
  const active = new Set(left.map((_, i) => i).filter((i) => (left[i] ?? 0) > 0));
  let now = 0;
  while (active.size > 0) {
    // Water-filling: nodes capped below the fair share keep their cap; the rest share what is left equally.
    const ids = [...active].sort((a, b) => (caps[a] ?? Infinity) - (caps[b] ?? Infinity));
    const rates = new Map<number, number>();
    let budget = rate;
    ids.forEach((id, k) => {
      const share = budget / (ids.length - k);
      const r = Math.min(caps[id] ?? Infinity, share);
      rates.set(id, r);
      budget -= r;
    });
    let dt = Infinity;
    for (const id of ids) dt = Math.min(dt, (left[id] ?? 0) / (rates.get(id) ?? 1));
    now += dt;
    for (const id of ids) {
      left[id] = (left[id] ?? 0) - dt * (rates.get(id) ?? 0);
      if ((left[id] ?? 0) <= 1e-6 * Math.max(1, remaining[id] ?? 0)) {
        active.delete(id);
        finish[id] = now;
      }
    }
  }
  return finish;
}

export function baselineOutcomes(run: RunRecord, nodes: readonly number[], imageBytes: number, rateOf: (i: number) => number): BaselineOutcome {
  const measuredOriginRate = run.originTotalBytes / Math.max(1e-9, run.wallSeconds);
  const base = nodes.map((i): NodeOutcome => {
    const origin = run.originBytes.get(i) ?? 0;
    return { seconds: run.done.get(i), bytesDown: origin, bytesUp: 0, bytesFromSeeder: 0, bytesFromOrigin: origin };
  });
  const measuredCompleted = base.filter((o) => o.seconds !== undefined).length;
  if (!run.cut) return { outcomes: base, kind: 'measured', measuredOriginRate, measuredCompleted };
  const pending = nodes.map((_, k) => k).filter((k) => base[k]?.seconds === undefined && !run.failed.has(nodes[k] as number));
  const remaining = pending.map((k) => Math.max(0, imageBytes - (base[k]?.bytesFromOrigin ?? 0)));
  const finish = fairShareFinish(remaining, pending.map((k) => rateOf(nodes[k] as number)), measuredOriginRate);
  const outcomes = [...base];
  pending.forEach((k, j) => {
    const o = base[k] as NodeOutcome;
    const projectedBytes = Math.max(o.bytesFromOrigin, imageBytes);
    outcomes[k] = { seconds: run.wallSeconds + (finish[j] ?? 0), bytesDown: projectedBytes, bytesUp: 0, bytesFromSeeder: 0, bytesFromOrigin: projectedBytes };
  });
  const mib = (b: number): string => (b / 2 ** 20).toFixed(2);
  const note = `capped at ${run.wallSeconds.toFixed(1)} s: ${measuredCompleted} of ${nodes.length} nodes completed in the run (their times are measured); ` +
    `the other ${pending.length} are projected: the origin link's throughput measured over the capped run (${mib(measuredOriginRate)} MiB/s = ` +
    `${mib(run.originTotalBytes)} MiB / ${run.wallSeconds.toFixed(1)} s) is shared fairly from the cap on (processor sharing, each node also ` +
    `limited to its own B) over the bytes each incomplete node still lacked (image bytes − bytes the origin had sent it); ` +
    `a node's projected time = cap + its finish time under that sharing. Origin egress and per-node bytes of projected nodes are set to the image size.`;
  return { outcomes, kind: 'projected', note, measuredOriginRate, measuredCompleted };
}
