import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig, AGENT_OPTIONS } from '../../agent/config.ts';
import { formatHelp, envName, flagName } from '../../shared/config/options.ts';
import { parseBytes, parseDuration } from '../../shared/config/units.ts';
import { isLayerswarmError } from '../../shared/errors.ts';

describe('units', () => {
  test('bytes', () => {
    assert.equal(parseBytes('10GiB'), 10 * 2 ** 30);
    assert.equal(parseBytes('512 MiB'), 512 * 2 ** 20);
    assert.equal(parseBytes('1.5k'), 1500);
    assert.equal(parseBytes(42), 42);
    assert.equal(parseBytes('12 parsecs'), undefined);
    assert.equal(parseBytes('-1'), undefined);
  });
  test('durations', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1500'), 1500);
    assert.equal(parseDuration('5 minutes'), undefined);
    assert.equal(parseDuration('1m30'), undefined);
  });
});

describe('agent config', () => {
  test('flags override env override file override defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ls-config-'));
    try {
      const file = join(dir, 'agent.yaml');
      await writeFile(file, 'origin: https://file.example\nstoreMaxBytes: 1GiB\naccessCacheTtl: 5s\nregistries:\n  - host: 127.0.0.1:5000\n    url: http://127.0.0.1:5000\n    username: u\n    password: p\n');
      const config = loadAgentConfig(['--config', file, '--origin', 'http://flag.example:5000', '--data-dir=/tmp/x'], {
        LAYERSWARM_STORE_MAX_BYTES: '2GiB',
        LAYERSWARM_ORIGIN: 'https://env.example',
      });
      assert.ok(config);
      assert.equal(config.origin, 'http://flag.example:5000');
      assert.equal(config.storeMaxBytes, 2 * 2 ** 30);
      assert.equal(config.accessCacheTtl, 5000);
      assert.equal(config.dataDir, '/tmp/x');
      assert.deepEqual(config.listen, { host: '127.0.0.1', port: 5050 });
      assert.deepEqual(config.registries, [{ host: '127.0.0.1:5000', url: 'http://127.0.0.1:5000', username: 'u', password: 'p' }]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test('every problem is reported at once with where it came from', () => {
    try {
      loadAgentConfig(['--listen', 'nowhere', '--store-max-bytes', 'lots', '--bogus', 'x'], { LAYERSWARM_ACCESS_CACHE_TTL: 'soon' });
      assert.fail('expected CONFIG_INVALID');
    } catch (err) {
      assert.ok(isLayerswarmError(err, 'CONFIG_INVALID'));
      assert.match(err.message, /--listen: expected HOST:PORT/);
      assert.match(err.message, /--store-max-bytes: expected a size/);
      assert.match(err.message, /unknown option --bogus/);
      assert.match(err.message, /LAYERSWARM_ACCESS_CACHE_TTL: expected a duration/);
      assert.match(err.message, /--origin is required/);
    }
  });

  test('unknown keys and bad registries in the file are errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ls-config-'));
    try {
      const file = join(dir, 'agent.yaml');
      await writeFile(file, 'origin: http://o\nstoreMaxByte: 1\nregistries:\n  - host: "bad host"\n  - host: ok.example\n    username: u\n');
      assert.throws(() => loadAgentConfig(['--config', file], {}), (err: unknown) => {
        assert.ok(isLayerswarmError(err, 'CONFIG_INVALID'));
        assert.match(err.message, /unknown key "storeMaxByte"/);
        assert.match(err.message, /registries\[0\]\.host/);
        assert.match(err.message, /registries\[1\]: username and password go together/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  test('--help documents every option with its env var and default', () => {
    assert.equal(loadAgentConfig(['--help'], {}), undefined);
    const help = formatHelp('layerswarm agent', 'summary', AGENT_OPTIONS);
    for (const o of AGENT_OPTIONS) {
      if (!o.fileOnly) {
        assert.ok(help.includes(flagName(o.key)), o.key);
        assert.ok(help.includes(envName(o.key)), o.key);
      }
    }
    assert.match(help, /--store-max-bytes SIZE\n.*Default: 20GiB\./);
    assert.match(help, /--listen HOST:PORT\n.*Default: 127\.0\.0\.1:5050\./);
  });
});
