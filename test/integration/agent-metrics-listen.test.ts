// --metrics-listen: /metrics, /healthz and /readyz on an address of their own; nothing else is served there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { loadAgentConfig } from '../../agent/config.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';

describe('agent --metrics-listen', () => {
  let registry: Registry;
  let agent: TestAgent;

  before(async () => {
    registry = await startRegistry({ auth: 'none' });
    agent = await startTestAgent({ origin: registry.url, overrides: { metricsListen: { host: '127.0.0.1', port: 0 } } });
  });
  after(async () => {
    await agent?.stop();
    await registry?.stop();
  });

  test('serves metrics and probes, not the registry API; the registry endpoint still serves both', async () => {
    const metricsUrl = agent.running.metricsUrl;
    assert.ok(metricsUrl !== undefined && metricsUrl !== agent.url);
    const metrics = await request(`${metricsUrl}/metrics`);
    assert.equal(metrics.statusCode, 200);
    assert.match(await metrics.body.text(), /^layerswarm_store_cap_bytes \d+/m);
    for (const path of ['/healthz', '/readyz']) {
      const probe = await request(`${metricsUrl}${path}`);
      const status: number = probe.statusCode;
      await probe.body.dump();
      assert.equal(status, 200, path);
    }
    const v2 = await request(`${metricsUrl}/v2/`);
    assert.equal(v2.statusCode, 404);
    await v2.body.dump();
    const onRegistry = await request(`${agent.url}/metrics`);
    assert.equal(onRegistry.statusCode, 200);
    await onRegistry.body.dump();
  });

  test('the flag parses to a host and port', () => {
    const config = loadAgentConfig(['--origin', 'http://127.0.0.1:1', '--metrics-listen', '0.0.0.0:5052'], {});
    assert.deepEqual(config?.metricsListen, { host: '0.0.0.0', port: 5052 });
  });
});
