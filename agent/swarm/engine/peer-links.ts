/**
 * PeerLinks: one connection per peer pair. Holds the dials in progress and the connection the scheduler knows for
 * each peer, and decides what happens to a newly handshaken connection when another one to the same peer exists.
 *
 * Rule (both sides apply it, so they converge without talking): of two connections between A and B, keep the one
 * dialled by the smaller peer id. A new connection that is the preferred one replaces a non-preferred one already
 * open ('swap': the torrent reports the old one closed and the new one connected); otherwise the new one is closed.
 * An inbound connection that arrives while our own preferred dial to that peer is in progress is closed; a
 * non-preferred dial that completes after the peer's inbound connection was accepted is closed without telling the
 * scheduler (the inbound connection already answered its `connect`).
 */
import type { PeerConn } from './peer-conn.ts';

export type Admission = { readonly action: 'install' } | { readonly action: 'swap'; readonly old: PeerConn } | { readonly action: 'reject' };

export class PeerLinks {
  readonly #selfId: string;
  /** Dials in progress (the scheduler reserved a slot with `connect`). */
  readonly dials = new Map<string, AbortController>();
  /** The connection the scheduler knows for each peer. */
  readonly conns = new Map<string, PeerConn>();

  constructor(selfId: string) {
    this.#selfId = selfId;
  }

  /** True when a connection to `peerId` dialled by `dialer` is the one both sides keep. */
  #preferred(peerId: string, outbound: boolean): boolean {
    const dialer = outbound ? this.#selfId : peerId;
    const other = outbound ? peerId : this.#selfId;
    return dialer < other;
  }

  /** A connection to `peerId` finished its handshake: install it, swap it in, or reject it. */
  admit(peerId: string, outbound: boolean): Admission {
    const existing = this.conns.get(peerId);
    const preferred = this.#preferred(peerId, outbound);
    if (existing !== undefined) {
      if (preferred && existing.outbound !== outbound && !this.#preferred(peerId, existing.outbound)) return { action: 'swap', old: existing };
      return { action: 'reject' };
    }
    if (!outbound && this.dials.has(peerId) && this.#preferred(peerId, true)) return { action: 'reject' };
    return { action: 'install' };
  }

  /** Every connection and dial, for shutdown. */
  all(): { conns: PeerConn[]; dials: AbortController[] } {
    return { conns: [...this.conns.values()], dials: [...this.dials.values()] };
  }
}
