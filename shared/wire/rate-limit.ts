/**
 * A token bucket for bandwidth limits (bytes per second). One bucket can be shared by any number of connections,
 * which is how a node-wide upload or download limit is made (LimitedTransport in limited-transport.ts).
 *
 * Semantics:
 * - The bucket holds up to `burst` tokens (bytes) and refills at `rate` bytes/s; it starts full.
 * - take(n) waits until n bytes have been granted. A take larger than `burst` is granted in chunks of at most
 *   `burst` bytes, so a 16 MiB piece works with a 256 KiB burst (it simply waits ~n/rate).
 * - Takers are served strictly first come, first served: a later take never overtakes an earlier one that is still
 *   waiting, so a stream of small takes cannot starve a large one.
 * - take(n, signal) rejects with LayerswarmError ABORTED when the signal aborts; the waiters behind it move up and the
 *   chunks it was already granted are refunded (capped at `burst`): the bytes were never sent.
 * - rate 0 or Infinity means unlimited: take() resolves at once (still rejecting an already aborted signal).
 * - Time comes from an injected clock (`now`, ms) and `sleep`, so tests run on a fake clock; default: real time
 *   (performance.now and timers). Waits are rounded up to whole milliseconds.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { LayerswarmError } from '../errors.ts';

/** Wait `ms` milliseconds; may resolve (or reject) early when `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export interface TokenBucketOptions {
  /** Bytes per second; 0 or Infinity = unlimited. */
  readonly rate: number;
  /** Largest number of bytes granted at once (and the most that accumulates while idle). Default: one second of `rate`, at least 64 KiB. */
  readonly burst?: number;
  /** Clock in milliseconds (monotonic). Default performance.now. */
  readonly now?: () => number;
  /** Default: a real timer (node:timers/promises), cut short by the signal. */
  readonly sleep?: Sleep;
}

const realSleep: Sleep = (ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined);

interface Waiter {
  remaining: number;
  granted: number;
  readonly signal: AbortSignal | undefined;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly onAbort: () => void;
}

export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  readonly #now: () => number;
  readonly #sleep: Sleep;
  #tokens: number;
  #last: number;
  /** Waiting takers, oldest first: #queue[#head..]. */
  #queue: Waiter[] = [];
  #head = 0;
  #pumping = false;
  /** Interrupts the pump's sleep when the waiter it sleeps for aborts. */
  #sleepAbort: AbortController | undefined;

  constructor(options: TokenBucketOptions) {
    const { rate } = options;
    if (!(rate >= 0)) throw new LayerswarmError('CONFIG_INVALID', `bandwidth limit: rate must be ≥ 0 bytes/s (0 = unlimited), got ${rate}`);
    const burst = options.burst ?? (Number.isFinite(rate) ? Math.max(rate, 64 * 1024) : 64 * 1024);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new LayerswarmError('CONFIG_INVALID', `bandwidth limit: burst must be ≥ 1 byte, got ${burst}`);
    this.rate = rate;
    this.burst = burst;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? realSleep;
    this.#tokens = burst;
    this.#last = this.#now();
  }

  get unlimited(): boolean {
    return this.rate === 0 || this.rate === Infinity;
  }

  /** Takers waiting (for tests and metrics). */
  get waiting(): number {
    return this.#queue.length - this.#head;
  }

  /** Tokens available now (after refilling), for tests and metrics. */
  get available(): number {
    if (this.unlimited) return Infinity;
    this.#refill();
    return this.#tokens;
  }

  /** Resolves once `bytes` have been granted (FIFO among takers); rejects with ABORTED when `signal` aborts first. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new LayerswarmError('ABORTED', 'bandwidth limit: aborted', { cause: signal.reason }));
    if (this.unlimited || !(bytes > 0)) return Promise.resolve();
    // Fast path: nobody waiting and the whole take fits.
    if (this.waiting === 0) {
      this.#refill();
      if (bytes <= this.#tokens) {
        this.#tokens -= bytes;
        return Promise.resolve();
      }
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        remaining: bytes,
        granted: 0,
        signal,
        resolve,
        reject,
        onAbort: () => this.#abort(waiter),
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#queue.push(waiter);
      void this.#pump();
    });
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = now - this.#last;
    if (!(elapsed > 0)) return; // a clock that stands still (or steps back) adds nothing
    this.#last = now;
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.rate) / 1000);
  }

  #abort(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter, this.#head);
    if (index < 0) return;
    this.#queue.splice(index, 1);
    if (waiter.granted > 0) {
      this.#refill();
      this.#tokens = Math.min(this.burst, this.#tokens + waiter.granted);
    }
    waiter.reject(new LayerswarmError('ABORTED', 'bandwidth limit: aborted', { cause: waiter.signal?.reason }));
    if (index === this.#head) this.#sleepAbort?.abort();
  }

  #settle(waiter: Waiter): void {
    this.#head++;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve();
  }

  /** Serves the queue head chunk by chunk (≤ burst each), sleeping just long enough for the next chunk. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (let waiter = this.#queue[this.#head]; waiter; waiter = this.#queue[this.#head]) {
        this.#refill();
        const chunk = Math.min(waiter.remaining, this.burst);
        if (this.#tokens + 1e-6 >= chunk) {
          this.#tokens = Math.max(0, this.#tokens - chunk);
          waiter.remaining -= chunk;
          waiter.granted += chunk;
          if (waiter.remaining === 0) this.#settle(waiter);
          continue;
        }
        // Whole milliseconds (minus float noise), so a real timer firing on the ms does not leave a sliver missing.
        const ms = Math.max(1, Math.ceil(((chunk - this.#tokens) * 1000) / this.rate - 1e-9));
        const interrupt = new AbortController();
        this.#sleepAbort = interrupt;
        try {
          await this.#sleep(ms, interrupt.signal);
        } catch {
          // An interrupted sleep: re-check the (new) head.
        }
        this.#sleepAbort = undefined;
      }
    } finally {
      this.#pumping = false;
    }
  }
}
