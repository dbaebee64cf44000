/**
 * The rollout simulation: builds 1 seeder + N agents (each with one SwarmPeer per layer), the tracker and the
 * network, then runs the event loop in virtual time until every agent has the whole image verified (or the time
 * limit passes). Deterministic for a seed: every random choice comes from seeded RNGs, every table iterates in
 * insertion order, and same-time events run in scheduling order.
 *
 * The loop interleaves two agendas: discrete events (messages, ticks, announces, churn) and flow completions from
 * the network's fluid model, always taking the earlier one (flows first on a tie).
 */
import { schedulerConfig, type SchedulerConfig } from '../../agent/swarm/scheduler/config.ts';
import { seededRng } from '../../agent/swarm/scheduler/types.ts';
import { SEEDER_ENGINE_DEFAULTS } from '../../agent/seeder/swarm-seeding.ts';
import { DEFAULT_PIECE_POLICY, pieceCount, pieceLengthFor, type PiecePolicy } from '../../shared/swarm/metainfo.ts';
import { fluidBound } from '../lib/rollout-results.ts';
import { EventQueue } from './event-queue.ts';
import { Network, netNode } from './network.ts';
import type { SimOptions } from './options.ts';
import { SimTracker } from './sim-tracker.ts';
import { SimHost, SwarmPeer, type LayerShape, type Link, type SimCounters, type World } from './sim-node.ts';

export interface SimProgress {
  readonly virtualSeconds: number;
  readonly completed: number;
  readonly nodes: number;
  readonly events: number;
  /** Wall seconds since the simulation started. */
  readonly wallSeconds: number;
}

export interface SimRun {
  readonly options: SimOptions;
  readonly layers: readonly LayerShape[];
  readonly imageBytes: number;
  readonly boundSeconds: number;
  readonly seeder: SimHost;
  readonly hosts: readonly SimHost[];
  /** Virtual seconds when the loop stopped. */
  readonly endSeconds: number;
  /** False when the time limit stopped the run before every node completed. */
  readonly finished: boolean;
  readonly wallSeconds: number;
  /** Discrete events + flow completions processed. */
  readonly events: number;
  readonly counters: SimCounters;
  readonly flowsRetimed: number;
  readonly trackerAnnounces: number;
  readonly trackerRefused: Record<string, number>;
  /** Per-layer scheduler totals over all agents: wasted (duplicate) pieces, peak connections. */
  readonly wastedPieces: number;
  readonly schedulerConfig: SchedulerConfig;
  readonly seederSchedulerConfig: SchedulerConfig;
  /** Mean link use of downloading nodes (0..1 of capacity), sampled every 100 ms of virtual time. */
  readonly linkUse: Record<string, number>;
  readonly piecePolicy: PiecePolicy;
}

export function layerShapes(layers: readonly number[], policy: PiecePolicy = DEFAULT_PIECE_POLICY): LayerShape[] {
  return layers.map((size, index) => {
    const pieceLength = pieceLengthFor(size, policy);
    return { index, digest: `sha256:${index.toString(16).padStart(64, '0')}`, size, pieceLength, pieceCount: pieceCount(size, pieceLength) };
  });
}

/** Pick `count` distinct indices of 0..n-1 with `rng`. */
function pick(n: number, count: number, rng: () => number): Set<number> {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < Math.min(count, n); i++) {
    const j = i + Math.floor(rng() * (n - i));
    [all[i], all[j]] = [all[j] as number, all[i] as number];
  }
  return new Set(all.slice(0, Math.min(count, n)));
}

export function simulate(o: SimOptions, onProgress?: (p: SimProgress) => void): SimRun {
  const wallStart = performance.now();
  const config = schedulerConfig(o.scheduler);
  const seederConfig = schedulerConfig({ ...o.scheduler, ...SEEDER_ENGINE_DEFAULTS.scheduler, ...o.seederScheduler });
  const layers = layerShapes(o.layers, o.pieceBytes === undefined ? DEFAULT_PIECE_POLICY : { ...DEFAULT_PIECE_POLICY, minPieceLength: o.pieceBytes, maxPieceLength: o.pieceBytes });
  const imageBytes = o.layers.reduce((a, b) => a + b, 0);
  const boundSeconds = fluidBound(imageBytes, o.nodes, o.seederRate, o.nodeRate);
  const maxMs = (o.maxSeconds > 0 ? o.maxSeconds : 30 * boundSeconds + o.staggerMs / 1000 + 120) * 1000;
  const rng = seededRng(o.seed);
  const r = (): number => rng.next();
  const trackerRng = seededRng(o.seed ^ 0x5eed7ac4);

  let now = 0;
  const clock = { now: (): number => now };
  const queue = new EventQueue();
  const net = new Network();
  const tracker = new SimTracker({
    now: () => now, rng: () => trackerRng.next(), handoutSize: o.handoutSize, peerTtlMs: o.peerTtlMs, maxPeersPerSwarm: o.maxPeersPerSwarm,
  });
  const counters: SimCounters = { schedulerEvents: 0, commands: 0, closes: {}, badPieces: 0, abortedFlowBytes: 0 };
  const peers = layers.map(() => new Map<string, SwarmPeer>());
  const links = layers.map(() => new Map<string, Link>());
  let completed = 0;
  let wasted = 0;

  const world: World = {
    clock, queue, net, tracker, latencyMs: o.latencyMs, connectMs: o.connectMs, linkModel: o.linkModel, peers, links, counters,
    layerComplete(peer) {
      const host = peer.host;
      if (host.kind === 'seeder' || host.layerDoneAt[peer.layer.index] !== undefined) return;
      host.layerDoneAt[peer.layer.index] = now;
      if (host.completeAt === undefined && host.layerDoneAt.every((t) => t !== undefined)) {
        host.completeAt = now;
        completed++;
      }
    },
  };

  const slow = pick(o.nodes, Math.round(o.slowFraction * o.nodes), r);
  const corrupt = pick(o.nodes, Math.round(o.corruptFraction * o.nodes), r);
  const churn = pick(o.nodes, Math.round(o.churnFraction * o.nodes), r);
  const seeder = new SimHost({ index: 0, kind: 'seeder', net: netNode(o.seederRate, o.seederRate), corrupt: false, slow: false, startAt: 0, layers: layers.length });
  const hosts: SimHost[] = [];
  for (let i = 0; i < o.nodes; i++) {
    const rate = slow.has(i) ? o.nodeRate * o.slowFactor : o.nodeRate;
    const startAt = o.staggerMs > 0 ? r() * o.staggerMs : 0;
    hosts.push(new SimHost({ index: i, kind: 'node', net: netNode(rate, rate), corrupt: corrupt.has(i), slow: slow.has(i), startAt, layers: layers.length }));
  }

  const seedOf = (host: SimHost, layer: number): number => (Math.imul(o.seed + 1, 0x9e3779b1) ^ Math.imul(host.index + 1, 0x85ebca6b) ^ Math.imul(layer + 1 + host.generation * 97, 0xc2b2ae35) ^ (host.kind === 'seeder' ? 0x7f4a7c15 : 0)) >>> 0;

  const tick = (host: SimHost, generation: number): void => {
    if (!host.online || host.generation !== generation) return;
    for (const peer of host.peers) peer.handle({ type: 'tick' });
    queue.at(now + o.tickMs, () => tick(host, generation));
  };

  const start = (host: SimHost): void => {
    host.online = true;
    host.peers = [];
    for (const layer of layers) {
      if (host.layerDoneAt[layer.index] !== undefined) continue;
      const peer = new SwarmPeer(world, host, layer, host.kind === 'seeder' ? seederConfig : config, seedOf(host, layer.index));
      peers[layer.index]?.set(peer.id, peer);
      host.peers.push(peer);
    }
    tick(host, host.generation);
  };

  const leave = (host: SimHost): void => {
    if (!host.online) return;
    host.online = false;
    for (const peer of host.peers) {
      wasted += peer.scheduler.stats().wastedPieces;
      peer.leave();
    }
    host.peers = [];
    if (host.completeAt !== undefined) return; // it finished and went away for good
    host.generation++;
    queue.at(now + o.churnDowntimeMs, () => start(host));
  };

  // Link-use sampler (diagnostics): every 100 ms of virtual time, over nodes still downloading.
  const use = { active: 0, inflight: 0, queued: 0, connected: 0, samples: 0, downUse: 0, upUse: 0, idleDown: 0, inFlows: 0, outFlows: 0, seederUse: 0, seederSamples: 0 };
  const sample = (): void => {
    let n = 0;
    for (const host of hosts) {
      if (!host.online || host.completeAt !== undefined) continue;
      const { net: link } = host;
      // Link model 'limiter': each limiter moves one frame at a time at full rate (busy until upFreeAt / downFreeAt).
      const limiter = o.linkModel === 'limiter';
      const down = limiter ? (host.downFreeAt > now ? link.down : 0) : link.inFlows.reduce((a, f) => a + f.rate, 0);
      const up = limiter ? (host.upFreeAt > now ? link.up : 0) : link.outFlows.reduce((a, f) => a + f.rate, 0);
      const inFlows = limiter ? (host.downFreeAt > now ? 1 : 0) : link.inFlows.length;
      use.downUse += down / link.down;
      use.upUse += up / link.up;
      if (inFlows === 0) use.idleDown++;
      use.inFlows += inFlows;
      for (const peer of host.peers) {
        const st = peer.scheduler.stats();
        use.inflight += st.requestsInFlight;
        use.queued += st.uploadsQueued;
        use.active += st.uploadsActive;
        use.connected += st.connected;
      }
      use.outFlows += limiter ? (host.upFreeAt > now ? 1 : 0) : link.outFlows.length;
      n++;
    }
    use.samples += n;
    if (n > 0) {
      const up = o.linkModel === 'limiter' ? (seeder.upFreeAt > now ? seeder.net.up : 0) : seeder.net.outFlows.reduce((a, f) => a + f.rate, 0);
      use.seederUse += up / seeder.net.up;
      use.seederSamples++;
      queue.at(now + 100, sample);
    }
  };
  queue.at(100, sample);

  queue.at(0, () => start(seeder));
  for (const host of hosts) {
    queue.at(host.startAt, () => start(host));
    if (churn.has(host.index)) queue.at(host.startAt + (0.1 + 0.6 * r()) * boundSeconds * 1000, () => leave(host));
  }

  // Progress: at every virtual second and every 2^16 events (a virtual second can take a while at N = 10,000).
  let nextReport = 0;
  const reportEvery = 1000;
  let events = 0;
  let finished = false;
  for (;;) {
    if (completed === o.nodes) {
      finished = true;
      break;
    }
    const tF = net.peekTime();
    const tE = queue.peekTime();
    const t = tF <= tE ? tF : tE;
    if (t === Number.POSITIVE_INFINITY || t > maxMs) break;
    now = t;
    events++;
    if (tF <= tE) net.completeNext();
    else queue.popRun()();
    if (onProgress !== undefined && (now >= nextReport || (events & 0xffff) === 0)) {
      if (now >= nextReport) nextReport = now + reportEvery;
      onProgress({ virtualSeconds: now / 1000, completed, nodes: o.nodes, events, wallSeconds: (performance.now() - wallStart) / 1000 });
    }
  }
  for (const host of hosts) for (const peer of host.peers) wasted += peer.scheduler.stats().wastedPieces;
  return {
    options: o, layers, imageBytes, boundSeconds, seeder, hosts, endSeconds: now / 1000, finished, wallSeconds: (performance.now() - wallStart) / 1000, events, counters,
    linkUse: {
      nodeDownUse: use.downUse / Math.max(1, use.samples), nodeUpUse: use.upUse / Math.max(1, use.samples),
      nodeDownIdleFraction: use.idleDown / Math.max(1, use.samples), meanInFlows: use.inFlows / Math.max(1, use.samples),
      meanOutFlows: use.outFlows / Math.max(1, use.samples), meanRequestsInFlight: use.inflight / Math.max(1, use.samples),
      meanUploadsQueued: use.queued / Math.max(1, use.samples), meanUploadsActive: use.active / Math.max(1, use.samples), meanConnected: use.connected / Math.max(1, use.samples), seederUpUse: use.seederUse / Math.max(1, use.seederSamples),
    },
    flowsRetimed: net.retimed, trackerAnnounces: tracker.announces, trackerRefused: Object.fromEntries(tracker.refused), wastedPieces: wasted,
    schedulerConfig: config, seederSchedulerConfig: seederConfig, piecePolicy: DEFAULT_PIECE_POLICY,
  };
}
