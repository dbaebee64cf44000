/**
 * Swarm state in memory: swarms by digest → peers by id with the time they last announced. No timers and no I/O:
 * time comes from the injected clock, expired peers are dropped when their swarm is touched and by prune(), which
 * the server calls on its own timer. Bounded: maxSwarms, maxPeersPerSwarm and maxPeers. A new peer announcing into a
 * swarm that is full (maxPeersPerSwarm) or while the tracker holds maxPeers entries is still answered with the
 * swarm's live peers but not recorded (`recorded: false`): it downloads from the others and is handed out once room
 * frees up, instead of being refused and left without any peer (a 10,000-node rollout must not stall at the cap).
 * Only a new swarm beyond maxSwarms is refused (TRACKER_FULL): there are no peers to answer with.
 *
 * Both maps are kept in last-announce order (delete + set on every announce), so expired entries are always at the
 * front and pruning costs only what it removes.
 */
import { TrackerError } from './errors.ts';
import type { Peer } from './handout-policy.ts';

export interface PeerStoreOptions {
  /** A peer leaves its swarm this long after its last announce. */
  readonly ttlMs: number;
  readonly maxSwarms: number;
  readonly maxPeersPerSwarm: number;
  /** Peer entries over all swarms. */
  readonly maxPeers: number;
  /** Milliseconds; Date.now in production, a fake in tests. */
  readonly now: () => number;
}

/** Optional byte counters an announce carries (since the peer's torrent started). */
export interface PeerTrafficCounters {
  readonly uploaded?: number | undefined;
  readonly downloaded?: number | undefined;
}

export interface StoredPeer extends Peer {
  readonly lastSeen: number;
  /** When the peer first announced into this swarm. */
  readonly firstSeen: number;
  /** Counters as last announced (0 when the peer does not send them). */
  readonly uploaded: number;
  readonly downloaded: number;
  /** Bytes per second, from the counters of announces at least RATE_MIN_SPAN_MS apart. */
  readonly upRate: number;
  readonly downRate: number;
  /** The announce the next rate is measured from. */
  readonly rateBase: { readonly at: number; readonly uploaded: number; readonly downloaded: number };
}

/** Announces closer together than this (event announces) do not start a new rate measurement. */
export const RATE_MIN_SPAN_MS = 1000;

interface Swarm {
  readonly digest: string;
  readonly peers: Map<string, StoredPeer>;
  lastAnnounce: number;
}

export interface SwarmSummary {
  readonly digest: string;
  readonly seeders: number;
  /** Peers (not seeders) holding the whole blob. */
  readonly complete: number;
  /** Peers still downloading. */
  readonly leechers: number;
  /** Pieces held, summed over the peers that are not seeders (with the piece count: the swarm's progress). */
  readonly piecesHeld: number;
  /** Bytes per second over the swarm's peers. */
  readonly upRate: number;
  readonly downRate: number;
}

export interface AnnounceOutcome {
  /** The swarm's live peers (the caller included when recorded). */
  readonly peers: StoredPeer[];
  /** False when a cap kept the caller out of the swarm (it was answered all the same). */
  readonly recorded: boolean;
}

export class PeerStore {
  readonly #swarms = new Map<string, Swarm>();
  readonly #options: PeerStoreOptions;
  #peerCount = 0;
  #lastFullPrune = Number.NEGATIVE_INFINITY;

  constructor(options: PeerStoreOptions) {
    this.#options = options;
  }

  get swarmCount(): number {
    return this.#swarms.size;
  }

  get peerCount(): number {
    return this.#peerCount;
  }

  /**
   * Record an announce and return the swarm's live peers. Throws TRACKER_FULL when a new swarm would exceed
   * maxSwarms; a new peer beyond maxPeersPerSwarm or maxPeers is answered without being recorded.
   */
  announce(digest: string, peer: Peer, traffic: PeerTrafficCounters = {}): AnnounceOutcome {
    const now = this.#options.now();
    let swarm = this.#swarms.get(digest);
    if (swarm) this.#pruneSwarm(swarm, now);
    const existing = swarm?.peers.get(peer.peerId);
    if (!existing) {
      const full = (): boolean => this.#peerCount >= this.#options.maxPeers || (!this.#swarms.has(digest) && this.#swarms.size >= this.#options.maxSwarms);
      if (full()) this.#pruneSwarms(now);
      // A full scan costs O(swarms): at most once per second while the tracker is full.
      if (full() && now - this.#lastFullPrune >= 1000) this.prune();
      swarm = this.#swarms.get(digest);
      if (!swarm && (this.#swarms.size >= this.#options.maxSwarms || this.#peerCount >= this.#options.maxPeers)) {
        const what = this.#swarms.size >= this.#options.maxSwarms ? `${this.#swarms.size} swarms (maxSwarms)` : `${this.#peerCount} peers (maxPeers)`;
        throw new TrackerError('TRACKER_FULL', `tracker holds ${what}`, { headers: { 'retry-after': this.#retryAfter() } });
      }
      if (swarm && (swarm.peers.size >= this.#options.maxPeersPerSwarm || this.#peerCount >= this.#options.maxPeers)) {
        return { peers: [...swarm.peers.values()], recorded: false };
      }
    }
    swarm = this.#swarms.get(digest) ?? { digest, peers: new Map(), lastAnnounce: now };
    this.#swarms.delete(digest);
    this.#swarms.set(digest, swarm);
    swarm.lastAnnounce = now;
    if (existing) swarm.peers.delete(peer.peerId);
    else this.#peerCount++;
    swarm.peers.set(peer.peerId, withTraffic(peer, existing, traffic, now));
    return { peers: [...swarm.peers.values()], recorded: true };
  }

  /** The live peers of a swarm (empty when unknown). */
  peers(digest: string): StoredPeer[] {
    const swarm = this.#swarms.get(digest);
    if (!swarm) return [];
    this.#pruneSwarm(swarm, this.#options.now());
    return [...swarm.peers.values()];
  }

  /** Remove a peer at once (a peer leaving cleanly). */
  remove(digest: string, peerId: string): boolean {
    const swarm = this.#swarms.get(digest);
    if (!swarm?.peers.delete(peerId)) return false;
    this.#peerCount--;
    if (swarm.peers.size === 0) this.#swarms.delete(digest);
    return true;
  }

  /** Drop every expired peer and empty swarm. Returns the number of peers dropped. */
  prune(): number {
    const now = this.#options.now();
    const before = this.#peerCount;
    this.#lastFullPrune = now;
    this.#pruneSwarms(now);
    for (const swarm of this.#swarms.values()) this.#pruneSwarm(swarm, now);
    return before - this.#peerCount;
  }

  /** Live (unexpired) peers over all swarms by state; one pass, no pruning (metrics). */
  stateCounts(): { seeder: number; complete: number; leecher: number } {
    const now = this.#options.now();
    const out = { seeder: 0, complete: 0, leecher: 0 };
    for (const swarm of this.#swarms.values()) {
      for (const peer of swarm.peers.values()) {
        if (this.#expired(peer.lastSeen, now)) continue;
        if (peer.seeder) out.seeder++;
        else if (peer.complete) out.complete++;
        else out.leecher++;
      }
    }
    return out;
  }

  /** Per-swarm counts, largest swarms first, at most `limit`. */
  summaries(limit: number): SwarmSummary[] {
    this.prune();
    const out: SwarmSummary[] = [];
    for (const swarm of this.#swarms.values()) {
      let seeders = 0;
      let complete = 0;
      let piecesHeld = 0;
      let upRate = 0;
      let downRate = 0;
      for (const peer of swarm.peers.values()) {
        if (peer.seeder) seeders++;
        else if (peer.complete) complete++;
        if (!peer.seeder) piecesHeld += peer.pieces;
        upRate += peer.upRate;
        downRate += peer.downRate;
      }
      out.push({ digest: swarm.digest, seeders, complete, leechers: swarm.peers.size - seeders - complete, piecesHeld, upRate, downRate });
    }
    const size = (s: SwarmSummary): number => s.seeders + s.complete + s.leechers;
    return out.sort((a, b) => size(b) - size(a) || (a.digest < b.digest ? -1 : 1)).slice(0, limit);
  }

  /** One swarm's summary (undefined when nobody is in it). */
  summary(digest: string): SwarmSummary | undefined {
    const peers = this.peers(digest);
    if (peers.length === 0) return undefined;
    let seeders = 0;
    let complete = 0;
    let piecesHeld = 0;
    let upRate = 0;
    let downRate = 0;
    for (const peer of peers) {
      if (peer.seeder) seeders++;
      else if (peer.complete) complete++;
      if (!peer.seeder) piecesHeld += peer.pieces;
      upRate += peer.upRate;
      downRate += peer.downRate;
    }
    return { digest, seeders, complete, leechers: peers.length - seeders - complete, piecesHeld, upRate, downRate };
  }

  #expired(lastSeen: number, now: number): boolean {
    return now - lastSeen >= this.#options.ttlMs;
  }

  #pruneSwarm(swarm: Swarm, now: number): void {
    for (const [id, peer] of swarm.peers) {
      if (!this.#expired(peer.lastSeen, now)) break;
      swarm.peers.delete(id);
      this.#peerCount--;
    }
    if (swarm.peers.size === 0) this.#swarms.delete(swarm.digest);
  }

  /** Drop whole swarms nobody announced to within the TTL (they are at the front). */
  #pruneSwarms(now: number): void {
    for (const swarm of this.#swarms.values()) {
      if (!this.#expired(swarm.lastAnnounce, now)) break;
      this.#peerCount -= swarm.peers.size;
      this.#swarms.delete(swarm.digest);
    }
  }

  #retryAfter(): string {
    return String(Math.max(1, Math.ceil(this.#options.ttlMs / 1000)));
  }
}

/** The stored entry of an announce: counters, and rates measured against the previous measurement point. */
function withTraffic(peer: Peer, previous: StoredPeer | undefined, traffic: PeerTrafficCounters, now: number): StoredPeer {
  const uploaded = traffic.uploaded ?? 0;
  const downloaded = traffic.downloaded ?? 0;
  const base = previous?.rateBase;
  // A restarted torrent (download → seed) starts its counters again: measure from here.
  if (base === undefined || uploaded < base.uploaded || downloaded < base.downloaded) {
    return { ...peer, lastSeen: now, firstSeen: previous?.firstSeen ?? now, uploaded, downloaded, upRate: 0, downRate: 0, rateBase: { at: now, uploaded, downloaded } };
  }
  const span = now - base.at;
  // A peer holding the whole blob downloads nothing any more, whatever the last measurement said.
  if (peer.complete || peer.seeder) previous = previous && { ...previous, downRate: 0 };
  if (span < RATE_MIN_SPAN_MS) {
    return { ...peer, lastSeen: now, firstSeen: previous?.firstSeen ?? now, uploaded, downloaded, upRate: previous?.upRate ?? 0, downRate: previous?.downRate ?? 0, rateBase: base };
  }
  return {
    ...peer, lastSeen: now, firstSeen: previous?.firstSeen ?? now, uploaded, downloaded,
    upRate: Math.round(((uploaded - base.uploaded) * 1000) / span),
    downRate: peer.complete || peer.seeder ? 0 : Math.round(((downloaded - base.downloaded) * 1000) / span),
    rateBase: { at: now, uploaded, downloaded },
  };
}
