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
  /** Connected peers that hold at least one piece we lack (0 once complete). */
  readonly usefulPeers: number;
  /** Our requests in flight plus received pieces being verified. */
  readonly inFlight: number;
  /** Have messages received so far: connected peers are getting pieces (the swarm around us is alive). */
  readonly havesReceived: number;
  /**
   * Peers that answered us so far: completed handshakes (inbound or outbound, kept or then closed for capacity) and
   * polite refusals of our dials (no capacity, shutting down). Before any peer has held a piece for us, this is the
   * no-peer watchdog's sign that the swarm is there, only busy.
   */
  readonly peerAnswers: number;
  /**
   * Announces of this torrent that came back from the tracker, answered or failed. Until the first one, nobody can
   * have been dialled: the no-peer watchdog does not count that time (an in-process tracker busy with 500 starting
   * agents answered some first announces after more than 5 s; those nodes left for the origin).
   */
  readonly announcesSettled: number;
  /** The scheduler's smoothed request → arrival time of pieces (ms); undefined before the first piece. */
  readonly pieceLatencyMs?: number | undefined;
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

/**
 * Who a peer was when its connection opened: 'seeder' when its handshake bitfield was full (the seeder role, or an
 * agent that had already finished: the wire protocol and the tracker's handout, which reports `complete || seeder`,
 * do not tell them apart), 'agent' when it was still downloading.
 */
export type PeerKind = 'seeder' | 'agent';

/**
 * What a peer is, by the tracker's handout: 'seeder' when the tracker handed it out with `seeder: true` (it announced
 * as the seeder role), else 'peer' (another agent, complete or not, or a peer that dialled us and was never handed out).
 */
export type PeerRole = 'seeder' | 'peer';

/** Engine-wide traffic hooks (metrics). Called once per piece, connection or ban, never per byte. */
export interface SwarmEngineEvents {
  /**
   * Piece bytes moved. 'down': a verified piece, credited to the first peer that delivered it (endgame duplicates
   * and bad pieces are not counted, so a download's down bytes add up to the blob's size); 'up': a piece sent.
   * `role`: the seeder role or another peer, by the tracker's handout (see PeerRole).
   */
  pieceBytes?(direction: 'down' | 'up', peer: PeerKind, bytes: number, role: PeerRole): void;
  /** A received piece failed verification. */
  badPiece?(): void;
  /** A peer was closed and blacklisted for sending a bad piece. */
  peerBanned?(): void;
}
