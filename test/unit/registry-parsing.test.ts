import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange } from '../../agent/registry/range.ts';
import { parseOciPath } from '../../agent/registry/oci-path.ts';
import { UpstreamResolver } from '../../agent/upstream-resolver.ts';
import { isLayerswarmError } from '../../shared/errors.ts';

const errCode = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return isLayerswarmError(err) ? err.code : 'other';
  }
  return undefined;
};

describe('Range', () => {
  test('single ranges', () => {
    assert.equal(parseRange(undefined, 100), undefined);
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=90-1000', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-1000', 100), { start: 0, end: 99 });
  });
  test('multiple ranges are answered whole', () => {
    assert.equal(parseRange('bytes=0-1,5-6', 100), undefined);
  });
  test('unsatisfiable → 416 with Content-Range', () => {
    for (const h of ['bytes=100-', 'bytes=5-4', 'bytes=-0', 'bytes=-', 'items=0-1', 'bytes=abc']) {
      try {
        parseRange(h, 100);
        assert.fail(h);
      } catch (err) {
        assert.ok(isLayerswarmError(err, 'RANGE_NOT_SATISFIABLE'), h);
        assert.equal(err.status, 416);
        assert.equal(err.headers['Content-Range'], 'bytes */100');
      }
    }
  });
});

describe('OCI paths', () => {
  test('parses names with slashes', () => {
    assert.deepEqual(parseOciPath('/v2/a/b/c/manifests/latest'), { name: 'a/b/c', kind: 'manifests', reference: 'latest' });
    assert.deepEqual(parseOciPath('/v2/app/blobs/sha256:x'), { name: 'app', kind: 'blobs', reference: 'sha256:x' });
  });
  test('rejects traversal, encoding, oversize and push paths', () => {
    assert.equal(errCode(() => parseOciPath('/v2/../etc/blobs/sha256:x')), 'NAME_INVALID');
    assert.equal(errCode(() => parseOciPath('/v2/a%2F..%2Fb/blobs/sha256:x')), 'NAME_INVALID');
    assert.equal(errCode(() => parseOciPath(`/v2/${'a'.repeat(300)}/manifests/x`)), 'NAME_INVALID');
    assert.equal(errCode(() => parseOciPath('/v2/app/blobs/uploads/')), 'UNSUPPORTED');
    assert.equal(errCode(() => parseOciPath('/v2/_catalog')), 'UNSUPPORTED');
  });
});

describe('upstream resolver', () => {
  const resolver = new UpstreamResolver({
    origin: 'http://127.0.0.1:5000',
    registries: [{ host: 'private.example', url: 'https://private.example', username: 'u', password: 'p' }, { host: 'docker.io', url: 'https://docker.io' }],
    allowAnyRegistry: false,
  });
  test('no ns → default origin; ns selects a configured registry', () => {
    assert.equal(resolver.resolve(undefined).baseUrl, 'http://127.0.0.1:5000');
    assert.equal(resolver.resolve('127.0.0.1:5000').baseUrl, 'http://127.0.0.1:5000');
    assert.deepEqual(resolver.resolve('private.example').credentials, { username: 'u', password: 'p' });
  });
  test('Docker Hub aliases map to registry-1.docker.io with library/ naming', () => {
    for (const ns of ['docker.io', 'index.docker.io', 'registry-1.docker.io']) {
      const r = resolver.resolve(ns);
      assert.equal(r.baseUrl, 'https://registry-1.docker.io');
      assert.equal(r.dockerHub, true);
    }
  });
  test('unconfigured registries are refused unless allowed; bad ns is invalid', () => {
    assert.equal(errCode(() => resolver.resolve('evil.example')), 'REGISTRY_NOT_ALLOWED');
    assert.equal(errCode(() => resolver.resolve('a/b')), 'NAME_INVALID');
    const open = new UpstreamResolver({ origin: 'https://o.example', registries: [], allowAnyRegistry: true });
    assert.equal(open.resolve('any.example:5443').baseUrl, 'https://any.example:5443');
  });
});
