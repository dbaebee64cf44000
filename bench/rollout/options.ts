/**
 * Options of `layerswarm bench rollout` (bench/rollout.ts): parsing, defaults and the usage text.
 *
 * Defaults are sized for a 2-core machine (see bench/README.md "Rollout"): N = 500 agents at B = 32 KiB/s each
 * (N·B = 15.6 MiB/s of piece traffic; at 64 KiB/s the 500 agents' host processes needed 1.5 of the 2 cores and
 * event-loop lag slowed every piece, at 128 KiB/s more than 2 cores), an 8 MiB image (2 layers of 4 MiB, 32 KiB
 * pieces: see --piece-kib), the seeder at B_s = 32·B = 1 MiB/s. T* = max(S/B_s, S/B, N·S/(B_s+N·B)) = 256 s, long
 * compared with the swarm's start-up (announce interval 5 s, metainfo, connections). A piece takes 1 s on a full
 * link; the scheduler's time constants and the no-peer watchdog follow the observed piece latency, the 30 s stall
 * timeout stays well above it.
 */
import { parseArgs } from 'node:util';

const MiB = 2 ** 20;
const KiB = 1024;

export type BaselineKind = 'full' | 'capped' | 'off';

export interface RolloutOptions {
  nodes: number;
  /** Host processes the agents are spread over. */
  hosts: number;
  /** Layer sizes in bytes (each layer's tar holds one random file of this size; gzip adds a little). */
  layers: number[];
  /** The seeder's smallest piece (its --min-piece-length): pieces per layer as a larger real layer would have. */
  pieceBytes: number;
  /** B: upload and download limit of every agent, bytes/s. */
  nodeRate: number;
  /** B_s: upload limit of the seeder, bytes/s. */
  seedRate: number;
  /** Origin link in the swarm run (bytes/s); undefined: unlimited. The baseline always limits it to B_s. */
  originRate: number | undefined;
  /** Node starts spread evenly over this many ms (0: all at once). */
  staggerMs: number;
  churnFraction: number;
  /** When churned agents are closed, seconds after the start (default: half of T*). */
  churnAtSeconds: number | undefined;
  slowFraction: number;
  slowFactor: number;
  corruptFraction: number;
  baseline: BaselineKind;
  baselineMaxSeconds: number;
  /** Swarm run deadline (s): nodes not done by then count as never completed. */
  timeoutSeconds: number;
  /** Image seed (same seed: same digests). */
  seed: string;
  outDir: string | undefined;
  /** Keep the work dir (agents' data) after the run. */
  keep: boolean;
  /** Extra agent flags (e.g. --swarm-stall-timeout 60s), given as one string. */
  agentArgs: string[];
  /** Progress line interval (ms). */
  progressMs: number;
}

export const USAGE = `Usage: layerswarm bench rollout [options]      (npm run bench:rollout -- [options])

Emulated N-node rollout with real parts: a distribution registry as origin (behind a counting, optionally rate-limited
proxy), the real tracker and seeder, and N real agents (startAgent) spread over several host processes, every agent
with upload/download limit B. All agents pull one generated image through their registry endpoints; every blob is
verified by sha256 at every node. Then the same agents without the swarm (plain mirrors, origin limited to B_s) as
the baseline. Writes DIR/results.json (bench/lib/rollout-results.ts) and DIR/cdf.svg.

Options:
  --nodes N                 agents (default 500)
  --hosts H                 host processes (default ceil(N/100), at most 8)
  --layers LIST             layer sizes in MiB (default 4,4)
  --piece-kib N             the seeder's --min-piece-length in KiB, a power of two (default 32: a piece takes
                            1 s at B, short against the agent's 30 s stall timeout at this scaled-down
                            bandwidth; 128 pieces per 4 MiB layer)
  --node-kibps X            B: every agent's upload and download limit, KiB/s (default 32; N·B = 15.6 MiB/s at
                            N = 500: what 2 cores move without the event loop lagging, with every byte hashed,
                            stored and served several times)
  --seed-mibps X            B_s: the seeder's upload limit, MiB/s (default 1 = 32·B)
  --origin-mibps X          origin link in the swarm run, MiB/s (default unlimited; the baseline uses B_s)
  --stagger-ms MS           spread node starts evenly over MS (default 0: all at once)
  --churn-fraction F        close this fraction of agents mid-run (excluded from completion stats, reported)
  --churn-at-s S            when to close them (default T*/2)
  --slow-fraction F         this fraction of agents gets B / slow-factor
  --slow-factor X           (default 4)
  --corrupt-fraction F      this fraction of agents serves corrupt pieces (LAYERSWARM_TEST_CORRUPT_UPLOADS in their
                            own host process)
  --baseline KIND           full | capped | off (default capped: run at most --baseline-max-seconds, project the rest)
  --baseline-max-seconds S  (default 120)
  --timeout-s S             swarm run deadline (default max(600, 4·T*))
  --seed STR                image seed (default layerswarm-rollout)
  --agent-args="FLAGS"      extra flags for every agent (e.g. --agent-args="--swarm-no-peer-timeout 60s")
  --out DIR                 results directory (default bench/results/rollout-<time>)
  --progress-ms MS          progress line interval (default 1000 on a TTY, 10000 otherwise)
  --keep                    keep the work dir
  -h, --help`;

function positive(name: string, v: string | undefined, fallback: number, opts: { integer?: boolean; zero?: boolean } = {}): number {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !opts.zero) || (opts.integer === true && !Number.isSafeInteger(n))) {
    throw new Error(`--${name} must be a ${opts.zero ? 'non-negative' : 'positive'} ${opts.integer ? 'integer' : 'number'}, got ${v}`);
  }
  return n;
}

function fraction(name: string, v: string | undefined): number {
  const n = v === undefined ? 0 : Number(v);
  if (!(n >= 0 && n < 1)) throw new Error(`--${name} must be in [0, 1), got ${v}`);
  return n;
}

/** Parsed options, or undefined for --help. Throws on a bad option. */
export function parseRolloutOptions(argv: readonly string[], isTty: boolean): RolloutOptions | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      nodes: { type: 'string' }, hosts: { type: 'string' }, layers: { type: 'string' }, 'node-kibps': { type: 'string' }, 'piece-kib': { type: 'string' }, 'seed-mibps': { type: 'string' },
      'origin-mibps': { type: 'string' }, 'stagger-ms': { type: 'string' }, 'churn-fraction': { type: 'string' }, 'churn-at-s': { type: 'string' },
      'slow-fraction': { type: 'string' }, 'slow-factor': { type: 'string' }, 'corrupt-fraction': { type: 'string' }, baseline: { type: 'string' },
      'baseline-max-seconds': { type: 'string' }, 'timeout-s': { type: 'string' }, seed: { type: 'string' }, 'agent-args': { type: 'string' },
      out: { type: 'string' }, 'progress-ms': { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const nodes = positive('nodes', values.nodes, 500, { integer: true });
  const hosts = Math.min(nodes, positive('hosts', values.hosts, Math.min(8, Math.ceil(nodes / 100)), { integer: true }));
  const layers = (values.layers ?? '4,4').split(',').map((s) => Math.round(positive('layers', s.trim(), 1) * MiB));
  const baseline = values.baseline ?? 'capped';
  if (baseline !== 'full' && baseline !== 'capped' && baseline !== 'off') throw new Error(`--baseline: full, capped or off, got ${baseline}`);
  const churnFraction = fraction('churn-fraction', values['churn-fraction']);
  const slowFraction = fraction('slow-fraction', values['slow-fraction']);
  const corruptFraction = fraction('corrupt-fraction', values['corrupt-fraction']);
  if (churnFraction + slowFraction + corruptFraction >= 1) throw new Error('churn + slow + corrupt fractions must stay below 1');
  const pieceBytes = positive('piece-kib', values['piece-kib'], 32, { integer: true }) * KiB;
  if ((pieceBytes & (pieceBytes - 1)) !== 0 || pieceBytes < 16 * KiB) throw new Error(`--piece-kib must be a power of two ≥ 16, got ${values['piece-kib']}`);
  return {
    nodes,
    hosts,
    layers,
    pieceBytes,
    nodeRate: positive('node-kibps', values['node-kibps'], 32) * KiB,
    seedRate: positive('seed-mibps', values['seed-mibps'], 1) * MiB,
    originRate: values['origin-mibps'] === undefined ? undefined : positive('origin-mibps', values['origin-mibps'], 1) * MiB,
    staggerMs: positive('stagger-ms', values['stagger-ms'], 0, { zero: true }),
    churnFraction,
    churnAtSeconds: values['churn-at-s'] === undefined ? undefined : positive('churn-at-s', values['churn-at-s'], 1),
    slowFraction,
    slowFactor: positive('slow-factor', values['slow-factor'], 4),
    corruptFraction,
    baseline,
    baselineMaxSeconds: positive('baseline-max-seconds', values['baseline-max-seconds'], 120),
    timeoutSeconds: values['timeout-s'] === undefined ? 0 : positive('timeout-s', values['timeout-s'], 600),
    seed: values.seed ?? 'layerswarm-rollout',
    outDir: values.out,
    keep: values.keep === true,
    agentArgs: (values['agent-args'] ?? '').split(/\s+/).filter((s) => s !== ''),
    progressMs: positive('progress-ms', values['progress-ms'], isTty ? 1000 : 10_000, { integer: true }),
  };
}

/** Which agents (by index) play which role: deterministic spread (every k-th), so each host process gets a share. */
export interface NodeRoles {
  readonly slow: ReadonlySet<number>;
  readonly corrupt: ReadonlySet<number>;
  readonly churn: ReadonlySet<number>;
}

export function assignRoles(nodes: number, o: Pick<RolloutOptions, 'slowFraction' | 'corruptFraction' | 'churnFraction'>): NodeRoles {
  const taken = new Set<number>();
  const pick = (f: number, offset: number): Set<number> => {
    const count = Math.round(f * nodes);
    const out = new Set<number>();
    if (count === 0) return out;
    const step = nodes / count;
    for (let k = 0; out.size < count && k < nodes * 2; k++) {
      let i = Math.floor((k * step + offset) % nodes);
      while (taken.has(i)) i = (i + 1) % nodes;
      taken.add(i);
      out.add(i);
    }
    return out;
  };
  const corrupt = pick(o.corruptFraction, 1);
  const slow = pick(o.slowFraction, 2);
  const churn = pick(o.churnFraction, 3);
  return { slow, corrupt, churn };
}
