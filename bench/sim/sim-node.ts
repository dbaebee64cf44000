/**
 * One simulated node and its per-layer swarm shells. A SwarmPeer is what agent/swarm/engine/torrent.ts is to the
 * real agent: it owns the blob's Scheduler (the same module, unmodified) and maps its commands onto the virtual
 * wire and wire messages back onto scheduler events, with the same rules as Torrent:
 *
 *   request → wire request (remembered per connection, like PeerConn.requested)   → requestReceived
 *   cancel, rejectRequest → wire cancel; on receipt: requestRejected first when we had asked that peer for the
 *     piece (protocol v1 has no Reject), then cancelReceived
 *   sendHave → wire have → have
 *   sendPiece → a fluid flow of the piece's bytes on the uploader's uplink and the receiver's downlink; when the last
 *     byte has left: uploadDone (uploader); one latency later: pieceReceived, then pieceVerified or, from a corrupt
 *     node, pieceFailed (receiver). A sendPiece on a connection already gone is answered with uploadDone at once.
 *     Link model 'limiter' (#frame, the product's LimitedTransport): every message of a connection, piece or not, is
 *     a frame that leaves at full uplink rate after the sender's earlier frames (for a piece, uploadDone then), waits
 *     in the receiver's socket buffer behind the connection's earlier frames, and is read through the receiver's
 *     download limiter: whole frames, first come first served over all its connections (SimHost.downFreeAt). So a
 *     request waits behind the pieces its sender is uploading and behind those its receiver is reading, as in the
 *     rollout emulation. Handshakes and tracker messages are not limited.
 *   connect → TCP connect (connectMs) + our handshake (one latency) → the target admits it (peerConnected with our
 *     bitfield as of the dial, like makeHandshake) → its handshake back (one latency) → peerConnected here with its
 *     bitfield. A dial to a node that is gone, or to a peer we already have a connection with, fails (peerClosed,
 *     only when no connection to that peer exists, like Torrent.#dial). Of two simultaneous dials, the one from the
 *     smaller peer id wins (PeerLinks' rule; here the first connection admitted is kept).
 *   close → the connection ends at once for us (its flows stop); the peer sees peerClosed one latency later.
 *   announce → the tracker one latency away; its handout comes back as peersDiscovered one latency after that.
 *
 * Messages on a connection arrive in order, one latency after they were sent, and only while the receiver still
 * holds that connection. Every scheduler call comes from the event loop, never from inside another handle().
 */
import { Bitfield } from '../../agent/swarm/scheduler/bitfield.ts';
import type { SchedulerConfig } from '../../agent/swarm/scheduler/config.ts';
import { Scheduler } from '../../agent/swarm/scheduler/scheduler.ts';
import { seededRng, type Clock, type SchedulerCommand, type SchedulerEvent } from '../../agent/swarm/scheduler/types.ts';
import { pieceRange } from '../../shared/swarm/metainfo.ts';
import { encodeMessage } from '../../shared/wire/codec.ts';
import type { EventQueue } from './event-queue.ts';
import type { Flow, NetNode, Network } from './network.ts';
import type { SimTracker } from './sim-tracker.ts';

export interface LayerShape {
  readonly index: number;
  readonly digest: string;
  readonly size: number;
  readonly pieceLength: number;
  readonly pieceCount: number;
}

/** What SwarmPeers share: time, the agenda, the network, the tracker, and per-layer peer and connection tables. */
export interface World {
  readonly clock: Clock & { now(): number };
  readonly queue: EventQueue;
  readonly net: Network;
  readonly tracker: SimTracker;
  readonly latencyMs: number;
  readonly connectMs: number;
  /**
   * SimOptions.linkModel: 'limiter' sends every message as a frame FIFO per uplink (SimHost.upFreeAt), buffers it per
   * connection (Link.toA / toB) and reads it FIFO per downlink (SimHost.downFreeAt).
   */
  readonly linkModel: 'fair' | 'limiter';
  /** Live peers of each layer by peer id. */
  readonly peers: ReadonlyArray<Map<string, SwarmPeer>>;
  /** Open connections of each layer by pair key. */
  readonly links: ReadonlyArray<Map<string, Link>>;
  readonly counters: SimCounters;
  /** A layer of `peer` completed (every piece verified). */
  layerComplete(peer: SwarmPeer): void;
}

export interface SimCounters {
  schedulerEvents: number;
  commands: number;
  closes: Record<string, number>;
  badPieces: number;
  abortedFlowBytes: number;
}

export interface Link {
  readonly a: SwarmPeer;
  readonly b: SwarmPeer;
  readonly key: string;
  open: boolean;
  /** Pieces a asked b for / b asked a for, still unanswered (PeerConn.requested of each side). */
  readonly askedByA: Set<number>;
  readonly askedByB: Set<number>;
  readonly flows: Set<Flow>;
  /**
   * Link model 'limiter': frames buffered for a / for b, in order. TCP delivers a connection's bytes in order, so only
   * the first one is being read (through the receiver's download limiter); the next is read after it.
   */
  readonly toA: BufferedFrame[];
  readonly toB: BufferedFrame[];
}

interface BufferedFrame {
  readonly bytes: number;
  /** A piece's frame: its sender and payload bytes (accounted pro rata when the connection closes mid-read). */
  readonly piece: { readonly from: SimHost; readonly payload: number } | undefined;
  readonly done: () => void;
  /** While being read: when the download limiter started and will finish it (ms). */
  readFrom?: number;
  readEnd?: number;
}

/** Wire bytes of a control message (request, cancel, have) and of a piece frame's header, as the codec encodes them. */
const CONTROL_FRAME_BYTES = encodeMessage({ kind: 'request', piece: 1000 }).byteLength;
const PIECE_HEADER_BYTES = encodeMessage({ kind: 'piece', piece: 1000, length: 1 << 20 }).byteLength;

export type HostKind = 'seeder' | 'node';

/** A machine: one agent (or the seeder) with its links. Byte counters are over all layers. */
export class SimHost {
  readonly index: number;
  readonly kind: HostKind;
  readonly net: NetNode;
  readonly address: string;
  readonly corrupt: boolean;
  readonly slow: boolean;
  readonly startAt: number;
  online = false;
  /** Restarts so far (each restart gets new peer ids, like a new agent process). */
  generation = 0;
  peers: SwarmPeer[] = [];
  /** Layers verified (per index), and when the whole image was. */
  readonly layerDoneAt: Array<number | undefined>;
  completeAt: number | undefined;
  bytesDown = 0;
  bytesUp = 0;
  bytesFromSeeder = 0;
  firstByteAt: number | undefined;
  /** Link model 'limiter': when this host's upload limiter is next free (ms). */
  upFreeAt = 0;
  /** Link model 'limiter': when this host's download limiter is next free (ms). */
  downFreeAt = 0;

  constructor(init: { index: number; kind: HostKind; net: NetNode; corrupt: boolean; slow: boolean; startAt: number; layers: number }) {
    this.index = init.index;
    this.kind = init.kind;
    this.net = init.net;
    this.corrupt = init.corrupt;
    this.slow = init.slow;
    this.startAt = init.startAt;
    this.address = init.kind === 'seeder' ? '10.255.255.1' : `10.${(init.index >> 16) & 255}.${(init.index >> 8) & 255}.${init.index & 255}`;
    this.layerDoneAt = new Array<number | undefined>(init.layers).fill(undefined);
  }

  /** Peer id of this host for a layer: 40 hex chars like the agent's; the seeder sorts first. */
  peerId(layer: number): string {
    const tag = this.kind === 'seeder' ? 's' : 'n';
    return `${tag}${String(this.index).padStart(7, '0')}g${this.generation}l${layer}`;
  }
}

export class SwarmPeer {
  readonly host: SimHost;
  readonly layer: LayerShape;
  readonly id: string;
  readonly scheduler: Scheduler;
  /** Connections this side knows (installed), by remote peer id. */
  readonly links = new Map<string, Link>();
  /** Our dials in progress. */
  readonly dialing = new Set<string>();
  online = true;
  readonly #world: World;

  constructor(world: World, host: SimHost, layer: LayerShape, config: SchedulerConfig, seed: number) {
    this.#world = world;
    this.host = host;
    this.layer = layer;
    this.id = host.peerId(layer.index);
    const have = host.kind === 'seeder' ? Bitfield.full(layer.pieceCount) : undefined;
    this.scheduler = new Scheduler({
      selfId: this.id, blob: { size: layer.size, pieceLength: layer.pieceLength, pieceCount: layer.pieceCount }, ...(have === undefined ? {} : { have }),
      config, clock: world.clock, rng: seededRng(seed),
    });
  }

  /** Feed one event and execute the commands it returns. */
  handle(event: SchedulerEvent): void {
    if (!this.online) return;
    const world = this.#world;
    world.counters.schedulerEvents++;
    const commands = this.scheduler.handle(event);
    world.counters.commands += commands.length;
    for (const c of commands) this.#execute(c);
  }

  /** The node went away: every connection drops (peers notice one latency later). */
  leave(): void {
    if (!this.online) return;
    this.online = false;
    this.#world.peers[this.layer.index]?.delete(this.id);
    for (const [remote, link] of [...this.links]) {
      this.links.delete(remote);
      this.#closeLink(link, remote);
    }
  }

  #execute(c: SchedulerCommand): void {
    switch (c.type) {
      case 'connect':
        this.#dial(c.peerId);
        return;
      case 'request': {
        const link = this.links.get(c.peerId);
        if (link === undefined) return;
        (link.a === this ? link.askedByA : link.askedByB).add(c.piece);
        this.#deliver(link, { type: 'requestReceived', peerId: this.id, piece: c.piece });
        return;
      }
      case 'cancel': {
        const link = this.links.get(c.peerId);
        if (link === undefined) return;
        (link.a === this ? link.askedByA : link.askedByB).delete(c.piece);
        this.#sendCancel(link, c.peerId, c.piece);
        return;
      }
      case 'rejectRequest': {
        const link = this.links.get(c.peerId);
        if (link !== undefined) this.#sendCancel(link, c.peerId, c.piece);
        return;
      }
      case 'sendHave': {
        const link = this.links.get(c.peerId);
        if (link !== undefined) this.#deliver(link, { type: 'have', peerId: this.id, piece: c.piece });
        return;
      }
      case 'sendPiece':
        this.#upload(c.peerId, c.piece);
        return;
      case 'close': {
        const world = this.#world;
        world.counters.closes[c.reason] = (world.counters.closes[c.reason] ?? 0) + 1;
        const link = this.links.get(c.peerId);
        if (link === undefined) return;
        this.links.delete(c.peerId);
        this.#closeLink(link, c.peerId);
        return;
      }
      case 'announce':
        this.#announce(c.complete);
        return;
      case 'complete':
        this.#world.layerComplete(this);
        return;
    }
  }

  // --- messages ----------------------------------------------------------------------------------------------

  /**
   * Deliver to the other end one latency from now, if it still holds this connection then; with the 'limiter' link
   * model, as a control frame through both ends' limiters (#frame).
   */
  #send(link: Link, remote: string, deliver: (to: SwarmPeer) => void): void {
    const to = link.a === this ? link.b : link.a;
    const world = this.#world;
    if (world.linkModel === 'limiter') {
      this.#frame(link, to, CONTROL_FRAME_BYTES, undefined, undefined, () => deliver(to));
      return;
    }
    world.queue.at(world.clock.now() + world.latencyMs, () => {
      if (to.links.get(this.id) === link) deliver(to);
    });
    void remote;
  }

  /** #send of one scheduler event (one closure per message instead of two). */
  #deliver(link: Link, event: SchedulerEvent): void {
    const to = link.a === this ? link.b : link.a;
    const world = this.#world;
    if (world.linkModel === 'limiter') {
      this.#frame(link, to, CONTROL_FRAME_BYTES, undefined, undefined, () => to.handle(event));
      return;
    }
    world.queue.at(world.clock.now() + world.latencyMs, () => {
      if (to.links.get(this.id) === link) to.handle(event);
    });
  }

  /** Wire cancel: a rejection when the receiver had asked us for the piece, then a cancel of its queued upload. */
  #sendCancel(link: Link, remote: string, piece: number): void {
    this.#send(link, remote, (to) => {
      const asked = link.a === to ? link.askedByA : link.askedByB;
      if (asked.delete(piece)) to.handle({ type: 'requestRejected', peerId: this.id, piece });
      to.handle({ type: 'cancelReceived', peerId: this.id, piece });
    });
  }

  #upload(remote: string, piece: number): void {
    const world = this.#world;
    const link = this.links.get(remote);
    if (link === undefined || !link.open) {
      world.queue.at(world.clock.now(), () => this.handle({ type: 'uploadDone', peerId: remote, piece }));
      return;
    }
    const to = link.a === this ? link.b : link.a;
    const bytes = pieceRange(this.layer, piece).length;
    if (world.linkModel === 'limiter') {
      this.#frame(link, to, PIECE_HEADER_BYTES + bytes, { from: this.host, payload: bytes }, () => this.handle({ type: 'uploadDone', peerId: remote, piece }), () => {
        this.#account(to, bytes);
        this.#arrived(link, to, piece);
      });
      return;
    }
    const flow = world.net.start(world.clock.now(), this.host.net, to.host.net, bytes, () => {
      link.flows.delete(flow);
      this.#account(to, bytes);
      this.handle({ type: 'uploadDone', peerId: remote, piece });
      world.queue.at(world.clock.now() + world.latencyMs, () => this.#arrived(link, to, piece));
    });
    link.flows.add(flow);
  }

  /**
   * Link model 'limiter' (the product's LimitedTransport): the frame leaves when our upload limiter is free and takes
   * bytes/up; then `sent` runs (a piece's upload is done for us: the frame is in the socket). One latency later it is
   * in the receiver's socket buffer behind the connection's earlier frames (#readNext). A connection closed
   * meanwhile loses it.
   */
  #frame(link: Link, to: SwarmPeer, bytes: number, piece: BufferedFrame['piece'], sent: (() => void) | undefined, done: () => void): void {
    const world = this.#world;
    const from = this.host;
    const leaves = Math.max(world.clock.now(), from.upFreeAt) + bytes / from.net.up;
    from.upFreeAt = leaves;
    if (sent !== undefined) world.queue.at(leaves, sent);
    world.queue.at(leaves + world.latencyMs, () => {
      if (!link.open || to.links.get(this.id) !== link) return;
      const queue = link.a === to ? link.toA : link.toB;
      queue.push({ bytes, piece, done });
      if (queue.length === 1) this.#readNext(link, to, queue);
    });
  }

  /**
   * Read the first buffered frame of this connection through the receiver's download limiter: whole frames, first
   * come first served over all its connections (each has at most one frame waiting there, like LimitedConnection).
   */
  #readNext(link: Link, to: SwarmPeer, queue: BufferedFrame[]): void {
    const frame = queue[0];
    if (frame === undefined || !link.open) return;
    const world = this.#world;
    const host = to.host;
    frame.readFrom = Math.max(world.clock.now(), host.downFreeAt);
    frame.readEnd = frame.readFrom + frame.bytes / host.net.down;
    host.downFreeAt = frame.readEnd;
    world.queue.at(frame.readEnd, () => {
      if (!link.open || queue[0] !== frame) return;
      queue.shift();
      if (to.links.get(this.id) === link) frame.done();
      this.#readNext(link, to, queue);
    });
  }

  /** A connection closed while `to` read a piece frame from it: the bytes read so far count; its unread time is freed. */
  #abortRead(to: SwarmPeer, queue: BufferedFrame[], now: number): void {
    const frame = queue[0];
    queue.length = 0;
    if (frame?.readFrom === undefined || frame.readEnd === undefined) return;
    if (to.host.downFreeAt === frame.readEnd) to.host.downFreeAt = Math.max(now, frame.readFrom);
    if (frame.piece === undefined || frame.readFrom >= now) return;
    const moved = (frame.piece.payload * (now - frame.readFrom)) / (frame.readEnd - frame.readFrom);
    this.#world.counters.abortedFlowBytes += moved;
    const { from } = frame.piece;
    from.bytesUp += moved;
    to.host.bytesDown += moved;
    if (from.kind === 'seeder') to.host.bytesFromSeeder += moved;
  }

  /** The piece's last byte reached `to`: hand it to its scheduler (verified, or failed from a corrupt node). */
  #arrived(link: Link, to: SwarmPeer, piece: number): void {
    const world = this.#world;
    if (to.links.get(this.id) !== link) return;
    (link.a === to ? link.askedByA : link.askedByB).delete(piece);
    to.handle({ type: 'pieceReceived', peerId: this.id, piece });
    if (this.host.corrupt) {
      world.counters.badPieces++;
      to.handle({ type: 'pieceFailed', peerId: this.id, piece });
    } else {
      to.handle({ type: 'pieceVerified', piece });
    }
  }

  #account(to: SwarmPeer, bytes: number): void {
    const from = this.host;
    from.bytesUp += bytes;
    to.host.bytesDown += bytes;
    to.host.firstByteAt ??= this.#world.clock.now();
    if (from.kind === 'seeder') to.host.bytesFromSeeder += bytes;
  }

  /** End a connection now (we closed it or left): stop its flows, tell the other side one latency later. */
  #closeLink(link: Link, remote: string): void {
    const world = this.#world;
    const now = world.clock.now();
    link.open = false;
    const table = world.links[this.layer.index];
    if (table?.get(link.key) === link) table.delete(link.key);
    for (const flow of link.flows) {
      const moved = world.net.abort(now, flow);
      world.counters.abortedFlowBytes += moved;
      const uploader = flow.src === link.a.host.net ? link.a : link.b;
      this.#accountPartial(uploader, uploader === link.a ? link.b : link.a, moved);
    }
    link.flows.clear();
    this.#abortRead(link.a, link.toA, now);
    this.#abortRead(link.b, link.toB, now);
    const other = link.a === this ? link.b : link.a;
    world.queue.at(now + world.latencyMs, () => {
      if (other.links.get(this.id) !== link) return;
      other.links.delete(this.id);
      other.handle({ type: 'peerClosed', peerId: this.id });
    });
    void remote;
  }

  #accountPartial(from: SwarmPeer, to: SwarmPeer, bytes: number): void {
    from.host.bytesUp += bytes;
    to.host.bytesDown += bytes;
    if (from.host.kind === 'seeder') to.host.bytesFromSeeder += bytes;
  }

  // --- connections -------------------------------------------------------------------------------------------

  #dial(remote: string): void {
    const world = this.#world;
    this.dialing.add(remote);
    const snapshot = this.scheduler.bitfield();
    world.queue.at(world.clock.now() + world.connectMs + world.latencyMs, () => this.#arrive(remote, snapshot));
  }

  /** Our handshake reached the target (runs at the target's side of the wire). */
  #arrive(remote: string, ours: Bitfield): void {
    const world = this.#world;
    if (!this.online) return;
    const layer = this.layer.index;
    const target = world.peers[layer]?.get(remote);
    const key = this.id < remote ? `${this.id}|${remote}` : `${remote}|${this.id}`;
    const table = world.links[layer] as Map<string, Link>;
    const back = world.clock.now() + world.latencyMs;
    if (target === undefined || !target.online || table.has(key) || (target.dialing.has(this.id) && remote < this.id)) {
      world.queue.at(back, () => {
        this.dialing.delete(remote);
        if (!this.links.has(remote)) this.handle({ type: 'peerClosed', peerId: remote });
      });
      return;
    }
    const link: Link = { a: this, b: target, key, open: true, askedByA: new Set(), askedByB: new Set(), flows: new Set(), toA: [], toB: [] };
    table.set(key, link);
    target.links.set(this.id, link);
    const theirs = target.scheduler.bitfield();
    target.handle({ type: 'peerConnected', peerId: this.id, bitfield: ours });
    world.queue.at(back, () => {
      this.dialing.delete(remote);
      if (!this.online) return;
      if (link.open) {
        this.links.set(remote, link);
        this.handle({ type: 'peerConnected', peerId: remote, bitfield: theirs });
      } else if (!this.links.has(remote)) {
        this.handle({ type: 'peerClosed', peerId: remote });
      }
    });
  }

  // --- tracker -----------------------------------------------------------------------------------------------

  #announce(complete: boolean): void {
    const world = this.#world;
    const pieces = this.scheduler.bitfield().count;
    world.queue.at(world.clock.now() + world.latencyMs, () => {
      if (!this.online) return;
      const peers = world.tracker.announce({
        digest: this.layer.digest, peerId: this.id, address: this.host.address, complete, pieces, seeder: this.host.kind === 'seeder',
      });
      if (peers !== undefined) world.queue.at(world.clock.now() + world.latencyMs, () => this.handle({ type: 'peersDiscovered', peers }));
    });
  }
}
