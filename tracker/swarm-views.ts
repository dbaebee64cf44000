/**
 * The monitoring views of the swarm state (GET /v1/swarms, GET /v1/swarms/:digest): the peer store's counts joined
 * with what the metainfo registry and the swarm labels know. Pure functions of their inputs.
 */
import { pieceCount } from '../shared/swarm/metainfo.ts';
import type { StoredPeer, SwarmSummary } from './peer-store.ts';
import type { SwarmLabel } from './swarm-labels.ts';

export interface SwarmFacts {
  readonly size: number;
  readonly pieceLength: number;
}

export interface SwarmView {
  digest: string;
  repository: string | null;
  registry: string | null;
  /** Blob size; null when the tracker does not hold the metainfo (any more). */
  size: number | null;
  pieces: number | null;
  seeders: number;
  complete: number;
  leechers: number;
  peers: number;
  /** Bytes held by completed peers (size × complete). */
  bytes: number | null;
  /** Pieces held by the non-seeder peers ÷ what they would hold complete (0..1); null without metainfo or peers. */
  progress: number | null;
  upRate: number;
  downRate: number;
}

export type PeerRole = 'seeder' | 'complete' | 'leecher';

export interface PeerView {
  peerId: string;
  address: string;
  port: number;
  role: PeerRole;
  zone: string | null;
  pieces: number;
  progress: number | null;
  uploaded: number;
  downloaded: number;
  upRate: number;
  downRate: number;
  /** Milliseconds since its last announce. */
  lastSeenAgoMs: number;
  /** Milliseconds since it joined the swarm. */
  joinedAgoMs: number;
}

export interface AvailabilityView {
  /** What the numbers are based on: announces carry how many pieces a peer holds, not which. */
  basis: 'piece-counts';
  /** Peers holding every piece (seeders and completed peers): each piece is at least this available. */
  fullCopies: number;
  /** Pieces held over all peers ÷ pieces (BitTorrent's "distributed copies", from counts); null without metainfo. */
  distributedCopies: number | null;
  /** Non-seeder peers by progress. */
  histogram: Array<{ label: string; peers: number }>;
}

export interface SwarmDetailView extends SwarmView {
  pieceLength: number | null;
  availability: AvailabilityView;
  /** Peers listed (at most the limit asked for), seeders first, then by progress. */
  peerList: PeerView[];
}

export function swarmView(s: SwarmSummary, facts: SwarmFacts | undefined, label: SwarmLabel | undefined): SwarmView {
  const pieces = facts === undefined ? null : pieceCount(facts.size, facts.pieceLength);
  const holders = s.complete + s.leechers;
  return {
    digest: s.digest,
    repository: label?.repository ?? null,
    registry: label?.registry ?? null,
    size: facts?.size ?? null,
    pieces,
    seeders: s.seeders,
    complete: s.complete,
    leechers: s.leechers,
    peers: s.seeders + holders,
    bytes: facts === undefined ? null : facts.size * s.complete,
    progress: pieces === null || holders === 0 ? null : pieces === 0 ? 1 : round4(s.piecesHeld / (holders * pieces)),
    upRate: s.upRate,
    downRate: s.downRate,
  };
}

export function roleOf(peer: StoredPeer): PeerRole {
  return peer.seeder ? 'seeder' : peer.complete ? 'complete' : 'leecher';
}

const ROLE_ORDER: Record<PeerRole, number> = { seeder: 0, complete: 1, leecher: 2 };
const HISTOGRAM = [
  { label: '0–24%', below: 0.25 },
  { label: '25–49%', below: 0.5 },
  { label: '50–74%', below: 0.75 },
  { label: '75–99%', below: 1 },
  { label: '100%', below: Number.POSITIVE_INFINITY },
];

export function swarmDetailView(s: SwarmSummary, peers: readonly StoredPeer[], facts: SwarmFacts | undefined, label: SwarmLabel | undefined, now: number, limit: number): SwarmDetailView {
  const base = swarmView(s, facts, label);
  const pieces = base.pieces;
  const progressOf = (p: StoredPeer): number | null => (p.seeder || p.complete ? 1 : pieces === null ? null : pieces === 0 ? 1 : round4(p.pieces / pieces));
  const list: PeerView[] = peers.map((p) => ({
    peerId: p.peerId, address: p.address, port: p.port, role: roleOf(p), zone: p.zone ?? null, pieces: p.pieces, progress: progressOf(p),
    uploaded: p.uploaded, downloaded: p.downloaded, upRate: p.upRate, downRate: p.downRate,
    lastSeenAgoMs: Math.max(0, now - p.lastSeen), joinedAgoMs: Math.max(0, now - p.firstSeen),
  }));
  list.sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || (b.progress ?? 0) - (a.progress ?? 0) || (a.peerId < b.peerId ? -1 : 1));
  const histogram = HISTOGRAM.map((h) => ({ label: h.label, peers: 0 }));
  let held = 0;
  for (const p of list) {
    held += p.role === 'leecher' ? p.pieces : (pieces ?? 0);
    if (p.role === 'seeder') continue;
    const progress = p.progress ?? 0;
    const i = HISTOGRAM.findIndex((h) => progress < h.below);
    const bucket = histogram[i];
    if (bucket) bucket.peers++;
  }
  return {
    ...base,
    pieceLength: facts?.pieceLength ?? null,
    availability: {
      basis: 'piece-counts',
      fullCopies: s.seeders + s.complete,
      distributedCopies: pieces === null || pieces === 0 ? null : Math.round((held / pieces) * 100) / 100,
      histogram,
    },
    peerList: list.slice(0, limit),
  };
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
