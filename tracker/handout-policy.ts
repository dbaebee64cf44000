/**
 * Peer handout: which peers an announcing peer is told about. Kraken's order: peers that completed the blob first
 * (they have every piece and are plentiful), then seeders (spared, but always able to serve), then incomplete peers;
 * random within each class so the swarm forms a random graph instead of everyone dialling the same peers. When the
 * caller names a zone, same-zone peers come first within each class. Never the caller itself.
 */

export interface Peer {
  /** 40 lowercase hex characters. */
  readonly peerId: string;
  readonly address: string;
  readonly port: number;
  /** Holds the whole blob. */
  readonly complete: boolean;
  /** A seeder (serves blobs it fetched from the origin for the swarm). */
  readonly seeder: boolean;
  /** Pieces held (as announced). */
  readonly pieces: number;
  readonly zone: string | undefined;
}

/** Uniform in [0, 1), like Math.random. */
export type Rng = () => number;

export interface HandoutPolicy {
  /** Up to `limit` peers for `caller` from `peers` (which may include the caller). Must not mutate `peers`. */
  choose(caller: Peer, peers: readonly Peer[], limit: number, rng: Rng): Peer[];
}

/** 0: completed peers, 1: seeders, 2: incomplete peers. */
export function peerClass(peer: Peer): 0 | 1 | 2 {
  if (peer.seeder) return 1;
  return peer.complete ? 0 : 2;
}

/** Same peer id, or the same endpoint (a restarted agent announcing under a new id). */
export function isSamePeer(a: Peer, b: Peer): boolean {
  return a.peerId === b.peerId || (a.address === b.address && a.port === b.port);
}

/** Move up to `count` random elements of `items` to its front (partial Fisher–Yates); returns them. */
function sample<T>(items: T[], count: number, rng: Rng): T[] {
  const n = Math.min(count, items.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng() * (items.length - i));
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
  return items.slice(0, n);
}

export class PriorityHandoutPolicy implements HandoutPolicy {
  choose(caller: Peer, peers: readonly Peer[], limit: number, rng: Rng): Peer[] {
    if (limit <= 0) return [];
    const zone = caller.zone;
    // Buckets: class × (same zone first).
    const buckets: Peer[][] = [[], [], [], [], [], []];
    for (const peer of peers) {
      if (isSamePeer(peer, caller)) continue;
      const near = zone !== undefined && peer.zone === zone ? 0 : 1;
      buckets[peerClass(peer) * 2 + near]?.push(peer);
    }
    const out: Peer[] = [];
    for (const bucket of buckets) {
      if (out.length >= limit) break;
      out.push(...sample(bucket, limit - out.length, rng));
    }
    return out;
  }
}

export const defaultHandoutPolicy: HandoutPolicy = new PriorityHandoutPolicy();
