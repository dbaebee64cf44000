import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatChallenge, parseWwwAuthenticate, selectChallenge, MAX_CHALLENGE_HEADER_LENGTH } from '../../agent/upstream/challenge.ts';

describe('parseWwwAuthenticate', () => {
  void test('distribution token challenge', () => {
    const [c, ...rest] = parseWwwAuthenticate(
      'Bearer realm="http://127.0.0.1:5090/token",service="test-registry",scope="repository:test/app:pull"',
    );
    assert.equal(rest.length, 0);
    assert.deepEqual(c, {
      scheme: 'bearer',
      realm: 'http://127.0.0.1:5090/token',
      service: 'test-registry',
      scope: 'repository:test/app:pull',
      params: { realm: 'http://127.0.0.1:5090/token', service: 'test-registry', scope: 'repository:test/app:pull' },
    });
  });

  void test('basic challenge', () => {
    assert.deepEqual(parseWwwAuthenticate('Basic realm="basic-realm"'), [
      { scheme: 'basic', realm: 'basic-realm', params: { realm: 'basic-realm' } },
    ]);
  });

  void test('scheme and parameter names are case-insensitive, values keep their case', () => {
    const [c] = parseWwwAuthenticate('BEARER Realm="https://Auth.Example/Token", SERVICE=Reg');
    assert.equal(c?.scheme, 'bearer');
    assert.ok(c?.scheme === 'bearer');
    assert.equal(c.realm, 'https://Auth.Example/Token');
    assert.equal(c.service, 'Reg');
    assert.deepEqual(parseWwwAuthenticate('bAsIc realm=x')[0]?.scheme, 'basic');
  });

  void test('unquoted values, including URL realms some origins send unquoted', () => {
    const [c] = parseWwwAuthenticate('Bearer realm=https://auth.example.com/token,service=registry.example.com');
    assert.ok(c?.scheme === 'bearer');
    assert.equal(c.realm, 'https://auth.example.com/token');
    assert.equal(c.service, 'registry.example.com');
  });

  void test('commas and escaped quotes inside quoted strings', () => {
    const [c] = parseWwwAuthenticate(
      'Bearer realm="https://a/token",scope="repository:a/b:pull,push repository:c:pull",error="say \\"hi\\", \\\\ok"',
    );
    assert.ok(c?.scheme === 'bearer');
    assert.equal(c.scope, 'repository:a/b:pull,push repository:c:pull');
    assert.equal(c.error, 'say "hi", \\ok');
  });

  void test('several challenges in one header (RFC 9110 example)', () => {
    const cs = parseWwwAuthenticate('Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"');
    assert.deepEqual(cs, [
      { scheme: 'other', name: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', realm: 'simple', params: { realm: 'simple' } },
    ]);
  });

  void test('Basic then Bearer, whitespace around = and commas, empty list elements', () => {
    const cs = parseWwwAuthenticate(' , Basic realm = "r" ,, Bearer realm="https://t/token" , service="s",');
    assert.equal(cs.length, 2);
    assert.equal(cs[0]?.scheme, 'basic');
    assert.ok(cs[1]?.scheme === 'bearer');
    assert.equal(cs[1].realm, 'https://t/token');
    assert.equal(cs[1].service, 's');
  });

  void test('several header values (repeated header)', () => {
    const cs = parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="https://b/token"']);
    assert.deepEqual(cs.map((c) => c.scheme), ['basic', 'bearer']);
  });

  void test('token68 and bare schemes', () => {
    assert.deepEqual(parseWwwAuthenticate('Negotiate abc/DEF+ghi=='), [
      { scheme: 'other', name: 'negotiate', params: {}, token68: 'abc/DEF+ghi==' },
    ]);
    assert.deepEqual(parseWwwAuthenticate('Negotiate, Basic'), [
      { scheme: 'other', name: 'negotiate', params: {} },
      { scheme: 'basic', params: {} },
    ]);
    assert.deepEqual(parseWwwAuthenticate('Custom abc, Basic realm="x"')[1], { scheme: 'basic', realm: 'x', params: { realm: 'x' } });
    // A Basic with a token68 is not a usable Basic challenge.
    assert.equal(parseWwwAuthenticate('Basic abc=')[0]?.scheme, 'other');
  });

  void test('duplicate parameters: the first wins; __proto__ is ignored', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://a/1", realm="https://evil/2", __proto__="x"');
    assert.ok(c?.scheme === 'bearer');
    assert.equal(c.realm, 'https://a/1');
    assert.deepEqual(Object.keys(c.params), ['realm']);
    assert.equal(Object.getPrototypeOf(c.params), Object.prototype);
  });

  void test('non-ASCII values (obs-text) are kept', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://a/ü", service=ß');
    assert.ok(c?.scheme === 'bearer');
    assert.equal(c.realm, 'https://a/ü');
    assert.equal(c.service, 'ß');
  });

  void test('Bearer error-only challenge (RFC 6750) has no realm', () => {
    const [c] = parseWwwAuthenticate('Bearer error="invalid_token"');
    assert.ok(c?.scheme === 'bearer');
    assert.equal(c.realm, undefined);
    assert.equal(c.error, 'invalid_token');
  });

  void describe('malformed input never throws and never yields a half-parsed challenge', () => {
    const cases: Array<[string, string, number]> = [
      ['empty', '', 0],
      ['whitespace', '   \t ', 0],
      ['only commas', ',,,', 0],
      ['unterminated quote', 'Bearer realm="https://a/token,service="s"', 0],
      ['missing value after a param', 'Bearer service="s", realm=', 0],
      ['missing value before a comma', 'Bearer service="s", realm=,scope=x', 0],
      ['missing name', 'Bearer ="x"', 0],
      ['missing comma between params', 'Bearer realm="a" service="b"', 0],
      ['two tokens', 'Basic abc def', 0],
      ['scheme glued to quote', 'Bearer"realm"', 0],
      ['scheme glued to =', 'Basic=realm', 0],
      ['starts with a quote', '"Bearer" realm="x"', 0],
      ['control character in quoted value', 'Bearer realm="a\u0000b"', 0],
      ['backslash at the end', 'Bearer realm="abc\\', 0],
      ['param name with slash', 'Bearer a/b=c', 0],
      ['good challenge then garbage', 'Basic realm="ok", Bearer realm="x" junk', 1],
      ['garbage then good challenge', '@@@, Basic realm="ok"', 0],
      ['lone quote', 'Bearer realm="', 0],
    ];
    for (const [label, header, count] of cases) {
      void test(label, () => {
        const cs = parseWwwAuthenticate(header);
        assert.equal(cs.length, count, JSON.stringify(cs));
      });
    }
    void test('`Bearer realm=` reads as a token68 (grammar-wise), which is not a usable challenge', () => {
      assert.deepEqual(parseWwwAuthenticate('Bearer realm='), [{ scheme: 'other', name: 'bearer', params: {}, token68: 'realm=' }]);
      assert.equal(selectChallenge(parseWwwAuthenticate('Bearer realm=, Negotiate')), undefined);
    });
    void test('a valid prefix is kept', () => {
      assert.deepEqual(parseWwwAuthenticate('Basic realm="ok", Bearer realm="x" junk'), [
        { scheme: 'basic', realm: 'ok', params: { realm: 'ok' } },
      ]);
    });
    void test('undefined and an oversized header', () => {
      assert.deepEqual(parseWwwAuthenticate(undefined), []);
      assert.deepEqual(parseWwwAuthenticate(`Basic realm="${'a'.repeat(MAX_CHALLENGE_HEADER_LENGTH)}"`), []);
    });
    void test('random input', () => {
      const alphabet = 'Bearer Basic realm="=,\\ \t:/abc';
      let seed = 42;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      for (let k = 0; k < 2000; k++) {
        let s = '';
        const len = rnd(40);
        for (let j = 0; j < len; j++) s += alphabet[rnd(alphabet.length)];
        for (const c of parseWwwAuthenticate(s)) {
          assert.ok(['basic', 'bearer', 'other'].includes(c.scheme));
          for (const v of Object.values(c.params)) assert.equal(typeof v, 'string');
        }
      }
    });
  });
});

describe('selectChallenge', () => {
  void test('prefers a Bearer challenge with a realm, then Basic', () => {
    const cs = parseWwwAuthenticate('Basic realm="b", Bearer error="invalid_token", Bearer realm="https://t/token"');
    const c = selectChallenge(cs);
    assert.ok(c?.scheme === 'bearer');
    assert.equal(c.realm, 'https://t/token');
    assert.equal(selectChallenge(parseWwwAuthenticate('Bearer error="x", Basic realm="b"'))?.scheme, 'basic');
    assert.equal(selectChallenge(parseWwwAuthenticate('Negotiate abc')), undefined);
    assert.equal(selectChallenge([]), undefined);
  });
});

describe('formatChallenge', () => {
  void test('round-trips through the parser, with the scope replaced and quotes escaped', () => {
    const [bearer] = parseWwwAuthenticate('Bearer realm="https://t/token",service="reg \\"x\\"",scope="repository:a:pull",error="insufficient_scope"');
    assert.ok(bearer?.scheme === 'bearer');
    const text = formatChallenge(bearer, 'repository:b:pull');
    assert.equal(text, 'Bearer realm="https://t/token",service="reg \\"x\\"",scope="repository:b:pull"');
    const [again] = parseWwwAuthenticate(text);
    assert.ok(again?.scheme === 'bearer');
    assert.equal(again.service, 'reg "x"');
    assert.equal(again.scope, 'repository:b:pull');
    assert.equal(formatChallenge({ scheme: 'basic', realm: 'r', params: {} }), 'Basic realm="r"');
    assert.equal(formatChallenge({ scheme: 'basic', params: {} }), 'Basic');
  });
});
