/** Per-torrent traffic counters, by peer id (kept across reconnects, unlike the scheduler's per-connection stats). */

export interface PeerTraffic {
  bytesUp: number;
  bytesDown: number;
  piecesUp: number;
  /** Pieces received that hashed correctly. */
  piecesDown: number;
  /** Pieces received that failed verification (the peer is blacklisted by the scheduler). */
  badPieces: number;
  /** Our requests the peer refused (a Cancel from the uploader). */
  rejected: number;
}

export interface TorrentStats {
  readonly digest: string;
  readonly role: 'download' | 'seed';
  readonly pieceCount: number;
  /** Pieces held verified. */
  readonly have: number;
  readonly complete: boolean;
  readonly connected: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly piecesUp: number;
  readonly piecesDown: number;
  readonly badPieces: number;
  readonly rejected: number;
  readonly peers: Readonly<Record<string, Readonly<PeerTraffic>>>;
}

export class TrafficTable {
  readonly #peers = new Map<string, PeerTraffic>();

  of(peerId: string): PeerTraffic {
    let t = this.#peers.get(peerId);
    if (t === undefined) {
      t = { bytesUp: 0, bytesDown: 0, piecesUp: 0, piecesDown: 0, badPieces: 0, rejected: 0 };
      this.#peers.set(peerId, t);
    }
    return t;
  }

  totals(): PeerTraffic & { peers: Record<string, PeerTraffic> } {
    const sum: PeerTraffic = { bytesUp: 0, bytesDown: 0, piecesUp: 0, piecesDown: 0, badPieces: 0, rejected: 0 };
    const peers: Record<string, PeerTraffic> = {};
    for (const [id, t] of this.#peers) {
      peers[id] = { ...t };
      sum.bytesUp += t.bytesUp;
      sum.bytesDown += t.bytesDown;
      sum.piecesUp += t.piecesUp;
      sum.piecesDown += t.piecesDown;
      sum.badPieces += t.badPieces;
      sum.rejected += t.rejected;
    }
    return { ...sum, peers };
  }
}
