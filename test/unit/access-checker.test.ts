import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessChecker } from '../../agent/access/access-checker.ts';
import type { Identity, UpstreamClient } from '../../agent/upstream/types.ts';
import { isLayerswarmError, LayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';

const registry = { host: 'o.example', baseUrl: 'http://o.example', dockerHub: false };
const alice: Identity = { kind: 'basic', credentials: { username: 'alice', password: 'x' }, key: 'basic:alice' };
const bob: Identity = { kind: 'basic', credentials: { username: 'bob', password: 'y' }, key: 'basic:bob' };
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;

/** Fake origin: `acl(identityKey, name, digest)` decides; `down` makes it unreachable. */
function fakeUpstream(acl: (who: string, name: string, digest: string) => 'ok' | 'denied' | 'unknown') {
  const state = { heads: 0, down: false };
  const decide = (identity: Identity, name: string, digest: string): void => {
    state.heads++;
    if (state.down) throw new LayerswarmError('UPSTREAM_UNAVAILABLE', 'connection refused');
    const who = identity.kind === 'agent' ? 'agent' : identity.key;
    const verdict = acl(who, name, digest);
    if (verdict === 'denied') throw new LayerswarmError('UNAUTHORIZED', 'authentication required', { headers: { 'WWW-Authenticate': 'Basic realm="r"' } });
    if (verdict === 'unknown') throw new LayerswarmError('BLOB_UNKNOWN', 'blob unknown to registry');
  };
  const client: UpstreamClient = {
    headBlob: async (_r, name, digest, o) => (decide(o.identity, name, digest), { size: 1 }),
    manifest: async (_r, name, ref, o) => (decide(o.identity, name, ref), { body: Buffer.alloc(0), contentType: 'x', size: 0 }),
    blob: async () => assert.fail('not used'),
    ping: async () => assert.fail('not used'),
    close: async () => {},
  };
  return { client, state };
}

function checker(upstream: UpstreamClient, clock: { t: number }, ttlMs = 1000): AccessChecker {
  return new AccessChecker({ upstream, logger: silentLogger(), ttlMs, staleMaxAgeMs: 10_000, manifestMaxBytes: 1 << 20, now: () => clock.t });
}

const signal = new AbortController().signal;

describe('AccessChecker', () => {
  test('a decision is reused per identity and repository within the TTL, then asked again', async () => {
    const { client, state } = fakeUpstream(() => 'ok');
    const clock = { t: 0 };
    const access = checker(client, clock);
    await access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal);
    await access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal);
    assert.equal(state.heads, 1);
    await access.check(registry, 'app', bob, { kind: 'blob', digest: D1 }, signal);
    assert.equal(state.heads, 2, 'another identity is asked about separately');
    clock.t = 1001;
    await access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal);
    assert.equal(state.heads, 3, 'expired decision is asked again');
  });

  test('access to a repository does not open a blob the origin has only in another repository', async () => {
    const { client, state } = fakeUpstream((_who, name, digest) => (name === 'public' && digest === D2 ? 'unknown' : 'ok'));
    const access = checker(client, { t: 0 });
    await access.check(registry, 'public', alice, { kind: 'blob', digest: D1 }, signal);
    await assert.rejects(access.check(registry, 'public', alice, { kind: 'blob', digest: D2 }, signal), (e) => isLayerswarmError(e, 'BLOB_UNKNOWN'));
    assert.equal(state.heads, 2);
  });

  test('denials are relayed and not cached', async () => {
    const { client, state } = fakeUpstream((who) => (who === 'basic:bob' ? 'denied' : 'ok'));
    const access = checker(client, { t: 0 });
    for (let i = 0; i < 2; i++) {
      await assert.rejects(access.check(registry, 'private', bob, { kind: 'manifest', digest: D1 }, signal), (e) =>
        isLayerswarmError(e, 'UNAUTHORIZED') && e.headers['WWW-Authenticate'] === 'Basic realm="r"');
    }
    assert.equal(state.heads, 2);
  });

  test('origin unreachable: an earlier allow within staleMaxAge counts, nothing else does', async () => {
    const { client, state } = fakeUpstream(() => 'ok');
    const clock = { t: 0 };
    const access = checker(client, clock);
    await access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal);
    state.down = true;
    clock.t = 5000;
    await access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal);
    await assert.rejects(access.check(registry, 'app', bob, { kind: 'blob', digest: D1 }, signal), (e) => isLayerswarmError(e, 'UPSTREAM_UNAVAILABLE'));
    clock.t = 20_000;
    await assert.rejects(access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal), (e) => isLayerswarmError(e, 'UPSTREAM_UNAVAILABLE'));
  });

  test('ttl 0 asks every time', async () => {
    const { client, state } = fakeUpstream(() => 'ok');
    const access = checker(client, { t: 0 }, 0);
    await access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal);
    await access.check(registry, 'app', alice, { kind: 'blob', digest: D1 }, signal);
    assert.equal(state.heads, 2);
  });
});
