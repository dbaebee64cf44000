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
