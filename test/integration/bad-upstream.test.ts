// Bad input from the origin, the disk and the client: wrong bytes, cut or stalled transfers, oversize manifests,
// a full disk, a client that goes away. Each must end in a clear error or a correct answer, with nothing corrupt
// or partial left in the store. The origin here is an in-process fake, because a real registry cannot misbehave.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { sha256Digest } from '../../shared/digest.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { ociCode, rawRequest } from '../fixtures/http.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';
import { run } from '../fixtures/process.ts';

type Behaviour = 'ok' | 'corrupt' | 'cut-once' | 'cut-always' | 'stall-headers' | 'stall-body';

const MiB = 1024 * 1024;
const blobs = new Map<string, { data: Buffer; behaviour: Behaviour; gets: number; ranges: string[] }>();
const manifests = new Map<string, { body: Buffer; claimedDigest?: string; chunked?: boolean }>();

function addBlob(size: number, behaviour: Behaviour): { digest: string; data: Buffer } {
  const data = randomBytes(size);
  const digest = sha256Digest(data).value;
  blobs.set(digest, { data, behaviour, gets: 0, ranges: [] });
  return { digest, data };
}

async function fakeOrigin(): Promise<FastifyInstance> {
  const app = Fastify({ exposeHeadRoutes: false });
  app.get('/v2/', async () => ({}));
  app.get('/v2/test/app/blobs/:digest', (req, reply) => {
    const blob = blobs.get((req.params as { digest: string }).digest);
    if (!blob) return reply.code(404).send({ errors: [{ code: 'BLOB_UNKNOWN', message: 'unknown' }] });
    blob.gets++;
    const range = req.headers.range;
    if (range) blob.ranges.push(range);
    if (blob.behaviour === 'stall-headers') return; // never answers
    const start = range ? Number(/bytes=(\d+)-/.exec(range)?.[1] ?? 0) : 0;
    const raw = reply.raw;
    raw.writeHead(range ? 206 : 200, {
      'content-length': blob.data.length - start,
      'content-type': 'application/octet-stream',
      ...(range ? { 'content-range': `bytes ${start}-${blob.data.length - 1}/${blob.data.length}` } : {}),
    });
    let body = blob.data.subarray(start);
    if (blob.behaviour === 'corrupt') {
      body = Buffer.from(body);
      body.writeUInt8(body.readUInt8(body.length >> 1) ^ 0xff, body.length >> 1);
    }
    if (blob.behaviour === 'stall-body') {
      raw.write(body.subarray(0, 1000));
      return;
    }
    if (blob.behaviour === 'cut-always' || (blob.behaviour === 'cut-once' && blob.gets === 1)) {
      raw.write(body.subarray(0, body.length >> 1), () => raw.destroy());
      return;
    }
    raw.end(body);
  });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/test/app/manifests/:ref',
    handler: (req, reply) => {
      const m = manifests.get((req.params as { ref: string }).ref);
      if (!m) return reply.code(404).send({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown' }] });
      const headers: Record<string, string | number> = { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': m.claimedDigest ?? sha256Digest(m.body).value };
      if (!m.chunked) headers['content-length'] = m.body.length;
      reply.raw.writeHead(200, headers);
      if (req.method === 'HEAD') return reply.raw.end();
      if (m.chunked) {
        for (let i = 0; i < m.body.length; i += 64 * 1024) reply.raw.write(m.body.subarray(i, i + 64 * 1024));
        return reply.raw.end();
      }
      reply.raw.end(m.body);
    },
  });
  app.route({ method: 'HEAD', url: '/v2/test/app/blobs/:digest', handler: (req, reply) => {
    const blob = blobs.get((req.params as { digest: string }).digest);
    reply.code(blob ? 200 : 404).header('content-length', blob?.data.length ?? 0).send();
  } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
}

async function storeFiles(agent: TestAgent): Promise<{ blobs: string[]; tmp: string[] }> {
  const list = async (d: string): Promise<string[]> => readdir(d).catch(() => []);
  return { blobs: await list(join(agent.dataDir, 'blobs', 'sha256')), tmp: await list(join(agent.dataDir, 'tmp')) };
}

describe('bad input', () => {
  let origin: FastifyInstance;
  let originUrl: string;
  let agent: TestAgent;

  before(async () => {
    origin = await fakeOrigin();
    const address = origin.server.address();
    assert.ok(typeof address === 'object' && address);
    originUrl = `http://127.0.0.1:${address.port}`;
    agent = await startTestAgent({ origin: originUrl, overrides: { upstreamHeadersTimeout: 500, upstreamIdleTimeout: 500, fetchAttempts: 3 } });
  });
  after(async () => {
    await agent?.cleanup();
    await origin?.close();
  });

  test('bytes that do not match the digest: 502, nothing cached, asked again next time', async () => {
    const { digest } = addBlob(MiB, 'corrupt');
    for (let i = 1; i <= 2; i++) {
      const res = await rawRequest(agent.url, `/v2/test/app/blobs/${digest}`);
      assert.equal(res.status, 502);
      assert.equal(ociCode(res), 'DIGEST_INVALID');
      assert.equal(blobs.get(digest)?.gets, i);
    }
    const files = await storeFiles(agent);
    assert.ok(!files.blobs.includes(digest.slice(7)));
    assert.deepEqual(files.tmp, []);
  });

  test('a transfer cut mid-stream is resumed with Range and the client gets every byte, verified', async () => {
    const { digest, data } = addBlob(2 * MiB, 'cut-once');
    const res = await rawRequest(agent.url, `/v2/test/app/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(data));
    const blob = blobs.get(digest);
    assert.equal(blob?.gets, 2);
    assert.match(blob?.ranges[0] ?? '', /^bytes=\d+-$/);
    assert.ok(Number(/=(\d+)-/.exec(blob?.ranges[0] ?? '')?.[1]) > 0, 'resumed from the bytes already received');
  });

  test('a transfer that keeps failing ends in a clear 502 after the configured attempts, nothing left behind', async () => {
    const { digest } = addBlob(MiB, 'cut-always');
    const res = await rawRequest(agent.url, `/v2/test/app/blobs/${digest}`);
    assert.ok(res.status === 502 || res.status === 504, String(res.status));
    assert.equal(blobs.get(digest)?.gets, 3);
    const files = await storeFiles(agent);
    assert.ok(!files.blobs.includes(digest.slice(7)));
    assert.deepEqual(files.tmp, []);
  });

  test('an origin that never answers, or stalls mid-body, times out with 504 instead of hanging', async () => {
    const silent = addBlob(1000, 'stall-headers');
    const r1 = await rawRequest(agent.url, `/v2/test/app/blobs/${silent.digest}`, { timeoutMs: 20_000 });
    assert.equal(r1.status, 504);
    const stalled = addBlob(MiB, 'stall-body');
    const r2 = await rawRequest(agent.url, `/v2/test/app/blobs/${stalled.digest}`, { timeoutMs: 20_000 });
    assert.equal(r2.status, 504);
    assert.deepEqual((await storeFiles(agent)).tmp, []);
  });

  test('manifests: wrong digest claims and oversize bodies are refused and not cached', async () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', layers: [] }));
    manifests.set('lying', { body, claimedDigest: `sha256:${'e'.repeat(64)}` });
    const lying = await rawRequest(agent.url, '/v2/test/app/manifests/lying');
    assert.equal(lying.status, 502);
    assert.equal(ociCode(lying), 'DIGEST_INVALID');
    const other = Buffer.from(JSON.stringify({ schemaVersion: 2, note: 'other' }));
    manifests.set(`sha256:${'f'.repeat(64)}`, { body: other });
    const byDigest = await rawRequest(agent.url, `/v2/test/app/manifests/sha256:${'f'.repeat(64)}`);
    assert.equal(byDigest.status, 502);
    for (const chunked of [false, true]) {
      manifests.set(`huge${chunked}`, { body: Buffer.alloc(5 * MiB, 0x20), chunked });
      const huge = await rawRequest(agent.url, `/v2/test/app/manifests/huge${chunked}`);
      assert.equal(huge.status, 413, `chunked=${chunked}`);
      assert.equal(ociCode(huge), 'SIZE_INVALID');
    }
  });

  test('a client that disconnects mid-stream leaves the store consistent and the blob servable', async () => {
    const { digest, data } = addBlob(32 * MiB, 'ok');
    const url = new URL(agent.url);
    // Disconnect during the cold fetch, then during a cache read.
    for (let round = 0; round < 2; round++) {
      await new Promise<void>((resolve) => {
        const req = request({ host: url.hostname, port: url.port, path: `/v2/test/app/blobs/${digest}` }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => resolve());
        req.end();
        if (round === 0) setImmediate(() => { req.destroy(); resolve(); });
      });
    }
    const res = await rawRequest(agent.url, `/v2/test/app/blobs/${digest}`);
    assert.ok(res.body.equals(data));
    assert.equal(blobs.get(digest)?.gets, 1, 'the download went on after the first client left');
    assert.deepEqual((await storeFiles(agent)).tmp, []);
  });
});

describe('disk full', { skip: process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false }, () => {
  let dir: string;
  let origin: FastifyInstance;
  let agent: TestAgent | undefined;
  before(async () => {
    dir = await makeTempDir('disk-full-');
    await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]);
    origin = await fakeOrigin();
  });
  after(async () => {
    await agent?.stop();
    await origin?.close();
    await run('umount', [dir]).catch(() => undefined);
    await removeTempDir(dir);
  });

  test('ENOSPC → 507 with a clear error, no partial file, small blobs still work', async () => {
    const address = origin.server.address();
    assert.ok(typeof address === 'object' && address);
    agent = await startTestAgent({ origin: `http://127.0.0.1:${address.port}`, dataDir: join(dir, 'data'), overrides: { storeMaxBytes: 1024 * MiB } });
    const big = addBlob(6 * MiB, 'ok');
    const res = await rawRequest(agent.url, `/v2/test/app/blobs/${big.digest}`);
    assert.equal(res.status, 507);
    assert.match(JSON.parse(res.body.toString()).errors[0].message, /space|full/i);
    const files = await storeFiles(agent);
    assert.deepEqual(files.tmp, []);
    assert.ok(!files.blobs.includes(big.digest.slice(7)));
    const small = addBlob(256 * 1024, 'ok');
    const ok = await rawRequest(agent.url, `/v2/test/app/blobs/${small.digest}`);
    assert.equal(ok.status, 200);
    assert.ok(ok.body.equals(small.data));
  });
});
