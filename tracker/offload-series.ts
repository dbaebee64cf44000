/**
 * Origin offload over time: bytes of swarm-eligible blobs agents committed, from peers and from the origin, in
 * fixed buckets (default 5 s × 720 = the last hour). Bounded: buckets older than the window are dropped. The ratio
 * is peers / (peers + origin); it is the agents' view (the seeder's own origin reads are not in it).
 */

export interface OffloadPoint {
  /** Bucket start, milliseconds since the epoch. */
  readonly t: number;
  readonly peers: number;
  readonly origin: number;
}

export interface OffloadSeriesOptions {
  readonly bucketMs: number;
  readonly buckets: number;
  readonly now: () => number;
}

export const OFFLOAD_DEFAULTS = { bucketMs: 5000, buckets: 720 } as const;

export interface OffloadReport {
  readonly bucketMs: number;
  readonly windowMs: number;
  /** Buckets with traffic in the window, oldest first. */
  readonly points: OffloadPoint[];
  /** Over the window. ratio is null when nothing was committed. */
  readonly window: { readonly peers: number; readonly origin: number; readonly ratio: number | null };
  /** Since the tracker started. */
  readonly total: { readonly peers: number; readonly origin: number; readonly ratio: number | null };
}

export function offloadRatio(peers: number, origin: number): number | null {
  return peers + origin === 0 ? null : peers / (peers + origin);
}

export class OffloadSeries {
  readonly #o: OffloadSeriesOptions;
  /** Buckets with traffic, oldest first. */
  readonly #points: Array<{ t: number; peers: number; origin: number }> = [];
  #totalPeers = 0;
  #totalOrigin = 0;

  constructor(options: OffloadSeriesOptions) {
    this.#o = options;
  }

  add(peers: number, origin: number): void {
    if (peers === 0 && origin === 0) return;
    const t = Math.floor(this.#o.now() / this.#o.bucketMs) * this.#o.bucketMs;
    const last = this.#points.at(-1);
    if (last?.t === t) {
      last.peers += peers;
      last.origin += origin;
    } else {
      this.#points.push({ t, peers, origin });
    }
    this.#totalPeers += peers;
    this.#totalOrigin += origin;
    this.#trim();
  }

  report(): OffloadReport {
    this.#trim();
    let peers = 0;
    let origin = 0;
    for (const p of this.#points) {
      peers += p.peers;
      origin += p.origin;
    }
    return {
      bucketMs: this.#o.bucketMs,
      windowMs: this.#o.bucketMs * this.#o.buckets,
      points: this.#points.map((p) => ({ ...p })),
      window: { peers, origin, ratio: offloadRatio(peers, origin) },
      total: { peers: this.#totalPeers, origin: this.#totalOrigin, ratio: offloadRatio(this.#totalPeers, this.#totalOrigin) },
    };
  }

  #trim(): void {
    const oldest = (Math.floor(this.#o.now() / this.#o.bucketMs) - this.#o.buckets + 1) * this.#o.bucketMs;
    let drop = 0;
    while (drop < this.#points.length && (this.#points[drop]?.t ?? 0) < oldest) drop++;
    if (drop > 0) this.#points.splice(0, drop);
  }
}
