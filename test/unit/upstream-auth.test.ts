import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { isLayerswarmError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logging.ts';
import { Authenticator, parseTokenResponse, repositoryScope, validateRealm, type AuthRequest } from '../../agent/upstream/auth.ts';
import type { BearerChallenge } from '../../agent/upstream/challenge.ts';
import { createDispatcher } from '../../agent/upstream/http.ts';
import { TokenCache } from '../../agent/upstream/token-cache.ts';
import type { Identity, UpstreamRegistry } from '../../agent/upstream/types.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('TokenCache', () => {
  const key = { host: 'r', identityKey: 'agent', scope: 'repository:a:pull' };

  void test('caches until expires_in minus the safety margin, default 60 s', async () => {
    let t = 1_000_000;
    const cache = new TokenCache({ now: () => t, safetyMarginMs: 10_000 });
    let fetches = 0;
    const fetch = async (): Promise<{ token: string }> => ({ token: `t${++fetches}` });
    assert.equal(await cache.getOrFetch(key, fetch), 't1');
    t += 49_999;
    assert.equal(await cache.getOrFetch(key, fetch), 't1');
    t += 1;
    assert.equal(cache.get(key), undefined);
    assert.equal(await cache.getOrFetch(key, fetch), 't2');
    cache.set(key, { token: 'short', expiresInSeconds: 4 }, t);
    t += 1_999;
    assert.equal(cache.get(key), 'short'); // margin capped at half the lifetime
    t += 1;
    assert.equal(cache.get(key), undefined);
  });

  void test('bounded: the least recently used token goes first', () => {
    const cache = new TokenCache({ maxEntries: 2 });
    const k = (scope: string): typeof key => ({ ...key, scope });
    cache.set(k('a'), { token: 'A' });
    cache.set(k('b'), { token: 'B' });
    assert.equal(cache.get(k('a')), 'A');
    cache.set(k('c'), { token: 'C' });
    assert.equal(cache.size, 2);
    assert.equal(cache.get(k('b')), undefined);
    assert.equal(cache.get(k('a')), 'A');
    assert.equal(cache.get(k('c')), 'C');
  });

  void test('keys separate host, identity and scope', () => {
    const cache = new TokenCache();
    cache.set(key, { token: 'X' });
    assert.equal(cache.get({ ...key, host: 'other' }), undefined);
    assert.equal(cache.get({ ...key, identityKey: 'basic:1' }), undefined);
    assert.equal(cache.get({ ...key, scope: 'repository:b:pull' }), undefined);
    cache.delete(key, 'not-X');
    assert.equal(cache.get(key), 'X');
    cache.delete(key, 'X');
    assert.equal(cache.get(key), undefined);
  });

  void test('singleflight: concurrent callers share one fetch; failures are shared and not cached', async () => {
    const cache = new TokenCache();
    let fetches = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fetch = async (): Promise<{ token: string }> => {
      fetches++;
      await gate;
      return { token: 'shared' };
    };
    const all = Promise.all(Array.from({ length: 5 }, () => cache.getOrFetch(key, fetch)));
    release();
    assert.deepEqual(await all, Array(5).fill('shared'));
    assert.equal(fetches, 1);

    const failing = new TokenCache();
    let calls = 0;
    const boom = async (): Promise<{ token: string }> => {
      calls++;
      throw new Error('boom');
    };
    const results = await Promise.allSettled([failing.getOrFetch(key, boom), failing.getOrFetch(key, boom)]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    assert.equal(calls, 1);
    await assert.rejects(failing.getOrFetch(key, boom));
    assert.equal(calls, 2);
  });

  void test("one caller's abort does not cancel the shared fetch", async () => {
    const cache = new TokenCache();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fetch = async (): Promise<{ token: string }> => {
      await gate;
      return { token: 'T' };
    };
    const ac = new AbortController();
    const aborted = cache.getOrFetch(key, fetch, ac.signal);
    const other = cache.getOrFetch(key, fetch);
    ac.abort();
    await assert.rejects(aborted, (err) => isLayerswarmError(err, 'ABORTED'));
    release();
    assert.equal(await other, 'T');
    assert.equal(cache.get(key), 'T');
  });
});

describe('auth helpers', () => {
  void test('validateRealm accepts http(s) only', () => {
    assert.equal(validateRealm('https://auth.example.com/token?x=1').host, 'auth.example.com');
    for (const bad of [undefined, '', 'ftp://a/token', 'file:///etc/passwd', 'not a url', '/token', 'https://u:p@a/token']) {
      assert.throws(() => validateRealm(bad), (err) => isLayerswarmError(err, 'UPSTREAM_ERROR'), String(bad));
    }
  });

  void test('parseTokenResponse: token or access_token, expires_in', () => {
    assert.deepEqual(parseTokenResponse('{"token":"a","expires_in":300}'), { token: 'a', expiresInSeconds: 300 });
    assert.deepEqual(parseTokenResponse('{"access_token":"b"}'), { token: 'b' });
    assert.deepEqual(parseTokenResponse('{"token":"a","access_token":"b","expires_in":-1}'), { token: 'b' });
    for (const bad of ['', 'null', '[]', '{}', '{"token":""}', '{"token":5}', '{"token":"a b"}', '{"token":"a\\r\\nX: y"}']) {
      assert.throws(() => parseTokenResponse(bad), (err) => isLayerswarmError(err, 'UPSTREAM_ERROR'), bad);
    }
  });

  void test('repositoryScope', () => {
    assert.equal(repositoryScope('library/alpine'), 'repository:library/alpine:pull');
  });
});

interface TokenServerState {
  posts: Array<Record<string, string>>;
  gets: Array<{ query: Record<string, string>; authorization?: string }>;
  postMode: 'ok' | '404' | '405' | '400-unsupported' | '401';
  getStatus: number;
  delayMs: number;
}

describe('Authenticator against a token service', () => {
  let app: FastifyInstance;
  let realm: string;
  const state: TokenServerState = { posts: [], gets: [], postMode: 'ok', getStatus: 200, delayMs: 0 };
  const dispatcher = createDispatcher({ connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000 });
  const registry: UpstreamRegistry = { host: 'reg.test', baseUrl: 'http://reg.test', dockerHub: false };
  const withCreds: UpstreamRegistry = { ...registry, credentials: { username: 'alice', password: 'secret' } };
  let seq = 0;

  before(async () => {
    app = Fastify({ forceCloseConnections: true });
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
    app.post('/token', async (req, reply) => {
      const form = { ...(req.body as Record<string, string>) };
      state.posts.push(form);
      if (state.postMode === '404') return reply.code(404).send('not found');
      if (state.postMode === '405') return reply.code(405).send('method not allowed');
      if (state.postMode === '400-unsupported') return reply.code(400).send({ error: 'unsupported_grant_type' });
      if (state.postMode === '401' || form.password !== 'secret') return reply.code(401).send({ error: 'invalid_grant' });
      return { access_token: `post-${++seq}`, expires_in: 300 };
    });
    app.get('/token', async (req, reply) => {
      state.gets.push({ query: { ...(req.query as Record<string, string>) }, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));
      if (state.getStatus !== 200) return reply.code(state.getStatus).header('retry-after', '7').send({ details: 'token service says no' });
      const auth = req.headers.authorization;
      if (auth !== undefined && auth !== `Basic ${b64('alice:secret')}`) return reply.code(401).send({ details: 'incorrect username or password' });
      return { token: `get-${++seq}` };
    });
    realm = `${await app.listen({ host: '127.0.0.1', port: 0 })}/token`;
  });
  after(async () => {
    await app.close();
    await dispatcher.close();
  });
  beforeEach(() => {
    Object.assign(state, { posts: [], gets: [], postMode: 'ok', getStatus: 200, delayMs: 0 });
  });

  const make = (cache = new TokenCache(), tokenTimeoutMs = 2000): Authenticator =>
    new Authenticator({ dispatcher, tokenCache: cache, logger: silentLogger(), tokenTimeoutMs, userAgent: 'test' });
  const challenge = (): BearerChallenge => ({ scheme: 'bearer', realm, service: 'svc', params: { realm, service: 'svc' } });
  const req = (reg: UpstreamRegistry, identity: Identity = { kind: 'agent' }): AuthRequest => ({
    registry: reg,
    identity,
    scope: 'repository:test/app:pull',
    signal: AbortSignal.timeout(5000),
    challengeHeader: `Bearer realm="${realm}",service="svc"`,
  });

  void test('anonymous: GET realm?service=&scope= without Authorization', async () => {
    const auth = await make().authorize(req(registry), challenge());
    assert.match(auth ?? '', /^Bearer get-\d+$/);
    assert.equal(state.posts.length, 0);
    assert.deepEqual(state.gets, [{ query: { service: 'svc', scope: 'repository:test/app:pull' } }]);
  });

  void test('credentials: OAuth2 password grant POSTed first', async () => {
    const auth = await make().authorize(req(withCreds), challenge());
    assert.match(auth ?? '', /^Bearer post-\d+$/);
    assert.deepEqual(state.posts, [{
      grant_type: 'password', username: 'alice', password: 'secret', service: 'svc', scope: 'repository:test/app:pull', client_id: 'layerswarm',
    }]);
    assert.equal(state.gets.length, 0);
  });

  for (const mode of ['404', '405', '400-unsupported', '401'] as const) {
    void test(`POST answered ${mode} → GET with Basic auth`, async () => {
      state.postMode = mode;
      const auth = await make().authorize(req(withCreds), challenge());
      assert.match(auth ?? '', /^Bearer get-\d+$/);
      assert.equal(state.posts.length, 1);
      assert.equal(state.gets[0]?.authorization, `Basic ${b64('alice:secret')}`);
    });
  }

  void test('client Basic identity uses its own credentials; wrong ones → UNAUTHORIZED with the origin challenge', async () => {
    const identity: Identity = { kind: 'basic', credentials: { username: 'alice', password: 'wrong' }, key: 'basic:x' };
    await assert.rejects(make().authorize(req(withCreds, identity), challenge()), (err) => {
      assert.ok(isLayerswarmError(err, 'UNAUTHORIZED'), String(err));
      assert.equal(err.headers['WWW-Authenticate'], `Bearer realm="${realm}",service="svc"`);
      assert.match(err.message, /incorrect username or password/);
      return true;
    });
    assert.equal(state.posts[0]?.username, 'alice');
    assert.equal(state.gets.length, 1); // fell back to GET after the POST's 401
  });

  void test('client Bearer identity is forwarded and nothing is fetched', async () => {
    const identity: Identity = { kind: 'bearer', token: 'client-token', key: 'bearer:x' };
    const a = make();
    assert.equal(await a.authorize(req(withCreds, identity), challenge()), 'Bearer client-token');
    assert.equal(a.cached(req(withCreds, identity)), 'Bearer client-token');
    assert.equal(state.posts.length + state.gets.length, 0);
  });

  void test('Basic challenge: Basic header with credentials, nothing without', async () => {
    const basic = { scheme: 'basic', realm: 'r', params: { realm: 'r' } } as const;
    assert.equal(await make().authorize(req(withCreds), basic), `Basic ${b64('alice:secret')}`);
    assert.equal(await make().authorize(req(registry), basic), undefined);
  });

  void test('tokens are cached per identity and scope; expiry refetches (injected clock)', async () => {
    let t = 0;
    const a = make(new TokenCache({ now: () => t }));
    const first = await a.authorize(req(registry), challenge());
    assert.equal(await a.authorize(req(registry), challenge()), first);
    assert.equal(a.cached(req(registry)), first);
    assert.equal(state.gets.length, 1);
    await a.authorize({ ...req(registry), scope: 'repository:other:pull' }, challenge());
    assert.equal(state.gets.length, 2);
    t += 60_000; // default lifetime when expires_in is absent
    assert.equal(a.cached(req(registry)), undefined);
    assert.notEqual(await a.authorize(req(registry), challenge()), first);
    assert.equal(state.gets.length, 3);
  });

  void test('concurrent requests share one token fetch', async () => {
    const a = make();
    const auths = await Promise.all(Array.from({ length: 8 }, () => a.authorize(req(registry), challenge())));
    assert.equal(new Set(auths).size, 1);
    assert.equal(state.gets.length, 1);
  });

  void test('token service errors: 500 → UPSTREAM_UNAVAILABLE, 429 → TOOMANYREQUESTS, 403 → DENIED', async () => {
    state.getStatus = 500;
    await assert.rejects(make().authorize(req(registry), challenge()), (err) => {
      assert.ok(isLayerswarmError(err, 'UPSTREAM_UNAVAILABLE'), String(err));
      assert.match(err.message, /token service says no/);
      return true;
    });
    state.getStatus = 429;
    await assert.rejects(make().authorize(req(registry), challenge()), (err) => isLayerswarmError(err, 'TOOMANYREQUESTS') && err.headers['Retry-After'] === '7');
    state.getStatus = 403;
    await assert.rejects(make().authorize(req(registry), challenge()), (err) => isLayerswarmError(err, 'DENIED'));
  });

  void test('slow token service → UPSTREAM_TIMEOUT', async () => {
    state.delayMs = 1000;
    const started = Date.now();
    await assert.rejects(make(new TokenCache(), 150).authorize(req(registry), challenge()), (err) => isLayerswarmError(err, 'UPSTREAM_TIMEOUT'));
    assert.ok(Date.now() - started < 900);
  });

  void test('unreachable token service → UPSTREAM_UNAVAILABLE; bad realm → UPSTREAM_ERROR', async () => {
    const port = await closedPort();
    const c: BearerChallenge = { scheme: 'bearer', realm: `http://127.0.0.1:${port}/token`, params: {} };
    await assert.rejects(make().authorize(req(registry), c), (err) => isLayerswarmError(err, 'UPSTREAM_UNAVAILABLE'));
    const bad: BearerChallenge = { scheme: 'bearer', realm: 'gopher://x/token', params: {} };
    await assert.rejects(make().authorize(req(registry), bad), (err) => isLayerswarmError(err, 'UPSTREAM_ERROR'));
  });

  void test('caller abort → ABORTED', async () => {
    state.delayMs = 500;
    const ac = new AbortController();
    const p = make().authorize({ ...req(registry), signal: ac.signal }, challenge());
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(p, (err) => isLayerswarmError(err, 'ABORTED'));
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}
