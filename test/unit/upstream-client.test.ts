// The upstream client's auth flows and manifests, against an in-process fake origin (none / basic / token auth).
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isLayerswarmError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/logging.ts';
import { createUpstreamClient, DEFAULT_MANIFEST_ACCEPT, upstreamName, type UpstreamRequestEvent } from '../../agent/upstream/client.ts';
import type { UpstreamClient } from '../../agent/upstream/types.ts';
import { identityFromAuthorization } from '../../agent/upstream/credentials.ts';
import { TokenCache } from '../../agent/upstream/token-cache.ts';
import type { Identity, UpstreamRegistry } from '../../agent/upstream/types.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] }, null, 3));
const MANIFEST_DIGEST = `sha256:${createHash('sha256').update(MANIFEST).digest('hex')}`;
const BIG = randomBytes(5000);
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const USERS: Record<string, string> = { alice: 'secret' };

type Mode = 'none' | 'basic' | 'token';
interface Seen {
  method: string;
  path: string;
  authorization?: string;
  accept?: string;
}

/** A fake origin: /v2/<name>/manifests/<ref> for any name, /token issuing opaque tokens. */
class FakeOrigin {
  readonly app: FastifyInstance = Fastify({ forceCloseConnections: true });
  mode: Mode = 'none';
  postMode: 'ok' | '405' = 'ok';
  expiresIn: number | undefined = undefined;
  seen: Seen[] = [];
  tokenRequests: Array<{ method: string; user?: string; scope: string }> = [];
  /** token → scopes it grants */
  readonly tokens = new Map<string, string>();
  url = '';
  #n = 0;

  async start(): Promise<void> {
    const { app } = this;
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_r, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
    app.get('/token', async (req, reply) => {
      const q = req.query as Record<string, string>;
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
      const [user, pass] = basic ? Buffer.from(basic[1] as string, 'base64').toString().split(':') : [];
      return this.#issue(reply, 'GET', user, pass, q.scope ?? '');
    });
    app.post('/token', async (req, reply) => {
      if (this.postMode === '405') {
        this.tokenRequests.push({ method: 'POST-405', scope: '' });
        return reply.code(405).send();
      }
      const f = req.body as Record<string, string>;
      assert.equal(f.client_id, 'layerswarm');
      assert.equal(f.grant_type, 'password');
      return this.#issue(reply, 'POST', f.username, f.password, f.scope ?? '');
    });
    app.get('/v2/*', (req, reply) => this.#registry(req, reply));
    this.url = await app.listen({ host: '127.0.0.1', port: 0 });
  }

  #issue(reply: FastifyReply, method: string, user: string | undefined, pass: string | undefined, scope: string): unknown {
    this.tokenRequests.push({ method, scope, ...(user !== undefined ? { user } : {}) });
    if (user !== undefined && USERS[user] !== pass) return reply.code(401).send({ details: 'incorrect username or password' });
    const name = /^repository:(.+):pull$/.exec(scope)?.[1] ?? '';
    const granted = user !== undefined || name.startsWith('public/') ? scope : '';
    const token = `tok${++this.#n}`;
    this.tokens.set(token, granted);
    const body: Record<string, unknown> = method === 'POST' ? { access_token: token } : { token };
    if (this.expiresIn !== undefined) body.expires_in = this.expiresIn;
    return body;
  }

  #registry(req: FastifyRequest, reply: FastifyReply): unknown {
    const path = req.url.split('?')[0] as string;
    this.seen.push({ method: req.method, path, ...pick(req.headers.authorization, 'authorization'), ...pick(req.headers.accept, 'accept') });
    const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (!m && path !== '/v2/') return reply.code(404).send({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
    const scope = m ? `repository:${m[1] as string}:pull` : '';
    const auth = req.headers.authorization ?? '';
    if (this.mode === 'basic') {
      const ok = Object.entries(USERS).some(([u, p]) => auth === `Basic ${b64(`${u}:${p}`)}`);
      if (!ok) return reply.code(401).header('www-authenticate', 'Basic realm="basic-realm"').send({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
    } else if (this.mode === 'token') {
      const token = /^Bearer (.+)$/.exec(auth)?.[1];
      if (token === undefined || (scope !== '' && this.tokens.get(token) !== scope) || !this.tokens.has(token)) {
        const error = token !== undefined ? ',error="insufficient_scope"' : '';
        return reply.code(401)
          .header('www-authenticate', `Bearer realm="${this.url}/token",service="fake"${scope !== '' ? `,scope="${scope}"` : ''}${error}`)
          .send({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
      }
    }
    if (!m) return reply.send({});
    if (m[2] === 'big') return reply.header('content-type', OCI_MANIFEST).send(BIG);
    if (m[2] === 'chunked') return reply.header('content-type', OCI_MANIFEST).send(Readable.from([BIG.subarray(0, 2500), BIG.subarray(2500)]));
    if (m[2] !== '1' && m[2] !== MANIFEST_DIGEST) return reply.code(404).send({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    return reply.header('content-type', OCI_MANIFEST).header('docker-content-digest', MANIFEST_DIGEST).send(MANIFEST);
  }

  reset(mode: Mode): void {
    this.mode = mode;
    this.postMode = 'ok';
    this.expiresIn = undefined;
    this.seen = [];
    this.tokenRequests = [];
  }
}

function pick<K extends string>(v: string | undefined, k: K): Partial<Record<K, string>> {
  return v === undefined ? {} : ({ [k]: v } as Partial<Record<K, string>>);
}

describe('upstream client: auth and manifests', () => {
  const origin = new FakeOrigin();
  let client: UpstreamClient;
  let events: UpstreamRequestEvent[] = [];
  let clock = 0;
  let registry: UpstreamRegistry;
  let withCreds: UpstreamRegistry;
  const agent: Identity = { kind: 'agent' };
  const get = (reg: UpstreamRegistry, name: string, identity: Identity = agent, extra: { accept?: string; maxBytes?: number; ref?: string; method?: 'GET' | 'HEAD' } = {}) =>
    client.manifest(reg, name, extra.ref ?? '1', {
      method: extra.method ?? 'GET', accept: extra.accept, maxBytes: extra.maxBytes ?? 1 << 20, identity, signal: AbortSignal.timeout(5000),
    });

  before(async () => {
    await origin.start();
    registry = { host: new URL(origin.url).host, baseUrl: origin.url, dockerHub: false };
    withCreds = { ...registry, credentials: { username: 'alice', password: 'secret' } };
  });
  after(async () => {
    await client.close();
    await origin.app.close();
  });
  beforeEach(async () => {
    await client?.close();
    events = [];
    clock = 1_000_000;
    client = createUpstreamClient({
      timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000, tokenMs: 1000 },
      userAgent: 'layerswarm-test',
      onRequest: (e) => events.push(e),
      tokenCache: new TokenCache({ now: () => clock }),
    });
  });

  void test('no auth: exact bytes, Content-Type, Docker-Content-Digest; HEAD gives the size', async () => {
    origin.reset('none');
    const m = await get(registry, 'test/app');
    assert.deepEqual(m.body, MANIFEST);
    assert.equal(m.contentType, OCI_MANIFEST);
    assert.equal(m.digest, MANIFEST_DIGEST);
    assert.equal(m.size, MANIFEST.length);
    const h = await get(registry, 'test/app', agent, { method: 'HEAD', ref: MANIFEST_DIGEST });
    assert.equal(h.body.length, 0);
    assert.equal(h.size, MANIFEST.length);
    assert.equal(h.digest, MANIFEST_DIGEST);
    assert.deepEqual(origin.seen.map((s) => [s.method, s.authorization]), [['GET', undefined], ['HEAD', undefined]]);
    assert.deepEqual(events.map((e) => [e.kind, e.status, e.registry]), [['manifest', 200, registry.host], ['head', 200, registry.host]]);
  });

  void test('Accept is forwarded unchanged; without one every OCI and Docker type is asked for', async () => {
    origin.reset('none');
    await get(registry, 'test/app', agent, { accept: 'application/vnd.docker.distribution.manifest.v2+json, */*;q=0.1' });
    await get(registry, 'test/app');
    assert.equal(origin.seen[0]?.accept, 'application/vnd.docker.distribution.manifest.v2+json, */*;q=0.1');
    assert.equal(origin.seen[1]?.accept, DEFAULT_MANIFEST_ACCEPT);
    for (const t of ['oci.image.index', 'oci.image.manifest', 'manifest.list.v2', 'distribution.manifest.v2']) assert.ok(DEFAULT_MANIFEST_ACCEPT.includes(t));
  });

  void test('Docker Hub: one-component names get library/', async () => {
    origin.reset('none');
    const hub = { ...registry, dockerHub: true };
    assert.equal(upstreamName(hub, 'alpine'), 'library/alpine');
    assert.equal(upstreamName(hub, 'user/app'), 'user/app');
    assert.equal(upstreamName(registry, 'alpine'), 'alpine');
    await get(hub, 'alpine');
    assert.equal(origin.seen[0]?.path, '/v2/library/alpine/manifests/1');
  });

  void test('manifest cap: over maxBytes → MANIFEST_TOO_LARGE (Content-Length and chunked)', async () => {
    origin.reset('none');
    for (const ref of ['big', 'chunked']) {
      await assert.rejects(get(registry, 'test/app', agent, { ref, maxBytes: 4096 }), (err) => isLayerswarmError(err, 'MANIFEST_TOO_LARGE'), ref);
    }
    assert.equal((await get(registry, 'test/app', agent, { ref: 'chunked', maxBytes: 5000 })).body.length, 5000);
  });

  void test('404s: MANIFEST_UNKNOWN, or NAME_UNKNOWN per the origin code, message kept', async () => {
    origin.reset('none');
    await assert.rejects(get(registry, 'test/app', agent, { ref: 'nope' }), (err) => {
      assert.ok(isLayerswarmError(err, 'MANIFEST_UNKNOWN'));
      assert.deepEqual(err.detail, { upstreamStatus: 404, upstreamErrors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
      return true;
    });
    await assert.rejects(get(registry, 'test/app', agent, { ref: 'sha256:abc/x' }), (err) => isLayerswarmError(err, 'NAME_INVALID'));
  });

  void test('basic auth: agent credentials after the 401, then one round trip', async () => {
    origin.reset('basic');
    assert.deepEqual((await get(withCreds, 'test/app')).body, MANIFEST);
    assert.deepEqual(origin.seen.map((s) => s.authorization), [undefined, `Basic ${b64('alice:secret')}`]);
    await get(withCreds, 'test/other');
    assert.equal(origin.seen.length, 3);
    assert.equal(origin.seen[2]?.authorization, `Basic ${b64('alice:secret')}`);
  });

  void test("basic auth: the client's own credentials; anonymous gets the origin's challenge relayed", async () => {
    origin.reset('basic');
    await get(registry, 'test/app', identityFromAuthorization(`Basic ${b64('alice:secret')}`));
    await assert.rejects(get(registry, 'test/app'), (err) => {
      assert.ok(isLayerswarmError(err, 'UNAUTHORIZED'));
      assert.equal(err.headers['WWW-Authenticate'], 'Basic realm="basic-realm"');
      return true;
    });
    await assert.rejects(get(registry, 'test/app', identityFromAuthorization(`Basic ${b64('alice:wrong')}`)), (err) =>
      isLayerswarmError(err, 'UNAUTHORIZED') && err.headers['WWW-Authenticate'] === 'Basic realm="basic-realm"');
  });

  void test('token auth, anonymous: GET token; the token is cached; another repo needs one registry round trip', async () => {
    origin.reset('token');
    await get(registry, 'public/app');
    assert.deepEqual(origin.tokenRequests, [{ method: 'GET', scope: 'repository:public/app:pull' }]);
    assert.equal(origin.seen.length, 2);
    await get(registry, 'public/app', agent, { method: 'HEAD' });
    assert.equal(origin.tokenRequests.length, 1);
    assert.equal(origin.seen.length, 3); // one round trip
    await get(registry, 'public/other');
    assert.equal(origin.tokenRequests.length, 2);
    assert.equal(origin.seen.length, 4); // the remembered challenge: token first, then one request
    assert.deepEqual(events.filter((e) => e.kind === 'token').map((e) => e.status), [200, 200]);
  });

  void test('token auth with credentials: OAuth2 POST; 405 → GET with Basic', async () => {
    origin.reset('token');
    await get(withCreds, 'test/app');
    assert.deepEqual(origin.tokenRequests, [{ method: 'POST', user: 'alice', scope: 'repository:test/app:pull' }]);
    origin.reset('token');
    origin.postMode = '405';
    await get(withCreds, 'test/other');
    assert.deepEqual(origin.tokenRequests.map((r) => [r.method, r.user]), [['POST-405', undefined], ['GET', 'alice']]);
  });

  void test('token expiry (injected clock) → a new token', async () => {
    origin.reset('token');
    origin.expiresIn = 300;
    await get(registry, 'public/app');
    clock += 289_000;
    await get(registry, 'public/app');
    assert.equal(origin.tokenRequests.length, 1);
    clock += 1_000; // 290 s: within the 10 s safety margin
    await get(registry, 'public/app');
    assert.equal(origin.tokenRequests.length, 2);
  });

  void test('a cached token the origin refuses is dropped and refetched once', async () => {
    origin.reset('token');
    await get(registry, 'public/app');
    origin.tokens.clear(); // revoked
    await get(registry, 'public/app');
    assert.equal(origin.tokenRequests.length, 2);
    assert.deepEqual(origin.seen.map((s) => s.authorization?.slice(0, 6)), [undefined, 'Bearer', 'Bearer', 'Bearer']);
  });

  void test("client Bearer token is forwarded unchanged, and the client never fetches one", async () => {
    origin.reset('token');
    const res = await fetch(`${origin.url}/token?service=fake&scope=repository:test/app:pull`, {
      headers: { authorization: `Basic ${b64('alice:secret')}` },
    });
    const { token } = (await res.json()) as { token: string };
    origin.tokenRequests = [];
    const m = await get(registry, 'test/app', identityFromAuthorization(`Bearer ${token}`));
    assert.deepEqual(m.body, MANIFEST);
    assert.deepEqual(origin.seen.map((s) => s.authorization), [`Bearer ${token}`]);
    assert.equal(origin.tokenRequests.length, 0);
    // A token for another repository: the origin's 401 is relayed, still nothing fetched.
    await assert.rejects(get(registry, 'test/other', identityFromAuthorization(`Bearer ${token}`)), (err) =>
      isLayerswarmError(err, 'UNAUTHORIZED') && /error="insufficient_scope"/.test(err.headers['WWW-Authenticate'] ?? ''));
    assert.equal(origin.tokenRequests.length, 0);
  });

  void test('401 relay: anonymous on a private repository gets the Bearer challenge to answer itself', async () => {
    origin.reset('token');
    await assert.rejects(get(registry, 'test/private'), (err) => {
      assert.ok(isLayerswarmError(err, 'UNAUTHORIZED'));
      assert.equal(err.status, 401);
      assert.match(err.headers['WWW-Authenticate'] ?? '', new RegExp(`^Bearer realm="${origin.url}/token",service="fake",scope="repository:test/private:pull"`));
      return true;
    });
    assert.equal(origin.tokenRequests.length, 1);
    assert.equal(origin.seen.length, 2); // probe, then once with the (useless) anonymous token
  });

  void test('wrong agent credentials → UNAUTHORIZED from the token service, with the challenge', async () => {
    origin.reset('token');
    const wrong = { ...registry, credentials: { username: 'alice', password: 'nope' } };
    await assert.rejects(get(wrong, 'test/app'), (err) =>
      isLayerswarmError(err, 'UNAUTHORIZED') && (err.headers['WWW-Authenticate'] ?? '').startsWith('Bearer realm='));
  });

  void test('wrong credentials answered up front (remembered challenge) still relay a challenge for this repository', async () => {
    origin.reset('token');
    await get(registry, 'public/app');
    await assert.rejects(get(registry, 'test/app', identityFromAuthorization(`Basic ${b64('alice:wrong')}`)), (err) => {
      assert.ok(isLayerswarmError(err, 'UNAUTHORIZED'));
      assert.equal(err.headers['WWW-Authenticate'], `Bearer realm="${origin.url}/token",service="fake",scope="repository:test/app:pull"`);
      return true;
    });
    assert.equal(origin.seen.length, 2); // the failed token request cost no registry round trip
    // A fresh token refused for the same challenge is not fetched again: one token request, one registry request.
    await assert.rejects(get(registry, 'test/private'), (err) => isLayerswarmError(err, 'UNAUTHORIZED'));
    assert.equal(origin.seen.length, 3);
    assert.equal(origin.tokenRequests.length, 4); // public/app, alice's POST and GET fallback, test/private
  });

  void test('ping: /v2/ answered for identities with credentials; the anonymous get the challenge relayed', async () => {
    const ping = (reg: UpstreamRegistry, identity: Identity) => client.ping(reg, { identity, signal: AbortSignal.timeout(5000) });
    origin.reset('none');
    await ping(registry, agent);
    origin.reset('basic');
    await ping(withCreds, agent);
    await ping(registry, identityFromAuthorization(`Basic ${b64('alice:secret')}`));
    await assert.rejects(ping(registry, identityFromAuthorization(`Basic ${b64('alice:nope')}`)), (err) => isLayerswarmError(err, 'UNAUTHORIZED'));
    origin.reset('token');
    await assert.rejects(ping(registry, agent), (err) =>
      isLayerswarmError(err, 'UNAUTHORIZED') && err.headers['WWW-Authenticate'] === `Bearer realm="${origin.url}/token",service="fake"`);
    assert.equal(origin.tokenRequests.length, 0);
    await ping(withCreds, agent);
    assert.deepEqual(origin.tokenRequests, [{ method: 'POST', user: 'alice', scope: '' }]);
    assert.deepEqual(events.filter((e) => e.kind === 'ping').map((e) => e.status), [200, 401, 200, 200, 401, 401, 200]);
  });

  void test('identities do not share tokens', async () => {
    origin.reset('token');
    await get(withCreds, 'test/app');
    await get(withCreds, 'test/app', identityFromAuthorization(`Basic ${b64('alice:secret')}`));
    assert.equal(origin.tokenRequests.length, 2);
  });

  void test('debug logs show each request but never a secret', async () => {
    origin.reset('token');
    let out = '';
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { out += chunk.toString(); cb(); } });
    const logged = createUpstreamClient({
      logger: createLogger({ level: 'debug' }, sink),
      timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000, tokenMs: 1000 },
      userAgent: 'layerswarm-test',
    });
    try {
      const opts = { method: 'GET' as const, accept: undefined, maxBytes: 1 << 20, signal: AbortSignal.timeout(5000) };
      await logged.manifest(withCreds, 'test/app', '1', { ...opts, identity: agent });
      await logged.manifest(registry, 'test/app', '1', { ...opts, identity: identityFromAuthorization(`Basic ${b64('alice:secret')}`) });
      await assert.rejects(logged.manifest(registry, 'test/app', '1', { ...opts, identity: identityFromAuthorization('Bearer clienttoken') }));
    } finally {
      await logged.close();
    }
    assert.match(out, /upstream request/);
    assert.match(out, /token request/);
    for (const secret of ['secret', b64('alice:secret'), 'clienttoken', ...origin.tokens.keys()]) {
      assert.ok(!out.includes(secret), `log contains ${secret}`);
    }
  });
});
