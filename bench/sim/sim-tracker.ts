/**
 * The tracker in virtual time: the real PeerStore (TTL, per-swarm limits, SWARM_FULL) and the real handout policy,
 * answering announces the way tracker/server.ts `announce()` does (complete = complete || seeder). HTTP and input
 * validation are not modelled; the simulation adds the request/response latency.
 */
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import { TrackerError } from '../../tracker/errors.ts';
import { defaultHandoutPolicy, type HandoutPolicy, type Peer } from '../../tracker/handout-policy.ts';
import { PeerStore } from '../../tracker/peer-store.ts';
import type { DiscoveredPeer } from '../../agent/swarm/scheduler/types.ts';

export interface SimTrackerOptions {
  readonly now: () => number;
  readonly rng: () => number;
  readonly handoutSize?: number;
  readonly peerTtlMs?: number;
  readonly maxPeersPerSwarm?: number;
  readonly policy?: HandoutPolicy;
}

export interface SimAnnounce {
  readonly digest: string;
  readonly peerId: string;
  /** Unique per node ("10.0.x.y"): the policy treats the same address+port as the same peer. */
  readonly address: string;
  readonly complete: boolean;
  readonly pieces: number;
  readonly seeder: boolean;
}

export class SimTracker {
  readonly #store: PeerStore;
  readonly #rng: () => number;
  readonly #policy: HandoutPolicy;
  readonly handoutSize: number;
  announces = 0;
  /** Announces refused (SWARM_FULL / TRACKER_FULL), by error code. */
  readonly refused = new Map<string, number>();

  constructor(options: SimTrackerOptions) {
    const c = DEFAULT_TRACKER_CONFIG;
    this.#store = new PeerStore({
      ttlMs: options.peerTtlMs ?? c.peerTtl, maxSwarms: c.maxSwarms, maxPeersPerSwarm: options.maxPeersPerSwarm ?? c.maxPeersPerSwarm, maxPeers: Math.max(c.maxPeers, options.maxPeersPerSwarm ?? 0),
      now: options.now,
    });
    this.#rng = options.rng;
    this.#policy = options.policy ?? defaultHandoutPolicy;
    this.handoutSize = options.handoutSize ?? c.handoutSize;
  }

  /** Record the announce and return the handout; undefined when the tracker refused it (the agent retries later). */
  announce(a: SimAnnounce): DiscoveredPeer[] | undefined {
    this.announces++;
    const caller: Peer = { peerId: a.peerId, address: a.address, port: 5070, complete: a.complete, seeder: a.seeder, pieces: a.pieces, zone: undefined };
    let peers: Peer[];
    try {
      peers = this.#store.announce(a.digest, caller).peers;
    } catch (err) {
      if (!(err instanceof TrackerError)) throw err;
      this.refused.set(err.trackerCode, (this.refused.get(err.trackerCode) ?? 0) + 1);
      return undefined;
    }
    return this.#policy.choose(caller, peers, this.handoutSize, this.#rng).map((p) => ({ peerId: p.peerId, address: `${p.address}:${p.port}`, complete: p.complete || p.seeder }));
  }

  /** A node left for good and said so (not used by the agent today: peers expire after the TTL). */
  remove(digest: string, peerId: string): void {
    this.#store.remove(digest, peerId);
  }
}
