import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDigest, parseName, parseReference, parseTag, sha256Digest } from '../../shared/digest.ts';
import { isLayerswarmError } from '../../shared/errors.ts';

const HEX = 'a'.repeat(64);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isLayerswarmError(err) ? err.code : 'not a LayerswarmError';
  }
}

describe('digests', () => {
  test('accepts sha256 with 64 lowercase hex', () => {
    assert.deepEqual(parseDigest(`sha256:${HEX}`), { algorithm: 'sha256', hex: HEX, value: `sha256:${HEX}` });
  });
  test('rejects path traversal, bad lengths, case and unknown algorithms', () => {
    assert.equal(code(() => parseDigest('sha256:../../x')), 'DIGEST_INVALID');
    assert.equal(code(() => parseDigest(`sha256:${HEX}/../../etc`)), 'DIGEST_INVALID');
    assert.equal(code(() => parseDigest('sha256:abc')), 'DIGEST_INVALID');
    assert.equal(code(() => parseDigest(`sha256:${'A'.repeat(64)}`)), 'DIGEST_INVALID');
    assert.equal(code(() => parseDigest(`sha256:${HEX}0`)), 'DIGEST_INVALID');
    assert.equal(code(() => parseDigest(`sha512:${'a'.repeat(128)}`)), 'UNSUPPORTED');
    assert.equal(code(() => parseDigest(`md5:${'a'.repeat(32)}`)), 'UNSUPPORTED');
    assert.equal(code(() => parseDigest('nocolon')), 'DIGEST_INVALID');
    assert.equal(code(() => parseDigest(`sha256:${'a'.repeat(500)}`)), 'DIGEST_INVALID');
  });
  test('sha256Digest hashes', () => {
    assert.equal(sha256Digest('').hex, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('names and tags', () => {
  test('accepts the distribution grammar', () => {
    for (const n of ['app', 'test/app', 'library/busybox', 'a.b/c_d/e__f/g--h', 'x1/y2/z3']) assert.equal(parseName(n), n);
  });
  test('rejects invalid names', () => {
    for (const n of ['', 'App', '../etc', 'a/../b', 'a//b', '/a', 'a/', 'a..b', '.a', 'a b', 'a%2fb', 'a'.repeat(256)]) {
      assert.equal(code(() => parseName(n)), 'NAME_INVALID', n);
    }
  });
  test('tags and references', () => {
    assert.equal(parseTag('v1.2.3-rc_1'), 'v1.2.3-rc_1');
    assert.equal(code(() => parseTag('.hidden')), 'NAME_INVALID');
    assert.equal(code(() => parseTag('a'.repeat(129))), 'NAME_INVALID');
    assert.deepEqual(parseReference('latest'), { kind: 'tag', tag: 'latest' });
    assert.equal(parseReference(`sha256:${HEX}`).kind, 'digest');
  });
});
