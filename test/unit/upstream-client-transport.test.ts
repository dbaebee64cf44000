// The upstream client's blobs, redirects, timeouts and error mapping, against in-process fake origins.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isLayerswarmError, type ErrorCode } from '../../shared/errors.ts';
import { createUpstreamClient, type UpstreamRequestEvent } from '../../agent/upstream/client.ts';
import type { Identity, UpstreamClient, UpstreamRegistry } from '../../agent/upstream/types.ts';

const BLOB = randomBytes(64 * 1024 + 123);
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const BEARER: Identity = { kind: 'bearer', token: 'client-token', key: 'bearer:test' };
const TIMEOUTS = { connectMs: 200, headersMs: 200, bodyIdleMs: 300, tokenMs: 500 };
const LARGE = randomBytes(4 * 1024 * 1024);

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const is = (code: ErrorCode) => (err: unknown): boolean => {
  assert.ok(isLayerswarmError(err, code), `expected ${code}, got ${String(err)}`);
  return true;
};

/** Serves BLOB with proper Range support. */
function sendBlob(req: FastifyRequest, reply: FastifyReply, honourRange = true): unknown {
  reply.header('docker-content-digest', DIGEST).header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (!m || !honourRange) return reply.send(BLOB);
  const start = Number(m[1]);
  if (start >= BLOB.length) return reply.code(416).send();
  return reply.code(206).header('content-range', `bytes ${start}-${BLOB.length - 1}/${BLOB.length}`).send(BLOB.subarray(start));
}

describe('upstream client: blobs and transport', () => {
  const app: FastifyInstance = Fastify({ forceCloseConnections: true });
  const storage: FastifyInstance = Fastify({ forceCloseConnections: true });
  let client: UpstreamClient;
  let registry: UpstreamRegistry;
  let storageUrl = '';
  const storageAuth: Array<string | undefined> = [];
  const events: UpstreamRequestEvent[] = [];
  const closedResponses: string[] = [];
  const blob = (name: string, offset = 0, identity: Identity = { kind: 'agent' }, signal = AbortSignal.timeout(5000)) =>
    client.blob(registry, name, DIGEST, { identity, offset, signal });

  before(async () => {
    storage.get('/blob', (req, reply) => {
      storageAuth.push(req.headers.authorization);
      return sendBlob(req, reply);
    });
    storageUrl = await storage.listen({ host: '127.0.0.2', port: 0 }).catch(() => storage.listen({ host: '127.0.0.1', port: 0 }));

    app.get('/v2/*', (req, reply) => {
      const path = req.url.split('?')[0] as string;
      const name = /^\/v2\/(.+)\/blobs\/[^/]+$/.exec(path)?.[1] ?? '';
      reply.raw.on('close', () => closedResponses.push(name));
      switch (name) {
        case 'test/app': return sendBlob(req, reply);
        case 'test/norange': return sendBlob(req, reply, false);
        case 'test/large': return reply.send(LARGE);
        case 'test/badrange':
          return reply.code(206).header('content-range', `bytes 0-${BLOB.length - 1}/${BLOB.length}`).send(BLOB);
        case 'test/redirect': return reply.redirect(`${storageUrl}/blob`, 307);
        case 'test/redirect-same': return reply.redirect(`/v2/test/app/blobs/${DIGEST}`, 302);
        case 'test/loop': return reply.redirect(req.url, 307);
        case 'test/ftp': return reply.redirect('ftp://example.com/blob', 307);
        case 'test/gzip': return reply.header('content-encoding', 'gzip').send(BLOB);
        case 'test/denied': return reply.code(403).send({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] });
        case 'test/missing': return reply.code(404).send({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }] });
        case 'test/norepo': return reply.code(404).send({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known' }] });
        case 'test/ratelimit':
          return reply.code(429).header('retry-after', '30').send({ errors: [{ code: 'TOOMANYREQUESTS', message: 'pull rate limit' }] });
        case 'test/broken': return reply.code(503).send('upstream connect error');
        case 'test/teapot': return reply.code(418).send();
        case 'test/slowheaders':
          reply.hijack(); // never answers
          return;
        case 'test/stall':
        case 'test/cut':
          reply.hijack();
          reply.raw.writeHead(200, { 'content-length': String(BLOB.length) });
          reply.raw.write(BLOB.subarray(0, 1000));
          if (name === 'test/cut') setTimeout(() => reply.raw.socket?.destroy(), 20);
          return;
        default: return reply.code(404).send();
      }
    });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    registry = { host: new URL(url).host, baseUrl: url, dockerHub: false };
    client = createUpstreamClient({ timeouts: TIMEOUTS, userAgent: 'layerswarm-test', onRequest: (e) => events.push(e) });
  });
  after(async () => {
    await client.close();
    await app.close();
    await storage.close();
  });

  void test('whole blob: 200, size from Content-Length, exact bytes', async () => {
    const r = await blob('test/app');
    assert.equal(r.size, BLOB.length);
    assert.deepEqual(await collect(r.body), BLOB);
    assert.deepEqual(await client.headBlob(registry, 'test/app', DIGEST, { identity: { kind: 'agent' }, signal: AbortSignal.timeout(5000) }), { size: BLOB.length });
  });

  void test('resume: Range bytes=N- → 206 from N, size is the total', async () => {
    const r = await blob('test/app', 40_000);
    assert.equal(r.size, BLOB.length);
    assert.deepEqual(await collect(r.body), BLOB.subarray(40_000));
  });

  void test('a server that ignores Range (200) or starts elsewhere → UPSTREAM_ERROR', async () => {
    await assert.rejects(blob('test/norange', 10), is('UPSTREAM_ERROR'));
    await assert.rejects(blob('test/badrange', 10), is('UPSTREAM_ERROR'));
    await assert.rejects(blob('test/badrange', 0), is('UPSTREAM_ERROR')); // 206 for a request without Range
    await assert.rejects(blob('test/app', BLOB.length + 5), is('RANGE_NOT_SATISFIABLE'));
  });

  void test('redirect to another host: followed without the Authorization header', async () => {
    storageAuth.length = 0;
    const before = events.length;
    const r = await blob('test/redirect', 0, BEARER);
    assert.deepEqual(await collect(r.body), BLOB);
    assert.deepEqual(storageAuth, [undefined]);
    assert.deepEqual(events.slice(before).map((e) => e.status), [307, 200]);
    const resumed = await blob('test/redirect', 100, BEARER);
    assert.deepEqual(await collect(resumed.body), BLOB.subarray(100));
  });

  void test('same-origin redirect keeps Authorization; loops and odd schemes fail', async () => {
    const r = await blob('test/redirect-same', 0, BEARER);
    assert.deepEqual(await collect(r.body), BLOB);
    await assert.rejects(blob('test/loop'), (err) => is('UPSTREAM_ERROR')(err) && /redirects/.test((err as Error).message));
    await assert.rejects(blob('test/ftp'), is('UPSTREAM_ERROR'));
  });

  void test('a Content-Encoding is refused: bytes must be identity-encoded', async () => {
    await assert.rejects(blob('test/gzip'), is('UPSTREAM_ERROR'));
  });

  void test('status mapping: 403, 404 (BLOB_UNKNOWN / NAME_UNKNOWN), 429 with Retry-After, 5xx, other', async () => {
    await assert.rejects(blob('test/denied'), (err) => {
      is('DENIED')(err);
      assert.match((err as Error).message, /requested access to the resource is denied/);
      return true;
    });
    await assert.rejects(blob('test/missing'), is('BLOB_UNKNOWN'));
    await assert.rejects(blob('test/norepo'), is('NAME_UNKNOWN'));
    await assert.rejects(client.headBlob(registry, 'test/missing', DIGEST, { identity: { kind: 'agent' }, signal: AbortSignal.timeout(5000) }), is('BLOB_UNKNOWN'));
    await assert.rejects(blob('test/ratelimit'), (err) => {
      is('TOOMANYREQUESTS')(err);
      assert.equal((err as { headers: Record<string, string> }).headers['Retry-After'], '30');
      assert.deepEqual((err as { detail: unknown }).detail, {
        upstreamStatus: 429, upstreamErrors: [{ code: 'TOOMANYREQUESTS', message: 'pull rate limit' }],
      });
      return true;
    });
    await assert.rejects(blob('test/broken'), (err) => is('UPSTREAM_UNAVAILABLE')(err) && /upstream connect error/.test((err as Error).message));
    await assert.rejects(blob('test/teapot'), is('UPSTREAM_ERROR'));
  });

  void test('slow headers → UPSTREAM_TIMEOUT, quickly', async () => {
    const started = Date.now();
    await assert.rejects(blob('test/slowheaders'), is('UPSTREAM_TIMEOUT'));
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  });

  void test('body stall → the stream fails with UPSTREAM_TIMEOUT', async () => {
    const r = await blob('test/stall');
    const started = Date.now();
    await assert.rejects(collect(r.body), is('UPSTREAM_TIMEOUT'));
    assert.ok(Date.now() - started < 1000);
  });

  void test('a reader that does not ask for data is not a stall (backpressure)', async () => {
    const r = await blob('test/large');
    await new Promise((res) => setTimeout(res, 3 * TIMEOUTS.bodyIdleMs));
    assert.deepEqual(await collect(r.body), LARGE);
  });

  void test('connection cut mid-body → UPSTREAM_UNAVAILABLE', async () => {
    const r = await blob('test/cut');
    await assert.rejects(collect(r.body), is('UPSTREAM_UNAVAILABLE'));
  });

  void test('connection refused → UPSTREAM_UNAVAILABLE', async () => {
    const port = await closedPort();
    const dead = { host: `127.0.0.1:${port}`, baseUrl: `http://127.0.0.1:${port}`, dockerHub: false };
    await assert.rejects(client.blob(dead, 'test/app', DIGEST, { identity: { kind: 'agent' }, offset: 0, signal: AbortSignal.timeout(5000) }), is('UPSTREAM_UNAVAILABLE'));
    await assert.rejects(client.manifest(dead, 'test/app', 'latest', {
      identity: { kind: 'agent' }, method: 'GET', accept: undefined, maxBytes: 1000, signal: AbortSignal.timeout(5000),
    }), is('UPSTREAM_UNAVAILABLE'));
  });

  void test('caller abort → ABORTED, before the headers and while streaming', async () => {
    const ac = new AbortController();
    const p = blob('test/slowheaders', 0, { kind: 'agent' }, ac.signal);
    setTimeout(() => ac.abort(), 30);
    await assert.rejects(p, is('ABORTED'));
    await assert.rejects(blob('test/app', 0, { kind: 'agent' }, AbortSignal.abort()), is('ABORTED'));

    const ac2 = new AbortController();
    const r = await blob('test/stall', 0, { kind: 'agent' }, ac2.signal);
    setTimeout(() => ac2.abort(), 30);
    await assert.rejects(collect(r.body), is('ABORTED'));
  });

  void test('a caller deadline (timeout signal) → UPSTREAM_TIMEOUT', async () => {
    await assert.rejects(blob('test/slowheaders', 0, { kind: 'agent' }, AbortSignal.timeout(50)), is('UPSTREAM_TIMEOUT'));
  });

  void test('destroying the body cancels the upstream request', async () => {
    closedResponses.length = 0;
    const r = await blob('test/stall');
    r.body.destroy();
    for (let i = 0; i < 50 && !closedResponses.includes('test/stall'); i++) await new Promise((res) => setTimeout(res, 10));
    assert.ok(closedResponses.includes('test/stall'));
  });

  void test('invalid names and digests never reach the origin', async () => {
    await assert.rejects(client.blob(registry, '../etc', DIGEST, { identity: { kind: 'agent' }, offset: 0, signal: AbortSignal.timeout(1000) }), is('NAME_INVALID'));
    await assert.rejects(client.blob(registry, 'test/app', 'sha256:../../x', { identity: { kind: 'agent' }, offset: 0, signal: AbortSignal.timeout(1000) }), is('DIGEST_INVALID'));
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

void test('a request that meets a connection the server has just closed is sent once more (GET/HEAD only)', async () => {
  // The first connection is dropped after the request arrives ("other side closed"); later ones are answered.
  let connections = 0;
  const server = createServer((socket) => {
    const first = ++connections === 1;
    socket.once('data', () => {
      if (first) socket.destroy();
      else socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${BLOB.length}\r\nDocker-Content-Digest: ${DIGEST}\r\nConnection: close\r\n\r\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  const url = `http://127.0.0.1:${address.port}`;
  const client = createUpstreamClient({ timeouts: TIMEOUTS, userAgent: 'layerswarm-test' });
  try {
    const head = await client.headBlob({ host: new URL(url).host, baseUrl: url, dockerHub: false }, 'test/app', DIGEST, { identity: { kind: 'agent' }, signal: AbortSignal.timeout(5000) });
    assert.equal(head.size, BLOB.length);
    assert.equal(connections, 2, 'one retry on a fresh connection');
  } finally {
    await client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
