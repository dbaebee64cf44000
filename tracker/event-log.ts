/**
 * Swarm events agents report (origin fallbacks, bad pieces, banned peers), for the dashboard and `layerswarm status`.
 * Bounded twice: a ring of the last `capacity` events (older ones are overwritten), and a token bucket on how many
 * events are accepted per second over all agents (a fleet falling back all at once must not flood the tracker: the
 * excess is counted in `dropped`, not stored). Ids are increasing so a reader asks for what is newer than it has.
 * No timers: time comes from the injected clock.
 */
import type { SwarmEventKind } from './schemas.ts';

export interface SwarmEvent {
  readonly id: number;
  /** Milliseconds since the epoch, as the tracker received it. */
  readonly at: number;
  readonly kind: SwarmEventKind;
  readonly peerId: string;
  readonly zone: string | null;
  readonly digest: string | null;
  readonly reason: string | null;
}

export interface EventLogOptions {
  readonly capacity: number;
  /** Events accepted per second, steady state. */
  readonly ratePerSecond: number;
  /** Events accepted at once after a quiet period. */
  readonly burst: number;
  readonly now: () => number;
}

export const EVENT_LOG_DEFAULTS = { capacity: 1000, ratePerSecond: 50, burst: 500 } as const;

export class EventLog {
  readonly #ring: Array<SwarmEvent | undefined>;
  readonly #o: EventLogOptions;
  #nextId = 1;
  #tokens: number;
  #refilledAt: number;
  #dropped = 0;

  constructor(options: EventLogOptions) {
    this.#o = options;
    this.#ring = new Array<SwarmEvent | undefined>(options.capacity);
    this.#tokens = options.burst;
    this.#refilledAt = options.now();
  }

  /** Events refused by the rate bound since the tracker started. */
  get dropped(): number {
    return this.#dropped;
  }

  /** The id of the newest event (0 when none). */
  get lastId(): number {
    return this.#nextId - 1;
  }

  /** Record events; returns how many were accepted (the rest count as dropped). */
  add(events: ReadonlyArray<Omit<SwarmEvent, 'id' | 'at'>>): number {
    const now = this.#o.now();
    this.#tokens = Math.min(this.#o.burst, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#o.ratePerSecond);
    this.#refilledAt = now;
    let accepted = 0;
    for (const event of events) {
      if (this.#tokens < 1) {
        this.#dropped++;
        continue;
      }
      this.#tokens--;
      const id = this.#nextId++;
      this.#ring[id % this.#o.capacity] = { ...event, id, at: now };
      accepted++;
    }
    return accepted;
  }

  /** Events with an id above `since`, oldest first, at most the newest `limit` of them. */
  since(since: number, limit: number): SwarmEvent[] {
    const first = Math.max(since + 1, this.#nextId - this.#o.capacity, this.#nextId - limit, 1);
    const out: SwarmEvent[] = [];
    for (let id = first; id < this.#nextId; id++) {
      const event = this.#ring[id % this.#o.capacity];
      if (event?.id === id) out.push(event);
    }
    return out;
  }

  /** Count of retained events by kind (the dashboard's header). */
  counts(): Record<SwarmEventKind, number> {
    const counts: Record<SwarmEventKind, number> = { fallback: 0, bad_piece: 0, peer_banned: 0 };
    for (const event of this.since(0, this.#o.capacity)) counts[event.kind]++;
    return counts;
  }
}
