/**
 * Announcer: runs a torrent's announces one at a time. A request while one is in flight is remembered (the latest
 * reason wins) and sent when it returns, so a 'completed' announce is never lost behind a slow 'periodic' one.
 * Failures are logged; the scheduler asks again at its next interval.
 */
import { withTimeout } from '../../../shared/abort.ts';
import type { Logger } from '../../../shared/logging.ts';
import type { AnnounceReason, DiscoveredPeer } from '../scheduler/types.ts';
import type { Announce, AnnounceInput } from './announce.ts';

export interface AnnouncerOptions {
  readonly announce: Announce;
  readonly timeoutMs: number;
  /** Aborts announces in flight and stops new ones. */
  readonly lifetime: AbortSignal;
  readonly log: Logger;
  /** What to announce, computed when the announce is sent. */
  input(reason: AnnounceReason): AnnounceInput;
  onPeers(peers: readonly DiscoveredPeer[]): void;
}

export class Announcer {
  readonly #o: AnnouncerOptions;
  #inFlight = false;
  #pending: AnnounceReason | undefined;
  #settled = 0;

  constructor(options: AnnouncerOptions) {
    this.#o = options;
  }

  /** Announces that came back, answered or failed (a timeout included). */
  get settled(): number {
    return this.#settled;
  }

  request(reason: AnnounceReason): void {
    if (this.#o.lifetime.aborted) return;
    if (this.#inFlight) {
      this.#pending = reason;
      return;
    }
    this.#inFlight = true;
    const { announce, timeoutMs, lifetime, log } = this.#o;
    announce(this.#o.input(reason), withTimeout(lifetime, timeoutMs))
      .then(
        (peers) => {
          if (!lifetime.aborted) this.#o.onPeers(peers);
        },
        (err: unknown) => {
          if (!lifetime.aborted) log.warn({ err, reason }, 'announce failed');
        },
      )
      .finally(() => {
        this.#settled++;
        this.#inFlight = false;
        const next = this.#pending;
        this.#pending = undefined;
        if (next !== undefined) this.request(next);
      });
  }
}
