/**
 * The scheduler's vocabulary: events in, commands out, plus the two injected capabilities (clock, RNG).
 *
 * Everything here is plain data so that the agent's socket shell and the rollout simulator can drive the same
 * Scheduler. Events describe what happened on the wire (or in the hasher); commands describe what the shell must do.
 * Piece indices are 0-based. Nothing in this folder may import node:* I/O modules, start timers or read Date.now().
 */
import type { Bitfield } from './bitfield.ts';

/** A peer's stable identity (handed out by the tracker, sent in the handshake). */
export type PeerId = string;

/** Where a discovered peer listens, as the tracker reported it ("host:port"). Opaque to the scheduler. */
export type PeerAddress = string;

export interface DiscoveredPeer {
  readonly peerId: PeerId;
  readonly address: PeerAddress;
  /** The tracker says this peer has the whole blob (seeder / origin). Optional hint only. */
  readonly complete?: boolean;
  /** The tracker says this peer is the seeder role (not an agent). Metrics only. */
  readonly seeder?: boolean;
}

/** Why we closed a connection (stable strings, for logs and metrics). */
export type CloseReason =
  | 'capacity' // over the per-blob connection cap
  | 'blacklisted' // the peer is on our blacklist (bad piece earlier)
  | 'bad_piece' // the peer just sent a piece that failed verification
  | 'unresponsive' // too many request timeouts in a row
  | 'both_complete' // neither side needs anything from the other
  | 'idle' // no piece moved either way for idleTimeoutMs while others wait for a slot (or we are seeding)
  | 'duplicate'; // a second connection to a peer we are already connected to

/** 'stopped' is sent by the shell when a torrent closes (the scheduler never emits it). */
export type AnnounceReason = 'started' | 'periodic' | 'completed' | 'stopped';

export type SchedulerEvent =
  /** The tracker answered an announce. */
  | { readonly type: 'peersDiscovered'; readonly peers: readonly DiscoveredPeer[] }
  /** A handshake finished (inbound or after our `connect`); `bitfield` is the remote's, from its handshake. */
  | { readonly type: 'peerConnected'; readonly peerId: PeerId; readonly bitfield: Bitfield }
  /** The connection ended, or our `connect` failed. Idempotent; unknown peers are ignored. */
  | { readonly type: 'peerClosed'; readonly peerId: PeerId }
  /** The remote replaced its whole bitfield. */
  | { readonly type: 'bitfield'; readonly peerId: PeerId; readonly bitfield: Bitfield }
  /** The remote now has `piece`. */
  | { readonly type: 'have'; readonly peerId: PeerId; readonly piece: number }
  /** The bytes of `piece` arrived from `peerId`. The shell hashes them and answers with pieceVerified/pieceFailed. */
  | { readonly type: 'pieceReceived'; readonly peerId: PeerId; readonly piece: number }
  /** The piece hashed correctly and is stored. */
  | { readonly type: 'pieceVerified'; readonly piece: number }
  /** The piece `peerId` sent did not match its hash (or could not be stored as such). */
  | { readonly type: 'pieceFailed'; readonly peerId: PeerId; readonly piece: number }
  /** The remote refused one of our requests (its upload queue is full, or it does not have the piece). */
  | { readonly type: 'requestRejected'; readonly peerId: PeerId; readonly piece: number }
  /** Upload side: the remote asks for a piece of ours. */
  | { readonly type: 'requestReceived'; readonly peerId: PeerId; readonly piece: number }
  /** Upload side: the remote cancelled a request it made earlier. */
  | { readonly type: 'cancelReceived'; readonly peerId: PeerId; readonly piece: number }
  /** Upload side: the shell finished writing a `sendPiece` (or gave up on it); the upload slot is free. */
  | { readonly type: 'uploadDone'; readonly peerId: PeerId; readonly piece: number }
  /** Time passed. The shell ticks every few hundred ms; timeouts and announces are only evaluated here. */
  | { readonly type: 'tick' };

export type SchedulerCommand =
  | { readonly type: 'connect'; readonly peerId: PeerId; readonly address: PeerAddress }
  | { readonly type: 'request'; readonly peerId: PeerId; readonly piece: number }
  | { readonly type: 'cancel'; readonly peerId: PeerId; readonly piece: number }
  | { readonly type: 'sendHave'; readonly peerId: PeerId; readonly piece: number }
  | { readonly type: 'sendPiece'; readonly peerId: PeerId; readonly piece: number }
  | { readonly type: 'rejectRequest'; readonly peerId: PeerId; readonly piece: number }
  | { readonly type: 'close'; readonly peerId: PeerId; readonly reason: CloseReason }
  | { readonly type: 'announce'; readonly reason: AnnounceReason; readonly complete: boolean }
  /** Every piece is verified. Emitted once. */
  | { readonly type: 'complete' };

export type SchedulerEventType = SchedulerEvent['type'];
export type SchedulerCommandType = SchedulerCommand['type'];

/** Milliseconds on an arbitrary monotonic scale (performance.now() in the agent, virtual time in the simulator). */
export interface Clock {
  now(): number;
}

/** Uniform random numbers in [0, 1). */
export interface Rng {
  next(): number;
}

/** The blob being scheduled: just what the scheduler needs from Metainfo. */
export interface BlobShape {
  readonly size: number;
  readonly pieceLength: number;
  readonly pieceCount: number;
}

/** mulberry32: a tiny seeded PRNG, good enough for tie-breaks and simulations (not for anything secret). */
export function seededRng(seed: number): Rng {
  let state = seed >>> 0;
  return {
    next(): number {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** A clock the caller moves by hand (tests, simulator). */
export class ManualClock implements Clock {
  #now: number;
  constructor(start = 0) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  set(ms: number): void {
    if (ms < this.#now) throw new RangeError(`clock cannot go back from ${this.#now} to ${ms}`);
    this.#now = ms;
  }
  advance(ms: number): void {
    this.set(this.#now + ms);
  }
}
