/**
 * ConnState: connection bookkeeping for one blob (Kraken's connstate): the peers the tracker told us about, dials in
 * progress, open connections, and the blacklist with expiry. Enforces the per-blob connection cap. No I/O: it only
 * answers "may I?" and "whom next?"; the scheduler turns answers into commands.
 */
import type { DiscoveredPeer, PeerAddress, PeerId } from './types.ts';

export interface BlockEntry {
  readonly until: number;
  readonly reason: 'bad_piece' | 'unresponsive';
}

export class ConnState {
  readonly #selfId: PeerId;
  readonly #maxConnections: number;
  readonly #maxOutbound: number;
  /** Discovered and not yet tried, in tracker order (the tracker's handout policy already ranks them). */
  readonly #known = new Map<PeerId, PeerAddress>();
  readonly #dialing = new Set<PeerId>();
  readonly #connected = new Set<PeerId>();
  /** Connected peers we dialled (a subset of #connected). */
  readonly #outbound = new Set<PeerId>();
  readonly #blocked = new Map<PeerId, BlockEntry>();

  constructor(selfId: PeerId, maxConnections: number, maxOutbound = maxConnections) {
    this.#selfId = selfId;
    this.#maxConnections = maxConnections;
    this.#maxOutbound = Math.min(maxOutbound, maxConnections);
  }

  /** Open connections plus dials in progress. */
  get used(): number {
    return this.#connected.size + this.#dialing.size;
  }

  /** Dials in progress plus connections we dialled. */
  get outboundUsed(): number {
    return this.#dialing.size + this.#outbound.size;
  }

  /** Discovered peers waiting for a free slot. */
  get waiting(): number {
    return this.#known.size;
  }

  get connectedCount(): number {
    return this.#connected.size;
  }

  isConnected(peerId: PeerId): boolean {
    return this.#connected.has(peerId);
  }

  isDialing(peerId: PeerId): boolean {
    return this.#dialing.has(peerId);
  }

  discover(peers: readonly DiscoveredPeer[], now: number): void {
    for (const { peerId, address } of peers) {
      if (peerId === this.#selfId || this.#connected.has(peerId) || this.#dialing.has(peerId) || this.isBlocked(peerId, now)) continue;
      this.#known.set(peerId, address);
    }
  }

  isBlocked(peerId: PeerId, now: number): boolean {
    const entry = this.#blocked.get(peerId);
    if (entry === undefined) return false;
    if (entry.until > now) return true;
    this.#blocked.delete(peerId);
    return false;
  }

  block(peerId: PeerId, entry: BlockEntry): void {
    this.#blocked.set(peerId, entry);
    this.#known.delete(peerId);
  }

  blockEntry(peerId: PeerId): BlockEntry | undefined {
    return this.#blocked.get(peerId);
  }

  /**
   * Peers to dial now, marked as dialing. Never exceeds the cap nor the outbound share of it, never a blocked or
   * already connected peer.
   */
  takeDials(now: number): Array<{ peerId: PeerId; address: PeerAddress }> {
    const dials: Array<{ peerId: PeerId; address: PeerAddress }> = [];
    for (const [peerId, address] of this.#known) {
      if (this.used >= this.#maxConnections || this.outboundUsed >= this.#maxOutbound) break;
      this.#known.delete(peerId);
      if (this.isBlocked(peerId, now) || this.#connected.has(peerId) || this.#dialing.has(peerId)) continue;
      this.#dialing.add(peerId);
      dials.push({ peerId, address });
    }
    return dials;
  }

  /**
   * A handshake completed. Our own dials always fit (their slot was reserved); an inbound connection is accepted
   * only under the cap. Returns why to refuse it, or undefined to accept.
   */
  admit(peerId: PeerId, now: number): 'blacklisted' | 'capacity' | 'duplicate' | undefined {
    if (this.isBlocked(peerId, now)) {
      this.#dialing.delete(peerId);
      return 'blacklisted';
    }
    if (this.#connected.has(peerId)) return 'duplicate';
    if (this.#dialing.delete(peerId)) {
      this.#connected.add(peerId);
      this.#outbound.add(peerId);
      return undefined;
    }
    if (this.used >= this.#maxConnections) return 'capacity';
    this.#known.delete(peerId);
    this.#connected.add(peerId);
    return undefined;
  }

  /** The connection (or dial) ended. Returns true when the peer had been connected. */
  closed(peerId: PeerId): boolean {
    this.#dialing.delete(peerId);
    this.#outbound.delete(peerId);
    return this.#connected.delete(peerId);
  }
}
