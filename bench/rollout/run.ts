/**
 * One rollout run: start the agents in host processes (with or without the tracker), pull the image at every node
 * from one common start (optionally staggered), close the churn set mid-run, wait until every node completed or
 * failed, or the deadline / baseline cap passed, then collect metrics, origin bytes by node, and resources.
 */
import { join } from 'node:path';
import { agentOriginHost, type OriginProxy } from './origin-proxy.ts';
import { HostPool, type HostGroup, type HostResources } from './host-pool.ts';
import type { AgentSpec, NodeMetrics } from './protocol.ts';
import type { ImageInfo } from './infra.ts';

export type RunKind = 'swarm' | 'baseline';

export interface RunSpec {
  readonly kind: RunKind;
  /** Node indexes taking part. */
  readonly nodes: readonly number[];
  readonly rateOf: (index: number) => number;
  /** Nodes put in a host process of their own with LAYERSWARM_TEST_CORRUPT_UPLOADS=1. */
  readonly corrupt: ReadonlySet<number>;
  readonly hosts: number;
  readonly tracker: string | undefined;
  readonly proxy: OriginProxy;
  readonly image: ImageInfo;
  readonly workDir: string;
  readonly agentArgs: string[];
  readonly staggerMs: number;
  readonly churn: { indexes: number[]; atSeconds: number } | undefined;
  /** Stop waiting (and abort pulls) this many seconds after the start. */
  readonly stopAfterSeconds: number;
  readonly progressMs: number;
  readonly say: (text: string) => void;
}

export interface RunRecord {
  readonly kind: RunKind;
  readonly nodes: readonly number[];
  /** Seconds from the common start, by node. */
  readonly done: Map<number, number>;
  readonly failed: Map<number, string>;
  readonly churned: Map<number, number>;
  readonly attempts: Map<number, number>;
  readonly metrics: Map<number, NodeMetrics>;
  /** Bytes the origin sent to each node (through the proxy, by the node's loopback address). */
  readonly originBytes: Map<number, number>;
  readonly originTotalBytes: number;
  /** Seconds from the common start until the last node settled, or until the run was stopped. */
  readonly wallSeconds: number;
  /** True when the run was cut at stopAfterSeconds with nodes still pulling. */
  readonly cut: boolean;
  readonly hosts: HostResources[];
  /** Engine peer id prefix by node (to match the seeder's per-peer traffic). */
  readonly peerPrefix: Map<number, string | undefined>;
  readonly urls: string[];
  readonly agentsStartSeconds: number;
}

/** Deterministic shuffle (stagger order) from a small LCG. */
function shuffled(values: readonly number[], seed: number): number[] {
  const out = [...values];
  let x = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j] as number, out[i] as number];
  }
  return out;
}

function groupsOf(spec: RunSpec): HostGroup[] {
  const agentOf = (index: number): AgentSpec => ({
    index, dataDir: join(spec.workDir, spec.kind, `node-${index}`), rate: spec.rateOf(index),
    origin: `http://${agentOriginHost(index)}:${spec.proxy.port}`,
  });
  const normal = spec.nodes.filter((i) => !spec.corrupt.has(i));
  const corrupt = spec.nodes.filter((i) => spec.corrupt.has(i));
  const groups: HostGroup[] = [];
  const hosts = Math.max(1, Math.min(spec.hosts, normal.length));
  for (let h = 0; h < hosts; h++) {
    const share = normal.slice(Math.floor((h * normal.length) / hosts), Math.floor(((h + 1) * normal.length) / hosts));
    if (share.length > 0) groups.push({ label: `${spec.kind}-${h}`, agents: share.map(agentOf) });
  }
  if (corrupt.length > 0) groups.push({ label: `${spec.kind}-corrupt`, agents: corrupt.map(agentOf), env: { LAYERSWARM_TEST_CORRUPT_UPLOADS: '1' } });
  return groups;
}

export async function runRollout(spec: RunSpec): Promise<RunRecord> {
  const done = new Map<number, number>();
  const failed = new Map<number, string>();
  const churned = new Map<number, number>();
  const attempts = new Map<number, number>();
  const expected = new Set(spec.nodes);
  /** Set when the run stops waiting: pulls aborted by the deadline then are incomplete, not failed. */
  let stopped = false;
  let settle: () => void = () => {};
  const allSettled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const check = (): void => {
    if (done.size + failed.size + churned.size >= expected.size) settle();
  };
  const pool = new HostPool({
    done: (i, s, a) => {
      done.set(i, s);
      attempts.set(i, a);
      check();
    },
    failed: (i, e, a) => {
      if (churned.has(i) || stopped) return;
      failed.set(i, e);
      attempts.set(i, a);
      check();
    },
    churned: (i, s) => {
      churned.set(i, s);
      done.delete(i);
      failed.delete(i);
      check();
    },
  });
  const timers: NodeJS.Timeout[] = [];
  try {
    const t0 = performance.now();
    const groups = groupsOf(spec);
    spec.say(`${spec.kind}: starting ${spec.nodes.length} agents in ${groups.length} host processes${spec.tracker ? ' (with the tracker)' : ' (plain mirrors, no tracker)'}`);
    await pool.start(groups, spec.tracker, spec.agentArgs);
    const agentsStartSeconds = (performance.now() - t0) / 1000;
    spec.say(`${spec.kind}: agents up in ${agentsStartSeconds.toFixed(1)} s`);

    const offsets: Record<number, number> = {};
    const order = shuffled(spec.nodes, 42);
    order.forEach((index, rank) => {
      offsets[index] = spec.nodes.length > 1 ? Math.round((spec.staggerMs * rank) / (spec.nodes.length - 1)) : 0;
    });
    const startAt = Date.now() + 500;
    const stopAt = startAt + Math.round(spec.stopAfterSeconds * 1000);
    spec.proxy.reset();
    // Pulls end later than the harness stops waiting (at close at the latest), so none is aborted before the cut.
    pool.startPulls(startAt, spec.image.repository, spec.image.tag, offsets, stopAt + 60_000);
    if (spec.churn && spec.churn.indexes.length > 0) {
      const c = spec.churn;
      timers.push(setTimeout(() => {
        spec.say(`${spec.kind}: closing ${c.indexes.length} agents (churn)`);
        pool.churn(c.indexes);
      }, Math.max(0, startAt + c.atSeconds * 1000 - Date.now())));
    }
    const isTty = process.stderr.isTTY === true;
    const progress = (): void => {
      const elapsed = Math.max(0, (Date.now() - startAt) / 1000);
      const line = `[rollout] ${spec.kind}: ${done.size}/${expected.size} complete, ${failed.size} failed, ${churned.size} churned; ` +
        `${(pool.pulledBytes / 2 ** 30).toFixed(2)} GiB verified by pullers, origin sent ${(spec.proxy.totalBytes() / 2 ** 20).toFixed(1)} MiB; ${elapsed.toFixed(0)} s`;
      process.stderr.write(isTty ? `\r${line}\x1b[K` : `${line}\n`);
    };
    const ticker = setInterval(progress, spec.progressMs);
    timers.push(ticker);
    let cut = false;
    await Promise.race([
      allSettled,
      new Promise<void>((resolve) => timers.push(setTimeout(() => {
        cut = true;
        resolve();
      }, Math.max(0, stopAt - Date.now())))),
    ]);
    stopped = true;
    const wallSeconds = (Date.now() - startAt) / 1000;
    for (const t of timers) clearTimeout(t);
    clearInterval(ticker);
    progress();
    if (isTty) process.stderr.write('\n');
    // Agents keep seeding after their own pull: read their counters before anything is closed.
    const snapshotBytes = spec.proxy.bytesByAddress();
    const originTotalBytes = spec.proxy.totalBytes();
    const { nodes: metrics, hosts } = await pool.collect();
    const originBytes = new Map<number, number>();
    for (const i of spec.nodes) originBytes.set(i, snapshotBytes.get(agentOriginHost(i)) ?? 0);
    const peerPrefix = new Map<number, string | undefined>();
    for (const [i, n] of pool.nodes) peerPrefix.set(i, n.peerPrefix);
    const urls = [...pool.nodes.values()].map((n) => n.url);
    return {
      kind: spec.kind, nodes: spec.nodes, done, failed, churned, attempts, metrics, originBytes, originTotalBytes,
      wallSeconds, cut: cut && done.size + failed.size + churned.size < expected.size, hosts, peerPrefix, urls, agentsStartSeconds,
    };
  } finally {
    for (const t of timers) clearTimeout(t);
    await pool.close();
    spec.proxy.dropConnections();
  }
}
