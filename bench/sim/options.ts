/** Options of `layerswarm bench simulate` (bench/simulate.ts): parsing, defaults, usage text. */
import { parseArgs } from 'node:util';
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerConfig } from '../../agent/swarm/scheduler/config.ts';
import { DEFAULT_ENGINE_CONFIG } from '../../agent/swarm/engine/config.ts';
import { parseBytes } from '../../shared/config/units.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';

export interface SimOptions {
  readonly nodes: number;
  /** Layer sizes in bytes (each its own blob and swarm). */
  readonly layers: readonly number[];
  /** B: every node's up and down link, bytes/s. */
  readonly nodeRate: number;
  /** B_s: the seeder's uplink (and downlink), bytes/s. */
  readonly seederRate: number;
  /** One-way latency of every message, ms. */
  readonly latencyMs: number;
  /**
   * How messages share links. 'fair': piece bytes are max-min fair fluid flows (a NIC with TCP flows); other messages
   * take one latency. 'limiter': what the product's bandwidth limiter (LimitedTransport) does, as in the rollout
   * emulation: every message, piece or not, is a frame; each node's upload limiter lets frames out one at a time
   * (FIFO at the uplink rate; the send completes when the frame is handed to the socket), the frames wait in socket
   * buffers, and each node's download limiter reads whole frames first come first served over its connections (each
   * connection's in order). A request thus waits behind the pieces its sender uploads and its receiver reads.
   */
  readonly linkModel: 'fair' | 'limiter';
  /** Fixed piece length in bytes for every layer (as `bench rollout --piece-kib`); undefined: the product's policy. */
  readonly pieceBytes: number | undefined;
  /** TCP connection setup before the handshake, ms (default 2 × latency: one round trip). */
  readonly connectMs: number;
  /** Node start times are spread uniformly over [0, staggerMs]. */
  readonly staggerMs: number;
  readonly seed: number;
  readonly slowFraction: number;
  /** Slow nodes' links are nodeRate × slowFactor. */
  readonly slowFactor: number;
  readonly corruptFraction: number;
  readonly churnFraction: number;
  /** A churning node is away this long, then restarts its unfinished layers from scratch with new peer ids. */
  readonly churnDowntimeMs: number;
  readonly tickMs: number;
  /** Scheduler overrides (validated by schedulerConfig). */
  readonly scheduler: Partial<SchedulerConfig>;
  /** Overrides for the seeder only, over the product's seeder defaults (agent/seeder/swarm-seeding.ts). */
  readonly seederScheduler: Partial<SchedulerConfig>;
  readonly handoutSize: number;
  readonly maxPeersPerSwarm: number;
  readonly peerTtlMs: number;
  /** Give up after this much virtual time (0: automatic, 30 × the bound + stagger + 2 min). */
  readonly maxSeconds: number;
  readonly outDir: string;
  readonly quiet: boolean;
}

export interface ProjectOptions {
  readonly nodes: readonly number[];
  /** Image sizes (bytes); each split into layers in the proportions of --layers. */
  readonly imageSizes: readonly number[];
  /** The sweep's points in order: nodes × imageSizes, or the explicit --project-points list. */
  readonly points: ReadonlyArray<{ readonly nodes: number; readonly imageBytes: number }>;
}

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export const DEFAULT_SIM_OPTIONS: SimOptions = {
  nodes: 500,
  layers: [512 * MiB, 256 * MiB, 256 * MiB],
  nodeRate: 125e6,
  seederRate: 125e6,
  latencyMs: 0.5,
  linkModel: 'fair',
  pieceBytes: undefined,
  connectMs: 1,
  staggerMs: 0,
  seed: 1,
  slowFraction: 0,
  slowFactor: 0.25,
  corruptFraction: 0,
  churnFraction: 0,
  churnDowntimeMs: 5000,
  tickMs: DEFAULT_ENGINE_CONFIG.tickMs,
  scheduler: {},
  seederScheduler: {},
  handoutSize: DEFAULT_TRACKER_CONFIG.handoutSize,
  maxPeersPerSwarm: DEFAULT_TRACKER_CONFIG.maxPeersPerSwarm,
  peerTtlMs: DEFAULT_TRACKER_CONFIG.peerTtl,
  maxSeconds: 0,
  outDir: 'bench/results/simulate',
  quiet: false,
};

export const USAGE = `Usage: layerswarm bench simulate [options]      (npm run bench:simulate -- [options])

Discrete-event rollout simulation: 1 seeder + N agents running the agent's own swarm Scheduler, the tracker's
handout policy and peer store and the piece-length policy over a virtual network (per-node up/down links shared
fairly between concurrent piece flows, per-message latency). Writes DIR/results.json (schema: bench/README.md),
DIR/cdf.svg, and prints a summary against the fluid bound T* = max(S/B_s, S/B, N·S/(B_s + N·B)).

Options:
  --nodes N               agents (default 500)
  --layers A,B,...        layer sizes, e.g. 64MiB,32MiB (default 512MiB,256MiB,256MiB); each is its own swarm
  --node-rate R           B: every agent's up and down link, bytes/s (e.g. 125e6, 100MiB; default 125e6 = 1 Gbit/s)
  --seeder-rate R         B_s: the seeder's link (default 125e6)
  --piece-kib N           fixed piece length for every layer, KiB (power of two; default: the product's piece policy)
  --latency-ms X          one-way message latency (default 0.5)
  --link-model M          fair (default: max-min fair flows, as TCP over a NIC) or limiter (the product's
                          bandwidth limiter as in the rollout emulation: every message a frame, FIFO at each uplink,
                          buffered, read FIFO at each downlink, in order per connection; use it to compare with
                          bench rollout)
  --connect-ms X          TCP connect before the handshake (default 2 × latency)
  --stagger-ms X          node start times spread uniformly over [0, X] (default 0)
  --seed N                RNG seed (default 1)
  --slow-fraction F       fraction of agents with slower links (default 0)
  --slow-factor F         their links are B × F (default 0.25)
  --corrupt-fraction F    fraction of agents that serve corrupt pieces (default 0)
  --churn-fraction F      fraction of agents that leave mid-download (default 0)
  --churn-downtime-ms X   how long they are away before restarting (default 5000)
  --tick-ms X             scheduler tick (default: the engine's ${DEFAULT_ENGINE_CONFIG.tickMs})
  --pipeline-depth N      scheduler overrides (defaults: the product's) ...
  --max-connections N
  --max-upload-slots N
  --max-upload-queue N
  --endgame-threshold N
  --announce-interval-ms X
  --scheduler K=V,...     any other scheduler knob by its config name (e.g. maxOutboundConnections=8,minAnnounceIntervalMs=500)
  --seeder-scheduler K=V,... knobs for the seeder only, over the product's seeder defaults
  --seed-fresh-first BOOL
  --handout-size N        tracker peers per announce (default ${DEFAULT_TRACKER_CONFIG.handoutSize})
  --max-peers-per-swarm N tracker limit (default ${DEFAULT_TRACKER_CONFIG.maxPeersPerSwarm}, the tracker's default; new peers beyond it are answered but not recorded)
  --max-seconds X         stop after X virtual seconds (default: 30 × bound + stagger + 120)
  --out DIR               results directory (default bench/results/simulate; --project: one subdirectory per point)
  --project               sweep N = 1000,5000,10000 × image 1,4,10 GiB (layers in the --layers proportions);
                          writes DIR/<N>-<size>/results.json and DIR/summary.{md,json}
  --project-nodes LIST    N values of the sweep (default 1000,5000,10000)
  --project-sizes LIST    image sizes of the sweep (default 1GiB,4GiB,10GiB)
  --project-points LIST   explicit points instead of the grid, NxSIZE,... The full grid is ~300 M events (~6,000 per
                          node at 1 GiB, more at 10 GiB): over an hour at the ~70 k events/s of a shared 2-core
                          machine. Reduced grid: 1000x1GiB,1000x4GiB,1000x10GiB,5000x1GiB (~50 M events), with
                          N = 10,000 × 1 GiB as a run of its own (~60 M events)
  --quiet                 no progress lines
  -h, --help`;

export type ParsedArgs = { help: true } | { help: false; options: SimOptions; project: ProjectOptions | undefined; command: string };

/** Parse argv; throws Error with a message on bad input. */
export function parseSimArgs(argv: readonly string[]): ParsedArgs {
  const str = { type: 'string' } as const;
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      nodes: str, layers: str, 'piece-kib': str, 'node-rate': str, 'seeder-rate': str, 'latency-ms': str, 'link-model': str, 'connect-ms': str, 'stagger-ms': str, seed: str,
      'slow-fraction': str, 'slow-factor': str, 'corrupt-fraction': str, 'churn-fraction': str, 'churn-downtime-ms': str, 'tick-ms': str,
      'pipeline-depth': str, 'max-connections': str, 'max-upload-slots': str, 'max-upload-queue': str, 'endgame-threshold': str, 'announce-interval-ms': str, scheduler: str, 'seeder-scheduler': str,
      'seed-fresh-first': str, 'handout-size': str, 'max-peers-per-swarm': str, 'max-seconds': str, out: str, project: { type: 'boolean' },
      'project-nodes': str, 'project-sizes': str, 'project-points': str, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return { help: true };
  const d = DEFAULT_SIM_OPTIONS;
  const num = (flag: string, min: number, max = Number.POSITIVE_INFINITY, integer = false): number | undefined => {
    const raw = (values as Record<string, unknown>)[flag];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isSafeInteger(n))) {
      throw new Error(`--${flag}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(raw)}`);
    }
    return n;
  };
  const rate = (flag: string): number | undefined => {
    const raw = (values as Record<string, unknown>)[flag];
    if (raw === undefined) return undefined;
    const n = /^\s*[\d.]+e\d+\s*$/i.test(String(raw)) ? Number(raw) : parseBytes(String(raw));
    if (n === undefined || !(n > 0)) throw new Error(`--${flag}: expected bytes/s such as 125e6 or 100MiB, got ${JSON.stringify(raw)}`);
    return n;
  };
  const sizes = (flag: string, raw: string): number[] =>
    raw.split(',').map((s) => {
      const n = parseBytes(s.trim());
      if (n === undefined || n < 1) throw new Error(`--${flag}: expected sizes such as 64MiB,32MiB, got ${JSON.stringify(raw)}`);
      return n;
    });
  const scheduler: Partial<Record<keyof SchedulerConfig, number | boolean>> = {};
  const intOverride = (flag: string, key: keyof SchedulerConfig, min: number): void => {
    const v = num(flag, min, Number.POSITIVE_INFINITY, true);
    if (v !== undefined) scheduler[key] = v;
  };
  intOverride('pipeline-depth', 'pipelineDepth', 1);
  intOverride('max-connections', 'maxConnections', 1);
  intOverride('max-upload-slots', 'maxUploadSlots', 0);
  intOverride('max-upload-queue', 'maxUploadQueue', 0);
  intOverride('endgame-threshold', 'endgameThreshold', 0);
  intOverride('announce-interval-ms', 'announceIntervalMs', 1);
  const knobs = (flag: string, raw: string | undefined, into: Partial<Record<keyof SchedulerConfig, number | boolean>>): void => {
    for (const pair of (raw ?? '').split(',').filter((x) => x.trim() !== '')) {
      const [key, text] = pair.split('=').map((x) => x.trim());
      if (key === undefined || text === undefined || !(key in DEFAULT_SCHEDULER_CONFIG)) throw new Error(`--${flag}: unknown knob in ${JSON.stringify(pair)}; knobs: ${Object.keys(DEFAULT_SCHEDULER_CONFIG).join(', ')}`);
      const value = text === 'true' ? true : text === 'false' ? false : Number(text);
      if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`--${flag}: ${key} needs a number, got ${JSON.stringify(text)}`);
      into[key as keyof SchedulerConfig] = value;
    }
  };
  knobs('scheduler', values.scheduler, scheduler);
  const seederScheduler: Partial<Record<keyof SchedulerConfig, number | boolean>> = {};
  knobs('seeder-scheduler', values['seeder-scheduler'], seederScheduler);
  if (values['seed-fresh-first'] !== undefined) {
    if (!['true', 'false'].includes(values['seed-fresh-first'])) throw new Error('--seed-fresh-first: true or false');
    scheduler.seedFreshFirst = values['seed-fresh-first'] === 'true';
  }
  const latencyMs = num('latency-ms', 0) ?? d.latencyMs;
  const linkModel = values['link-model'] ?? d.linkModel;
  if (linkModel !== 'fair' && linkModel !== 'limiter') throw new Error(`--link-model: fair or limiter, got ${JSON.stringify(linkModel)}`);
  const options: SimOptions = {
    nodes: num('nodes', 1, 1e6, true) ?? d.nodes,
    pieceBytes: pieceBytesOf(num('piece-kib', 16, 64 * 1024, true)),
    layers: values.layers === undefined ? d.layers : sizes('layers', values.layers),
    nodeRate: rate('node-rate') ?? d.nodeRate,
    seederRate: rate('seeder-rate') ?? d.seederRate,
    latencyMs,
    linkModel,
    connectMs: num('connect-ms', 0) ?? 2 * latencyMs,
    staggerMs: num('stagger-ms', 0) ?? d.staggerMs,
    seed: num('seed', 0, 2 ** 32 - 1, true) ?? d.seed,
    slowFraction: num('slow-fraction', 0, 1) ?? d.slowFraction,
    slowFactor: num('slow-factor', 1e-6, 1) ?? d.slowFactor,
    corruptFraction: num('corrupt-fraction', 0, 1) ?? d.corruptFraction,
    churnFraction: num('churn-fraction', 0, 1) ?? d.churnFraction,
    churnDowntimeMs: num('churn-downtime-ms', 0) ?? d.churnDowntimeMs,
    tickMs: num('tick-ms', 1, 60_000) ?? d.tickMs,
    scheduler: scheduler as Partial<SchedulerConfig>,
    seederScheduler: seederScheduler as Partial<SchedulerConfig>,
    handoutSize: num('handout-size', 1, 10_000, true) ?? d.handoutSize,
    maxPeersPerSwarm: num('max-peers-per-swarm', 2, 1e7, true) ?? d.maxPeersPerSwarm,
    peerTtlMs: d.peerTtlMs,
    maxSeconds: num('max-seconds', 0) ?? d.maxSeconds,
    outDir: values.out ?? d.outDir,
    quiet: values.quiet === true,
  };
  const project = values.project === true ? projectOf(values['project-nodes'], values['project-sizes'], values['project-points'], sizes) : undefined;
  return { help: false, options, project, command: ['layerswarm', 'bench', 'simulate', ...argv].join(' ') };
}

/** Split `total` bytes into layers in the proportions of `layers` (the last takes the rounding). */
export function scaleLayers(layers: readonly number[], total: number): number[] {
  const sum = layers.reduce((a, b) => a + b, 0);
  const out = layers.map((l) => Math.max(1, Math.floor((l / sum) * total)));
  out[out.length - 1] = Math.max(1, total - out.slice(0, -1).reduce((a, b) => a + b, 0));
  return out;
}

/** The effective scheduler config values worth recording (defaults overlaid with the overrides). */
export function schedulerSummary(overrides: Partial<SchedulerConfig>): SchedulerConfig {
  return { ...DEFAULT_SCHEDULER_CONFIG, ...overrides };
}

/** --piece-kib → bytes; a power of two (the piece policy only makes powers of two). */
function pieceBytesOf(kib: number | undefined): number | undefined {
  if (kib === undefined) return undefined;
  if ((kib & (kib - 1)) !== 0) throw new Error(`--piece-kib: ${kib} is not a power of two`);
  return kib * 1024;
}

/** --project: the grid of --project-nodes × --project-sizes, or the explicit --project-points (NxSIZE,...). */
function projectOf(nodesRaw: string | undefined, sizesRaw: string | undefined, pointsRaw: string | undefined, sizes: (flag: string, raw: string) => number[]): ProjectOptions {
  const count = (flag: string, s: string): number => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${flag}: expected integers, got ${JSON.stringify(s)}`);
    return n;
  };
  const nodes = (nodesRaw ?? '1000,5000,10000').split(',').map((s) => count('project-nodes', s.trim()));
  const imageSizes = sizesRaw === undefined ? [GiB, 4 * GiB, 10 * GiB] : sizes('project-sizes', sizesRaw);
  if (pointsRaw === undefined) return { nodes, imageSizes, points: nodes.flatMap((n) => imageSizes.map((imageBytes) => ({ nodes: n, imageBytes }))) };
  const points = pointsRaw.split(',').map((p) => {
    const m = /^\s*(\d+)\s*[x×]\s*(\S+)\s*$/.exec(p);
    if (m === null) throw new Error(`--project-points: expected NxSIZE such as 1000x4GiB, got ${JSON.stringify(p)}`);
    return { nodes: count('project-points', m[1] as string), imageBytes: sizes('project-points', m[2] as string)[0] as number };
  });
  return { nodes: [...new Set(points.map((p) => p.nodes))], imageSizes: [...new Set(points.map((p) => p.imageBytes))], points };
}
