import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLayerswarmError } from '../../shared/errors.ts';
import {
  buildCredentialStore,
  canonicalRegistryHost,
  identityFromAuthorization,
  loadDockerConfigCredentials,
  parseDockerConfig,
} from '../../agent/upstream/credentials.ts';
import { identityKey } from '../../agent/upstream/types.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const hash32 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 32);

describe('canonicalRegistryHost', () => {
  void test('Docker Hub aliases and URL keys', () => {
    for (const h of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/', 'Docker.IO']) {
      assert.equal(canonicalRegistryHost(h), 'docker.io', h);
    }
    assert.equal(canonicalRegistryHost('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000');
    assert.equal(canonicalRegistryHost('Registry.Example.com'), 'registry.example.com');
    assert.equal(canonicalRegistryHost('ghcr.io'), 'ghcr.io');
  });
});

describe('Docker config.json', () => {
  const config = {
    auths: {
      'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
      '127.0.0.1:5000': { username: 'alice', password: 's3cret' },
      'https://registry.example.com': { auth: b64('bob:pw') },
      'helper.example.com': {},
      'token-only.example.com': { identitytoken: 'xyz' },
    },
    credsStore: 'desktop',
  };

  void test('auth (base64) and username/password entries, by canonical host', () => {
    const store = parseDockerConfig(JSON.stringify(config));
    assert.deepEqual(store.get('docker.io'), { username: 'hubuser', password: 'hub:pass' });
    assert.deepEqual(store.get('registry-1.docker.io'), { username: 'hubuser', password: 'hub:pass' });
    assert.deepEqual(store.get('127.0.0.1:5000'), { username: 'alice', password: 's3cret' });
    assert.deepEqual(store.get('registry.example.com'), { username: 'bob', password: 'pw' });
    assert.equal(store.get('helper.example.com'), undefined);
    assert.equal(store.get('token-only.example.com'), undefined);
    assert.equal(store.get('unknown.example.com'), undefined);
    assert.equal(store.size, 3);
  });

  void test('no auths section → no credentials', () => {
    assert.equal(parseDockerConfig('{}').size, 0);
  });

  void test('malformed files fail with CONFIG_INVALID, without quoting secrets', () => {
    const bad = [
      'not json',
      '[]',
      '{"auths": []}',
      '{"auths": {"h": "x"}}',
      JSON.stringify({ auths: { h: { auth: b64('no-colon-secret') } } }),
      JSON.stringify({ auths: { h: { auth: '***not base64***' } } }),
    ];
    for (const text of bad) {
      assert.throws(() => parseDockerConfig(text), (err) => {
        assert.ok(isLayerswarmError(err, 'CONFIG_INVALID'), String(err));
        assert.ok(!err.message.includes('no-colon-secret'));
        return true;
      }, text);
    }
  });

  void test('agent config registries take precedence over config.json', () => {
    const store = buildCredentialStore({
      registries: [{ host: '127.0.0.1:5000', username: 'agent', password: 'a' }, { host: 'nocreds.example.com' }],
      dockerConfig: config,
    });
    assert.deepEqual(store.get('127.0.0.1:5000'), { username: 'agent', password: 'a' });
    assert.deepEqual(store.get('index.docker.io'), { username: 'hubuser', password: 'hub:pass' });
    assert.equal(store.get('nocreds.example.com'), undefined);
  });

  void test('loadDockerConfigCredentials reads a file; a missing file is CONFIG_INVALID', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'layerswarm-upstream-cred-'));
    try {
      const path = join(dir, 'config.json');
      await writeFile(path, JSON.stringify(config));
      const store = await loadDockerConfigCredentials(path);
      assert.deepEqual(store.get('docker.io'), { username: 'hubuser', password: 'hub:pass' });
      await assert.rejects(loadDockerConfigCredentials(join(dir, 'missing.json')), (err) => isLayerswarmError(err, 'CONFIG_INVALID'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('identityFromAuthorization', () => {
  void test('no header, empty header, podman empty Basic → agent', () => {
    assert.deepEqual(identityFromAuthorization(undefined), { kind: 'agent' });
    assert.deepEqual(identityFromAuthorization(''), { kind: 'agent' });
    assert.deepEqual(identityFromAuthorization('Basic Og=='), { kind: 'agent' });
    assert.deepEqual(identityFromAuthorization('basic Og=='), { kind: 'agent' });
  });

  void test('Basic user:pass → basic identity keyed by a hash', () => {
    const id = identityFromAuthorization(`Basic ${b64('alice:p@ss:word')}`);
    assert.ok(id.kind === 'basic');
    assert.deepEqual(id.credentials, { username: 'alice', password: 'p@ss:word' });
    assert.match(identityKey(id), /^basic:[0-9a-f]{32}$/);
    assert.ok(!identityKey(id).includes('p@ss'));
    // Keyed per process: stable for the same credentials, not the plain sha256 an attacker could brute-force.
    assert.equal(identityKey(identityFromAuthorization(`Basic ${b64('alice:p@ss:word')}`)), identityKey(id));
    assert.notEqual(identityKey(identityFromAuthorization(`Basic ${b64('alice:other')}`)), identityKey(id));
    assert.notEqual(identityKey(id), `basic:${hash32('alice:p@ss:word')}`);
    // An empty password is still a user.
    assert.equal(identityFromAuthorization(`Basic ${b64('alice:')}`).kind, 'basic');
    // UTF-8 credentials.
    const u = identityFromAuthorization(`BASIC ${b64('jürgen:pässwört')}`);
    assert.ok(u.kind === 'basic');
    assert.equal(u.credentials.password, 'pässwört');
  });

  void test('Bearer token → bearer identity, forwarded as is', () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/==';
    const bearer = identityFromAuthorization(`Bearer ${token}`);
    assert.ok(bearer.kind === 'bearer');
    assert.equal(bearer.token, token);
    assert.match(bearer.key, /^bearer:[0-9a-f]{32}$/);
    assert.equal(identityFromAuthorization(`Bearer ${token}`).kind === 'bearer' && identityKey(identityFromAuthorization(`Bearer ${token}`)), bearer.key);
    assert.equal(identityFromAuthorization(`bearer  ${token}`).kind, 'bearer');
  });

  void test('malformed headers → UNAUTHORIZED', () => {
    const bad = [
      'Basic',
      'Basic !!!!',
      `Basic ${b64('nocolon')}`,
      `Basic ${b64('a:b')} extra`,
      `Basic ${Buffer.from([0xff, 0xfe, 0x3a]).toString('base64')}`,
      `Basic ${b64('a\nb:c')}`,
      'Bearer',
      'Bearer a"b',
      'Bearer a,b',
      'Digest username="x"',
      'Negotiate abc',
      'justatoken',
      `Bearer ${'a'.repeat(20_000)}`,
    ];
    for (const h of bad) {
      assert.throws(() => identityFromAuthorization(h), (err) => isLayerswarmError(err, 'UNAUTHORIZED'), h.slice(0, 40));
    }
  });
});
