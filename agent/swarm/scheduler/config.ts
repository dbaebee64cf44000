/**
 * SchedulerConfig: every policy knob of the per-blob scheduler, with documented defaults (Kraken's agent values
 * where Kraken has one). Validated once by `schedulerConfig()`; the scheduler never re-checks.
 */
import { LayerswarmError } from '../../../shared/errors.ts';

export interface SchedulerConfig {
  /** Most open connections per blob, inbound + outbound + dials in progress. Kraken: 10. @default 10 */
  readonly maxConnections: number;
  /**
   * Of maxConnections, how many we may open ourselves (dials in progress + connections we dialled); the rest stays
   * free for peers dialling us. Without this reserve every node of a fresh rollout fills its slots with its own
   * dials and refuses everyone else's (measured in the simulator: N = 200, first byte p50 5 s with a cap of 10 and
   * 25 s with 20, most dials closed 'capacity'). Less than half: when every node dials half its cap, the
   * connections exactly fill every slot, and the last nodes to start find every peer full (the N = 500 rollout
   * emulation: 143 of 1000 layer downloads gave up with no_peers). @default 4 (40% of maxConnections, rounded up,
   * when only that is overridden)
   */
  readonly maxOutboundConnections: number;
  /**
   * While downloading, announce early (not before this long after the previous announce) when no discovered peer
   * is left to dial and fewer than maxOutboundConnections are open: refused and failed dials are forgotten, and
   * waiting a full announceIntervalMs for new candidates leaves slots empty at the start of a rollout. @default 1_000
   */
  readonly minAnnounceIntervalMs: number;
  /** Piece requests in flight per peer. Kraken: 3 (agent), 5 (origin). @default 3 */
  readonly pipelineDepth: number;
  /**
   * A request not answered within max(this, 4 × the observed piece latency) is cancelled and the piece asked of
   * someone else. The latency term keeps slow links (pieces of several seconds) from cancelling pieces that are
   * arriving. Also the most a rejected piece is avoided on the rejecting peer. @default 10_000
   */
  readonly requestTimeoutMs: number;
  /** Consecutive request timeouts after which a peer is closed and kept away for `slowPeerBackoffMs`. @default 3 */
  readonly maxConsecutiveTimeouts: number;
  /** How long an unresponsive peer is not reconnected. @default 30_000 */
  readonly slowPeerBackoffMs: number;
  /** Endgame starts when this few pieces are still missing (not verified, not being verified). @default 4 */
  readonly endgameThreshold: number;
  /** In endgame, at most this many peers are asked for the same piece at once. @default 2 */
  readonly endgameMaxRequestsPerPiece: number;
  /** Pieces we send at once (sendPiece without uploadDone yet), across all peers. @default 4 */
  readonly maxUploadSlots: number;
  /**
   * Upload requests queued behind busy slots, across all peers; more are rejected (the requester backs off from us
   * for rejectBackoffMs and asks a holder that is not busy). A short queue sends requests to idle holders instead of
   * parking them behind busy ones: in the simulator (N = 500, 1 GiB at 125 MB/s) p50/p99 ÷ T* went from 1.55/1.57
   * with 64 to 1.48/1.54 with 4; at the rollout emulation's scale 1.57/1.91 → 1.43/1.87 (a queue of 0 was worse at
   * 125 MB/s: 2.05/3.00, the backoff then idles the link). @default 4
   */
  readonly maxUploadQueue: number;
  /**
   * Seeding fresh first: once complete, serve queued requests for the pieces with the fewest known copies first
   * (sent by us, or held by connected peers), and when starting a piece nobody has, reject queued requests for
   * pieces that have copies (the requesters get them from those peers). Keeps a seeder's upload on pieces the swarm
   * lacks; see uploads.ts. @default true
   */
  readonly seedFreshFirst: boolean;
  /**
   * After a peer rejects a request, ask it nothing for min(this, a quarter of the observed piece latency): with fast
   * pieces a fixed 0.5 s idled the link (simulator, 1 GiB at 125 MB/s). @default 500
   */
  readonly rejectBackoffMs: number;
  /** A peer that sent a piece failing verification is closed and not reconnected for this long. @default 300_000 */
  readonly blacklistMs: number;
  /**
   * Close a connection on which no piece moved either way for this long, when its slot could serve someone else:
   * we are seeding, or discovered peers are waiting for a free slot. @default 30_000
   */
  readonly idleTimeoutMs: number;
  /** Announce interval while downloading. Kraken: 5 s. @default 5_000 */
  readonly announceIntervalMs: number;
  /**
   * Announce interval once complete (seeding). Must stay below the tracker's peer TTL (30 s by default) or seeds
   * drop out of swarms between announces; 15 s gives two announces per TTL. @default 15_000
   */
  readonly seedAnnounceIntervalMs: number;
}

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = {
  maxConnections: 10,
  maxOutboundConnections: 4,
  minAnnounceIntervalMs: 1_000,
  pipelineDepth: 3,
  requestTimeoutMs: 10_000,
  maxConsecutiveTimeouts: 3,
  slowPeerBackoffMs: 30_000,
  endgameThreshold: 4,
  endgameMaxRequestsPerPiece: 2,
  maxUploadSlots: 4,
  maxUploadQueue: 4,
  seedFreshFirst: true,
  rejectBackoffMs: 500,
  blacklistMs: 300_000,
  idleTimeoutMs: 30_000,
  announceIntervalMs: 5_000,
  seedAnnounceIntervalMs: 15_000,
};

/** Defaults overlaid with `overrides`, validated. Throws CONFIG_INVALID naming the first bad field. */
export function schedulerConfig(overrides: Partial<SchedulerConfig> = {}): SchedulerConfig {
  const merged = { ...DEFAULT_SCHEDULER_CONFIG, ...overrides };
  // The outbound share follows an overridden cap unless it is set itself: 40% of it, at least 1.
  const config: SchedulerConfig = overrides.maxOutboundConnections === undefined && overrides.maxConnections !== undefined
    ? { ...merged, maxOutboundConnections: Math.max(1, Math.ceil((merged.maxConnections * 2) / 5)) }
    : merged;
  if (typeof config.seedFreshFirst !== 'boolean') {
    throw new LayerswarmError('CONFIG_INVALID', `scheduler seedFreshFirst must be a boolean, got ${String(config.seedFreshFirst)}`);
  }
  const atLeast = (field: Exclude<keyof SchedulerConfig, 'seedFreshFirst'>, min: number): void => {
    const value = config[field];
    if (!Number.isSafeInteger(value) || value < min) {
      throw new LayerswarmError('CONFIG_INVALID', `scheduler ${field} must be an integer ≥ ${min}, got ${String(value)}`);
    }
  };
  atLeast('maxConnections', 1);
  atLeast('maxOutboundConnections', 1);
  atLeast('minAnnounceIntervalMs', 0);
  if (config.maxOutboundConnections > config.maxConnections) {
    throw new LayerswarmError('CONFIG_INVALID', `scheduler maxOutboundConnections (${config.maxOutboundConnections}) must not exceed maxConnections (${config.maxConnections})`);
  }
  atLeast('pipelineDepth', 1);
  atLeast('requestTimeoutMs', 1);
  atLeast('maxConsecutiveTimeouts', 1);
  atLeast('slowPeerBackoffMs', 0);
  atLeast('endgameThreshold', 0);
  atLeast('endgameMaxRequestsPerPiece', 1);
  atLeast('maxUploadSlots', 0);
  atLeast('maxUploadQueue', 0);
  atLeast('rejectBackoffMs', 0);
  atLeast('blacklistMs', 0);
  atLeast('idleTimeoutMs', 1);
  atLeast('announceIntervalMs', 1);
  atLeast('seedAnnounceIntervalMs', 1);
  return config;
}
