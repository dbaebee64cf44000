/**
 * A tiny in-process swarm for scheduler tests: N Schedulers over virtual time, no sockets. Commands become events
 * on the other side after a fixed latency; a `sendPiece` arrives `transferMs` later as `pieceReceived`, and the
 * driver plays the hashing shell: it compares the payload with ground truth (a corrupt node sends bad bytes) and
 * answers `pieceVerified` or `pieceFailed`. A toy tracker answers announces with every other registered node,
 * complete ones first. Everything is deterministic for a seed; `trace` records every command with its time.
 */
import { Bitfield } from '../../agent/swarm/scheduler/bitfield.ts';
import { schedulerConfig, type SchedulerConfig } from '../../agent/swarm/scheduler/config.ts';
import { Scheduler } from '../../agent/swarm/scheduler/scheduler.ts';
import { seededRng, type Rng, type SchedulerCommand, type SchedulerEvent } from '../../agent/swarm/scheduler/types.ts';

export interface SimNodeSpec {
  readonly id: string;
  /** Pieces held at start, or 'all' for a seeder. */
  readonly have: readonly number[] | 'all';
  /** Serves bad bytes for every piece. */
  readonly corrupt?: boolean;
  /** Never answers requests (and never uploads). */
  readonly silent?: boolean;
  /** This node's time to push one piece (a slow uploader); default SimOptions.transferMs. */
  readonly transferMs?: number;
  readonly config?: Partial<SchedulerConfig>;
}

export interface SimOptions {
  readonly pieceCount: number;
  readonly seed: number;
  readonly latencyMs?: number;
  /** Time to push one piece through an upload slot. */
  readonly transferMs?: number;
  readonly verifyMs?: number;
  readonly tickMs?: number;
  readonly maxTimeMs?: number;
  readonly config?: Partial<SchedulerConfig>;
}

export interface SimNode {
  readonly spec: SimNodeSpec;
  readonly scheduler: Scheduler;
  readonly config: SchedulerConfig;
  /** Ground truth per piece this node holds: true = good bytes. */
  readonly content: Map<number, boolean>;
  completedAt: number | undefined;
  piecesSent: number;
  peakConnected: number;
  peakUploads: number;
  /** Peers that ever got a `request` from this node after it had failed a piece from them (must stay empty). */
  readonly askedAfterBlacklist: string[];
  readonly blacklisted: Set<string>;
}

interface Scheduled {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

const PIECE_LENGTH = 1 << 20;

export class Sim {
  now = 0;
  readonly nodes = new Map<string, SimNode>();
  readonly trace: string[] = [];
  /** Protocol errors the driver noticed (a node sent a piece it did not have, ...). */
  readonly errors: string[] = [];
  readonly #options: Required<Omit<SimOptions, 'config'>>;
  readonly #rng: Rng;
  readonly #heap: Scheduled[] = [];
  #seq = 0;
  readonly #links = new Set<string>();
  readonly #tracker = new Map<string, boolean>();

  constructor(options: SimOptions, specs: readonly SimNodeSpec[]) {
    this.#options = { latencyMs: 5, transferMs: 20, verifyMs: 1, tickMs: 100, maxTimeMs: 120_000, ...options };
    this.#rng = seededRng(options.seed);
    const clock = { now: (): number => this.now };
    const blob = { size: options.pieceCount * PIECE_LENGTH, pieceLength: PIECE_LENGTH, pieceCount: options.pieceCount };
    specs.forEach((spec, i) => {
      const pieces = spec.have === 'all' ? Array.from({ length: options.pieceCount }, (_, p) => p) : spec.have;
      const config = schedulerConfig({ ...options.config, ...spec.config });
      const scheduler = new Scheduler({ selfId: spec.id, blob, have: Bitfield.of(options.pieceCount, pieces), config, clock, rng: seededRng(options.seed * 1000 + i) });
      const content = new Map(pieces.map((p) => [p, spec.corrupt !== true]));
      this.nodes.set(spec.id, {
        spec, scheduler, config, content, completedAt: scheduler.complete ? 0 : undefined, piecesSent: 0, peakConnected: 0, peakUploads: 0,
        askedAfterBlacklist: [], blacklisted: new Set(),
      });
      this.#at(i % this.#options.tickMs, () => this.#tick(spec.id));
    });
  }

  /** Run until every honest, answering node is complete (true) or maxTimeMs passes (false). */
  run(): boolean {
    const honest = [...this.nodes.values()].filter((n) => n.spec.corrupt !== true && n.spec.silent !== true);
    while (this.#heap.length > 0) {
      if (honest.every((n) => n.completedAt !== undefined)) return true;
      const next = this.#pop();
      if (next.at > this.#options.maxTimeMs) return false;
      this.now = next.at;
      next.run();
    }
    return false;
  }

  /** Deliver one event to a node now and execute what it answers. */
  deliver(nodeId: string, event: SchedulerEvent): void {
    const node = this.nodes.get(nodeId);
    if (node === undefined) return;
    const commands = node.scheduler.handle(event);
    const stats = node.scheduler.stats();
    node.peakConnected = Math.max(node.peakConnected, stats.connected);
    node.peakUploads = Math.max(node.peakUploads, stats.uploadsActive);
    for (const command of commands) this.#execute(node, command);
  }

  #tick(nodeId: string): void {
    this.deliver(nodeId, { type: 'tick' });
    this.#at(this.now + this.#options.tickMs, () => this.#tick(nodeId));
  }

  #execute(node: SimNode, c: SchedulerCommand): void {
    const from = node.spec.id;
    this.trace.push(`${this.now} ${from} ${c.type}${'peerId' in c ? ` ${c.peerId}` : ''}${'piece' in c ? ` #${c.piece}` : ''}${'reason' in c ? ` ${c.reason}` : ''}`);
    const later = (to: string, event: SchedulerEvent, delay = this.#options.latencyMs): void => this.#at(this.now + delay, () => this.deliver(to, event));
    const linked = (a: string, b: string): boolean => this.#links.has(linkKey(a, b));
    switch (c.type) {
      case 'connect':
        this.#at(this.now + this.#options.latencyMs, () => {
          const target = this.nodes.get(c.peerId);
          if (linked(from, c.peerId)) return; // a simultaneous dial already connected us: the shell keeps one connection
          if (target === undefined) return this.deliver(from, { type: 'peerClosed', peerId: c.peerId });
          this.#links.add(linkKey(from, c.peerId));
          this.deliver(c.peerId, { type: 'peerConnected', peerId: from, bitfield: node.scheduler.bitfield() });
          this.deliver(from, { type: 'peerConnected', peerId: c.peerId, bitfield: target.scheduler.bitfield() });
        });
        return;
      case 'close':
        if (this.#links.delete(linkKey(from, c.peerId))) later(c.peerId, { type: 'peerClosed', peerId: from });
        if (c.reason === 'bad_piece') node.blacklisted.add(c.peerId);
        return;
      case 'request':
        if (node.blacklisted.has(c.peerId)) node.askedAfterBlacklist.push(c.peerId);
        if (this.nodes.get(c.peerId)?.content.has(c.piece) === false) this.errors.push(`${from} asked ${c.peerId} for piece ${c.piece} it does not have`);
        if (linked(from, c.peerId) && this.nodes.get(c.peerId)?.spec.silent !== true) later(c.peerId, { type: 'requestReceived', peerId: from, piece: c.piece });
        return;
      case 'cancel':
        if (linked(from, c.peerId)) later(c.peerId, { type: 'cancelReceived', peerId: from, piece: c.piece });
        return;
      case 'rejectRequest':
        if (linked(from, c.peerId)) later(c.peerId, { type: 'requestRejected', peerId: from, piece: c.piece });
        return;
      case 'sendHave':
        if (linked(from, c.peerId)) later(c.peerId, { type: 'have', peerId: from, piece: c.piece });
        return;
      case 'sendPiece':
        this.#sendPiece(node, c.peerId, c.piece);
        return;
      case 'announce':
        this.#tracker.set(from, c.complete);
        this.#at(this.now + this.#options.latencyMs, () => {
          const others = [...this.#tracker].filter(([id]) => id !== from);
          const complete = shuffle(others.filter(([, done]) => done), this.#rng);
          const incomplete = shuffle(others.filter(([, done]) => !done), this.#rng);
          const peers = [...complete, ...incomplete].map(([peerId, done]) => ({ peerId, address: `sim://${peerId}`, complete: done }));
          this.deliver(from, { type: 'peersDiscovered', peers });
        });
        return;
      case 'complete':
        node.completedAt ??= this.now;
        return;
    }
  }

  #sendPiece(node: SimNode, to: string, piece: number): void {
    const from = node.spec.id;
    const payload = node.content.get(piece);
    if (payload === undefined) this.errors.push(`${from} sent piece ${piece} it does not have`);
    this.#at(this.now + (node.spec.transferMs ?? this.#options.transferMs), () => {
      node.piecesSent++;
      const receiver = this.nodes.get(to);
      if (receiver !== undefined && this.#links.has(linkKey(from, to))) {
        this.deliver(to, { type: 'pieceReceived', peerId: from, piece });
        this.#at(this.now + this.#options.verifyMs, () => {
          if (payload === true) {
            receiver.content.set(piece, true);
            this.deliver(to, { type: 'pieceVerified', piece });
          } else {
            this.deliver(to, { type: 'pieceFailed', peerId: from, piece });
          }
        });
      }
      this.deliver(from, { type: 'uploadDone', peerId: to, piece });
    });
  }

  #at(at: number, run: () => void): void {
    const heap = this.#heap;
    heap.push({ at, seq: this.#seq++, run });
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      swap(heap, i, parent);
      i = parent;
    }
  }

  #pop(): Scheduled {
    const heap = this.#heap;
    const top = heap[0] as Scheduled;
    const last = heap.pop() as Scheduled;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l], heap[m])) m = l;
        if (r < heap.length && before(heap[r], heap[m])) m = r;
        if (m === i) break;
        swap(heap, i, m);
        i = m;
      }
    }
    return top;
  }
}

const linkKey = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

function before(a: Scheduled | undefined, b: Scheduled | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

function swap<T>(xs: T[], i: number, j: number): void {
  const t = xs[i] as T;
  xs[i] = xs[j] as T;
  xs[j] = t;
}

function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) swap(xs, i, Math.floor(rng.next() * (i + 1)));
  return xs;
}
