/**
 * EventReporter: the agent's side of POST /v1/events. Swarm events (origin fallbacks, bad pieces, banned peers) and
 * bytes committed by source are queued and sent in one request at most every `flushIntervalMs`, and only when there
 * is something to send. Bounded: at most `maxQueued` events wait (the oldest are dropped beyond it); byte counts are
 * two numbers. A failed report keeps its bytes for the next one and drops its events (they are diagnostics, and the
 * agent's own metrics count them as well). Never throws into the caller.
 */
import { toLayerswarmError } from '../shared/errors.ts';
import type { Logger } from '../shared/logging.ts';
import type { TrackerClient } from './client.ts';
import { MAX_EVENTS_PER_POST, type EventsBody, type SwarmEventKind } from './schemas.ts';

export interface EventReporterOptions {
  readonly client: Pick<TrackerClient, 'postEvents'>;
  /** The agent's peer id (its engine's). */
  readonly peerId: string;
  readonly zone?: string | undefined;
  readonly logger: Logger;
  /** Default 1 s. */
  readonly flushIntervalMs?: number;
  /** Default 500. */
  readonly maxQueued?: number;
  /** Deadline of one report. Default 5 s. */
  readonly timeoutMs?: number;
}

type QueuedEvent = NonNullable<EventsBody['events']>[number];

export class EventReporter {
  readonly #o: EventReporterOptions;
  readonly #queue: QueuedEvent[] = [];
  readonly #timer: NodeJS.Timeout;
  readonly #lifetime = new AbortController();
  #peers = 0;
  #origin = 0;
  #dropped = 0;
  #sending: Promise<void> | undefined;

  constructor(options: EventReporterOptions) {
    this.#o = options;
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  /** Events dropped because the queue was full. */
  get dropped(): number {
    return this.#dropped;
  }

  event(kind: SwarmEventKind, digest?: string, reason?: string): void {
    if (this.#lifetime.signal.aborted) return;
    this.#queue.push({ kind, at: Date.now(), ...(digest === undefined ? {} : { digest }), ...(reason === undefined ? {} : { reason }) });
    const max = this.#o.maxQueued ?? 500;
    while (this.#queue.length > max) {
      this.#queue.shift();
      this.#dropped++;
    }
  }

  bytes(source: 'peers' | 'origin', bytes: number): void {
    if (source === 'peers') this.#peers += bytes;
    else this.#origin += bytes;
  }

  /** Send what is queued (one request at a time; a call while one is in flight waits for it). */
  async flush(): Promise<void> {
    while (this.#sending !== undefined) await this.#sending;
    if (this.#queue.length === 0 && this.#peers === 0 && this.#origin === 0) return;
    this.#sending = this.#send().finally(() => {
      this.#sending = undefined;
    });
    await this.#sending;
  }

  /** Stop the timer and send what is left (bounded by the report deadline). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
    this.#lifetime.abort();
  }

  async #send(): Promise<void> {
    const events = this.#queue.splice(0, MAX_EVENTS_PER_POST);
    const bytes = { peers: this.#peers, origin: this.#origin };
    this.#peers = 0;
    this.#origin = 0;
    const body: EventsBody = {
      peerId: this.#o.peerId,
      ...(this.#o.zone === undefined ? {} : { zone: this.#o.zone }),
      ...(events.length > 0 ? { events } : {}),
      ...(bytes.peers + bytes.origin > 0 ? { bytes } : {}),
    };
    try {
      await this.#o.client.postEvents(body, AbortSignal.any([this.#lifetime.signal, AbortSignal.timeout(this.#o.timeoutMs ?? 5000)]));
    } catch (err) {
      this.#peers += bytes.peers;
      this.#origin += bytes.origin;
      this.#o.logger.debug({ err: toLayerswarmError(err), events: events.length }, 'could not report swarm events to the tracker');
    }
  }
}
