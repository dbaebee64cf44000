/**
 * The virtual network's data plane: per-node uplink and downlink capacities (bytes/s) and piece payloads as fluid
 * flows between them. Control messages are not modelled here (they only cost latency, see simulation.ts).
 *
 * Sharing (max-min fair by relaxation): every link water-fills its capacity over its active flows, each flow capped
 * by what the flow's other link currently offers it (`upFill` / `downFill`; a new flow starts with the other link's
 * whole capacity as its offer). A flow's rate is the smaller of its two offers. Each link's offers sum to at most its
 * capacity, so the rates are always feasible; iterating the two offers converges to the max-min fair allocation (a
 * flow held back at one end leaves its share to the link's other flows, and that slack travels on to further links).
 * When a flow starts or ends, its two links are re-filled, then every link whose flows' offers changed noticeably is
 * re-filled in turn (a worklist, bounded per change by RELAX_BUDGET link fills); flows whose rate changed are re-timed.
 * The earlier model capped each flow by the other end's equal share (capacity / flow count): it never let a link
 * lend slack further than one hop, and left links at ~60–70% use in busy swarms (measured: N = 100, node downlink
 * use 0.60 with 2.4 in-flows on average), which made every simulated rollout ~1.5× slower than the network allows.
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
  /** Relaxation bookkeeping: the change (Network.#change) whose worklist holds this uplink / downlink, 0 when none. */
  upQueued: number;
  downQueued: number;
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
  /** What the uplink / downlink would give this flow were it not held back at its other link (bytes/ms). */
  upOffer: number;
  downOffer: number;
  /** Relaxation bookkeeping: the offer before the current link fill, and the last change that touched this flow. */
  prevOffer: number;
  touched: number;
  /** Index in src.outFlows / dst.inFlows (swap-removal). */
  outIndex: number;
  inIndex: number;
  readonly onDone: (flow: Flow) => void;
}

export function netNode(upBytesPerSec: number, downBytesPerSec: number): NetNode {
  return { up: upBytesPerSec / 1000, down: downBytesPerSec / 1000, outFlows: [], inFlows: [], upQueued: 0, downQueued: 0 };
}

export class Network {
  readonly #heap = new IndexedHeap<Flow>();
  #nextId = 0;
  #now = 0;
  /** Rate recomputations of flows (a cost metric). */
  retimed = 0;
  /** Reused by #changed: the current change's stamp, its worklist of links, the flows it touched. */
  #change = 0;
  readonly #workNodes: NetNode[] = [];
  readonly #workUp: boolean[] = [];
  readonly #touched: Flow[] = [];

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
      id: this.#nextId++, key: Number.POSITIVE_INFINITY, heapIndex: -1, src, dst, bytes, remaining: bytes, rate: 0, settledAt: now, upFill: 0, downFill: 0, upOffer: src.up, downOffer: dst.down, prevOffer: 0, touched: 0,
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

  /**
   * The flow sets of src's uplink and dst's downlink changed: re-share, relax the offers outward, re-time. Allocation
   * free (it runs twice per piece): the worklist and the touched flows live in reused arrays, filled by index (setting
   * an array's length to 0 would drop its backing store), "queued" and "touched" are stamps of the current change on
   * the nodes and flows (a stamp of an earlier change means no).
   */
  #changed(src: NetNode, dst: NetNode): void {
    const change = ++this.#change;
    const workNodes = this.#workNodes;
    const workUp = this.#workUp;
    const touched = this.#touched;
    workNodes[0] = src;
    workUp[0] = true;
    workNodes[1] = dst;
    workUp[1] = false;
    let tail = 2;
    let nTouched = 0;
    src.upQueued = change;
    dst.downQueued = change;
    let head = 0;
    let budget = RELAX_BUDGET;
    while (head < tail && budget-- > 0) {
      const node = workNodes[head] as NetNode;
      const up = workUp[head] as boolean;
      head++;
      if (up) node.upQueued = 0;
      else node.downQueued = 0;
      const flows = up ? node.outFlows : node.inFlows;
      for (const f of flows) f.prevOffer = up ? f.upOffer : f.downOffer;
      fill(up ? node.up : node.down, flows, up);
      for (const f of flows) {
        if (f.touched !== change) {
          f.touched = change;
          touched[nTouched++] = f;
        }
        const before = f.prevOffer;
        const after = up ? f.upOffer : f.downOffer;
        // The flow's other link capped it by this offer: re-fill that link when the offer moved noticeably.
        if (Math.abs(after - before) <= RELAX_EPSILON * Math.max(after, before)) continue;
        if (up) {
          const other = f.dst;
          if (other.downQueued === change) continue;
          other.downQueued = change;
          workNodes[tail] = other;
          workUp[tail++] = false;
        } else {
          const other = f.src;
          if (other.upQueued === change) continue;
          other.upQueued = change;
          workNodes[tail] = other;
          workUp[tail++] = true;
        }
      }
    }
    for (let i = 0; i < nTouched; i++) this.#retime(touched[i] as Flow);
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

/** Link fills per flow change: enough to spread slack a few hops in busy swarms, bounded so a change stays cheap. */
const RELAX_BUDGET = 8;
/** Offers that moved by less than this fraction do not propagate. */
const RELAX_EPSILON = 0.02;

const scratch: Flow[] = [];

/**
 * Water-fill `capacity` over `flows`, each capped by its other link's offer; writes upFill/downFill and this link's
 * offers: the water level when some flow reaches it (a capped flow could rise to about that), else (every flow held
 * back elsewhere) the flow's fill plus the capacity left unused.
 */
function fill(capacity: number, flows: readonly Flow[], up: boolean): void {
  const n = flows.length;
  if (n === 0) return;
  if (n === 1) {
    fillOne(capacity, flows[0] as Flow, up);
    return;
  }
  // Stable insertion sort by the other link's offer (n is small: a handful of flows per link; Array.sort's set-up
  // cost dominates at that size). Stable, so the order, and the arithmetic below, are what a stable sort gives.
  // scratch[0..n) is this fill's order; written by index, the array keeps its backing store between fills.
  for (let i = 0; i < n; i++) {
    const f = flows[i] as Flow;
    scratch[i] = f;
    if (n > 32) continue;
    const cap = up ? f.downOffer : f.upOffer;
    let j = i;
    while (j > 0) {
      const prev = scratch[j - 1] as Flow;
      if ((up ? prev.downOffer : prev.upOffer) - cap <= 0) break;
      scratch[j] = prev;
      j--;
    }
    scratch[j] = f;
  }
  if (n > 32) {
    const sorted = scratch.slice(0, n).sort(up ? (a, b) => a.downOffer - b.downOffer : (a, b) => a.upOffer - b.upOffer);
    for (let i = 0; i < n; i++) scratch[i] = sorted[i] as Flow;
  }
  let left = capacity;
  let k = n;
  let level = -1;
  for (let i = 0; i < n; i++) {
    const f = scratch[i] as Flow;
    const share = left / k;
    const cap = up ? f.downOffer : f.upOffer;
    const v = cap < share ? cap : share;
    if (cap >= share && level < 0) level = share;
    if (up) f.upFill = v;
    else f.downFill = v;
    left -= v;
    k--;
  }
  for (const f of flows) {
    const offer = level >= 0 ? level : (up ? f.upFill : f.downFill) + Math.max(0, left);
    if (up) f.upOffer = offer;
    else f.downOffer = offer;
  }
}

/** fill() for a link with one flow (the common case), same arithmetic without the sort. */
function fillOne(capacity: number, f: Flow, up: boolean): void {
  const cap = up ? f.downOffer : f.upOffer;
  const v = cap < capacity ? cap : capacity;
  const level = cap >= capacity ? capacity : -1;
  const left = capacity - v;
  if (up) {
    f.upFill = v;
    f.upOffer = level >= 0 ? level : v + Math.max(0, left);
  } else {
    f.downFill = v;
    f.downOffer = level >= 0 ? level : v + Math.max(0, left);
  }
}
