// The agent's swarm options: defaults (a plain mirror without --tracker), parsing, cross-checks, the advertised IP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { loadAgentConfig, peerAdvertiseAddress } from '../../agent/config.ts';
import { isLayerswarmError } from '../../shared/errors.ts';

const base = ['--origin', 'http://127.0.0.1:5000'];

test('swarm options: defaults leave the swarm off', () => {
  const config = loadAgentConfig(base, {});
  assert.ok(config);
  assert.equal(config.tracker, undefined);
  assert.deepEqual(config.peerListen, { host: '0.0.0.0', port: 5051 });
  assert.equal(config.peerAdvertise, undefined);
  assert.equal(config.zone, undefined);
  assert.equal(config.metainfoTimeout, 10_000);
  assert.equal(config.swarmStallTimeout, 30_000);
  assert.equal(config.swarmOriginDirectMaxBytes, 4 * 2 ** 20);
});

test('swarm options: flags and env', () => {
  const config = loadAgentConfig([...base, '--tracker', 'http://tracker:8080/', '--peer-listen', '10.0.0.5:6000', '--zone', 'eu-west-1a', '--metainfo-timeout', '3s', '--swarm-stall-timeout', '1m'], {
    LAYERSWARM_SWARM_ORIGIN_DIRECT_MAX_BYTES: '8MiB', LAYERSWARM_PEER_ADVERTISE: '192.0.2.7',
  });
  assert.ok(config);
  assert.equal(config.tracker, 'http://tracker:8080');
  assert.deepEqual(config.peerListen, { host: '10.0.0.5', port: 6000 });
  assert.equal(config.peerAdvertise, '192.0.2.7');
  assert.equal(config.zone, 'eu-west-1a');
  assert.equal(config.metainfoTimeout, 3000);
  assert.equal(config.swarmStallTimeout, 60_000);
  assert.equal(config.swarmOriginDirectMaxBytes, 8 * 2 ** 20);
});

test('swarm options: bad values are reported together', () => {
  assert.throws(
    () => loadAgentConfig([...base, '--tracker', 'ftp://x', '--peer-advertise', 'not-an-ip', '--zone', ' bad zone'], {}),
    (err: unknown) => {
      assert.ok(isLayerswarmError(err, 'CONFIG_INVALID'));
      assert.match(err.message, /--tracker: expected an http/);
      return true;
    },
  );
  assert.throws(() => loadAgentConfig([...base, '--peer-advertise', 'not-an-ip', '--zone', ' bad zone'], {}), (err: unknown) => {
    assert.ok(isLayerswarmError(err, 'CONFIG_INVALID'));
    assert.match(err.message, /peerAdvertise: expected an IP address/);
    assert.match(err.message, /zone: expected/);
    return true;
  });
  assert.throws(() => loadAgentConfig([...base, '--tracker', 'http://t:1', '--peer-listen', 'node-1:5051'], {}), /set peerAdvertise/);
});

test('peerAdvertiseAddress: explicit, listen host, first non-internal IPv4, loopback', () => {
  const ifs = (list: Array<Partial<NetworkInterfaceInfo>>): Record<string, NetworkInterfaceInfo[]> => ({ eth: list as NetworkInterfaceInfo[] });
  const wildcard = { host: '0.0.0.0', port: 5051 };
  assert.equal(peerAdvertiseAddress({ peerAdvertise: '192.0.2.1', peerListen: wildcard }, {}), '192.0.2.1');
  assert.equal(peerAdvertiseAddress({ peerAdvertise: undefined, peerListen: { host: '10.1.2.3', port: 1 } }, {}), '10.1.2.3');
  const found = ifs([{ family: 'IPv4', internal: true, address: '127.0.0.1' }, { family: 'IPv6', internal: false, address: 'fe80::1' }, { family: 'IPv4', internal: false, address: '10.9.8.7' }]);
  assert.equal(peerAdvertiseAddress({ peerAdvertise: undefined, peerListen: wildcard }, found), '10.9.8.7');
  assert.equal(peerAdvertiseAddress({ peerAdvertise: undefined, peerListen: wildcard }, ifs([{ family: 'IPv4', internal: true, address: '127.0.0.1' }])), '127.0.0.1');
});
