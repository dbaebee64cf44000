/** AbortSignal helpers: every async operation takes a signal and gets a deadline. */
import { LayerswarmError } from './errors.ts';

/** A signal that aborts when `parent` aborts or after `ms` milliseconds, whichever comes first. */
export function withTimeout(parent: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return parent ? AbortSignal.any([parent, timeout]) : timeout;
}

/** A deadline signal that is released when the operation ends (see `scopedTimeout`). */
export interface ScopedSignal {
  readonly signal: AbortSignal;
  /** The operation is over: clear the timer, drop the listener on the parent. */
  dispose(): void;
}

/**
 * Like withTimeout, for hot paths (one per piece): the timer is cleared and the listener on `parent` removed on
 * dispose. withTimeout's AbortSignal.timeout cannot be cancelled, so each call left a timer that fired later and
 * built a DOMException, and AbortSignal.any registered one more dependant on the long-lived parent; in the
 * 100-agent rollout profile that was ~2% of the CPU plus garbage. Call dispose() in a finally.
 */
export function scopedTimeout(parent: AbortSignal, ms: number): ScopedSignal {
  const ac = new AbortController();
  if (parent.aborted) {
    ac.abort(parent.reason);
    return { signal: ac.signal, dispose: () => undefined };
  }
  const onParent = (): void => ac.abort(parent.reason);
  parent.addEventListener('abort', onParent, { once: true });
  // The same reason AbortSignal.timeout gives, built only when the deadline really passes.
  const timer = setTimeout(() => ac.abort(new DOMException(`The operation was aborted due to timeout`, 'TimeoutError')), ms);
  return {
    signal: ac.signal,
    dispose: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onParent);
    },
  };
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) {
    throw new LayerswarmError('ABORTED', `${what}: aborted`, { cause: signal.reason });
  }
}

/**
 * Wait for `promise` unless `signal` aborts first; then reject with `onAbort()` (default: ABORTED). The promise itself
 * goes on (e.g. a download shared with other waiters). The abort listener lives only until one of the two settles, so
 * waiting on many promises with one long-lived signal keeps nothing reachable.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, what: string, onAbort?: () => Error): Promise<T> {
  const aborted = (): Error => onAbort?.() ?? new LayerswarmError('ABORTED', `${what}: aborted`, { cause: signal.reason });
  if (signal.aborted) {
    promise.catch(() => undefined); // its failure, if any, is someone else's to report
    return Promise.reject(aborted());
  }
  return new Promise<T>((resolve, reject) => {
    const listener = (): void => reject(aborted());
    signal.addEventListener('abort', listener, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', listener);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', listener);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
