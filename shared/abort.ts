/** AbortSignal helpers: every async operation takes a signal and gets a deadline. */
import { LayerswarmError } from './errors.ts';

/** A signal that aborts when `parent` aborts or after `ms` milliseconds, whichever comes first. */
export function withTimeout(parent: AbortSignal | undefined, ms: number): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return parent ? AbortSignal.any([parent, timeout]) : timeout;
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
