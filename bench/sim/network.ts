/**
 * The virtual network's data plane: per-node uplink and downlink capacities (bytes/s) and piece payloads as fluid
 * flows between them. Control messages are not modelled here (they only cost latency, see simulation.ts).
 *
 * Sharing (local max-min): each link divides its capacity over its active flows by water-filling, taking as every
 * flow's cap the other end's equal share (capacity / its flow count). A flow's rate is the smaller of what its two
 * ends grant it. Both allocations sum to at most their link's capacity, so the result is always feasible, and a
 * flow held back at one end leaves its share to the link's other flows (work-conserving where plain
 * min(up/n, down/m) would idle). When a flow starts or ends, only the two links it touches are recomputed (its
 * uploader's uplink, its receiver's downlink) and only their flows are re-timed: O(degree) per change instead of a
 * global solve. Allocations at other links lag by one change of theirs (still feasible, slightly conservative).
 *
 * Time is in milliseconds, rates in bytes/ms internally; completion times live in an IndexedHeap.
 */
import { IndexedHeap, type HeapItem } from './event-queue.ts';

export interface NetNode {
  /** Uplink capacity, bytes/ms. */
  readonly up: number;
  /** Downlink capacity, bytes/ms. */
  readonly down: number;
  readonly outFlows: Flow[];
  readonly inFlows: Flow[];
}

export interface Flow extends HeapItem {
  readonly src: NetNode;
  readonly dst: NetNode;
  readonly bytes: number;
  remaining: number;
  /** Bytes/ms. */
  rate: number;
  /** When `remaining` was last brought up to date. */
  settledAt: number;
  upFill: number;
  downFill: number;
  /** Index in src.outFlows / dst.inFlows (swap-removal). */
  outIndex: number;
  inIndex: number;
  readonly onDone: (flow: Flow) => void;
}

export function netNode(upBytesPerSec: number, downBytesPerSec: number): NetNode {
  return { up: upBytesPerSec / 1000, down: downBytesPerSec / 1000, outFlows: [], inFlows: [] };
}

export class Network {
  readonly #heap = new IndexedHeap<Flow>();
  #nextId = 0;
  #now = 0;
  /** Rate recomputations of flows (a cost metric). */
  retimed = 0;

  get activeFlows(): number {
    return this.#heap.size;
  }

  /** Time the next flow completes, Infinity when none. */
  peekTime(): number {
    return this.#heap.peek()?.key ?? Number.POSITIVE_INFINITY;
  }

  /** Start moving `bytes` from src to dst at `now`; `onDone` runs when the last byte has left. */
  start(now: number, src: NetNode, dst: NetNode, bytes: number, onDone: (flow: Flow) => void): Flow {
    this.#now = now;
    const flow: Flow = {
      id: this.#nextId++, key: Number.POSITIVE_INFINITY, heapIndex: -1, src, dst, bytes, remaining: bytes, rate: 0, settledAt: now, upFill: 0, downFill: 0,
      outIndex: src.outFlows.length, inIndex: dst.inFlows.length, onDone,
    };
    src.outFlows.push(flow);
    dst.inFlows.push(flow);
    this.#changed(src, dst);
    return flow;
  }

  /** Stop a flow early (its connection closed). Returns the bytes it had moved. */
  abort(now: number, flow: Flow): number {
    if (flow.heapIndex < 0) return flow.bytes - flow.remaining;
    this.#now = now;
    this.#settle(flow);
    this.#heap.remove(flow);
    this.#detach(flow);
    this.#changed(flow.src, flow.dst);
    return flow.bytes - flow.remaining;
  }

  /** Complete the earliest flow (its time is peekTime()) and run its onDone. */
  completeNext(): void {
    const flow = this.#heap.peek();
    if (flow === undefined) return;
    this.#now = flow.key;
    this.#heap.remove(flow);
    flow.remaining = 0;
    flow.settledAt = this.#now;
    this.#detach(flow);
    this.#changed(flow.src, flow.dst);
    flow.onDone(flow);
  }

  #detach(flow: Flow): void {
    const outs = flow.src.outFlows;
    const lastOut = outs.pop() as Flow;
    if (lastOut !== flow) {
      outs[flow.outIndex] = lastOut;
      lastOut.outIndex = flow.outIndex;
    }
    const ins = flow.dst.inFlows;
    const lastIn = ins.pop() as Flow;
    if (lastIn !== flow) {
      ins[flow.inIndex] = lastIn;
      lastIn.inIndex = flow.inIndex;
    }
  }

  #settle(flow: Flow): void {
    if (flow.settledAt < this.#now) {
      flow.remaining = Math.max(0, flow.remaining - flow.rate * (this.#now - flow.settledAt));
      flow.settledAt = this.#now;
    }
  }

  /** The flow sets of src's uplink and dst's downlink changed: re-share both and re-time their flows. */
  #changed(src: NetNode, dst: NetNode): void {
    fill(src.up, src.outFlows, true);
    fill(dst.down, dst.inFlows, false);
    for (const f of src.outFlows) this.#retime(f);
    for (const f of dst.inFlows) if (f.src !== src) this.#retime(f);
  }

  #retime(flow: Flow): void {
    const rate = Math.min(flow.upFill, flow.downFill);
    if (rate === flow.rate && flow.heapIndex >= 0) return;
    this.#settle(flow);
    flow.rate = rate;
    flow.key = rate > 0 ? this.#now + flow.remaining / rate : Number.POSITIVE_INFINITY;
    this.#heap.upsert(flow);
    this.retimed++;
  }
}

const scratch: Flow[] = [];

/** Water-fill `capacity` over `flows`, each capped by the other end's equal share; writes upFill or downFill. */
function fill(capacity: number, flows: readonly Flow[], up: boolean): void {
  const n = flows.length;
  if (n === 0) return;
  const capOf = (f: Flow): number => (up ? f.dst.down / f.dst.inFlows.length : f.src.up / f.src.outFlows.length);
  if (n === 1) {
    const f = flows[0] as Flow;
    const v = Math.min(capacity, capOf(f));
    if (up) f.upFill = v;
    else f.downFill = v;
    return;
  }
  scratch.length = 0;
  for (const f of flows) scratch.push(f);
  scratch.sort((a, b) => capOf(a) - capOf(b));
  let left = capacity;
  let k = n;
  for (const f of scratch) {
    const share = left / k;
    const cap = capOf(f);
    const v = cap < share ? cap : share;
    if (up) f.upFill = v;
    else f.downFill = v;
    left -= v;
    k--;
  }
}
