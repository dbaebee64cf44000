/**
 * Who may start preheat and preload jobs (they make a component download things). With a token configured, every
 * request needs `Authorization: Bearer TOKEN` (compared in constant time); without one, the seeder's endpoint is open
 * like its notification endpoint, and the agent's answers loopback clients only.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { LayerswarmError } from '../../shared/errors.ts';

export function bearerMatches(token: string, authorization: string | undefined): boolean {
  const hash = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(hash(authorization ?? ''), hash(`Bearer ${token}`));
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || /^(::ffff:)?127\./.test(address);
}

/** Throws UNAUTHORIZED (wrong or missing token) or DENIED (no token configured, caller not on loopback). */
export function checkCaller(what: string, token: string | undefined, authorization: string | undefined, remoteAddress: string | undefined, loopbackOnly: boolean): void {
  if (token !== undefined) {
    if (!bearerMatches(token, authorization)) {
      throw new LayerswarmError('UNAUTHORIZED', `${what}: token missing or wrong (send "Authorization: Bearer TOKEN")`, { headers: { 'WWW-Authenticate': 'Bearer realm="layerswarm"' } });
    }
    return;
  }
  if (loopbackOnly && !isLoopback(remoteAddress)) {
    throw new LayerswarmError('DENIED', `${what} is only allowed from this node (loopback) unless a token is configured`);
  }
}
