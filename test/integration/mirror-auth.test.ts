// Authorization-preserving cache against real htpasswd and token-auth registries: a client the origin would refuse
// gets 401/403 from the agent and never a byte, also for blobs the agent has cached for someone else.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { ACCEPT_ALL_MANIFESTS, buildImage, pushImage, sha256Digest, type PushedImage } from '../fixtures/images.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { ociCode, rawRequest, type RawResponse } from '../fixtures/http.ts';
import { run } from '../fixtures/process.ts';

const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const USERS = { alice: 'alice-pw', bob: 'bob-pw' };

function assertRefused(res: RawResponse, what: string): void {
  assert.ok(res.status === 401 || res.status === 403, `${what}: expected 401/403, got ${res.status}`);
  assert.ok(['UNAUTHORIZED', 'DENIED'].includes(ociCode(res) ?? ''), `${what}: ${res.body.toString().slice(0, 200)}`);
}

async function tokenFor(registry: Registry, user: string, repo: string): Promise<string> {
  const t = registry.token;
  assert.ok(t);
  const res = await fetch(`${t.realm}?service=${t.service}&scope=repository:${repo}:pull`, { headers: { authorization: basic(user, USERS[user as keyof typeof USERS]) } });
  assert.equal(res.status, 200);
  return ((await res.json()) as { token: string }).token;
}

describe('authorization-preserving cache', () => {
  let dir: string;
  let htpasswd: Registry;
  let token: Registry;
  let pushedBasic: PushedImage;
  let pushedToken: PushedImage;
  const agents: TestAgent[] = [];

  before(async () => {
    dir = await makeTempDir('mirror-auth-');
    [htpasswd, token] = await Promise.all([
      startRegistry({ auth: 'htpasswd', users: USERS }),
      // alice may pull and push private/*, bob is a valid user with no access to it, anonymous gets nothing.
      startRegistry({ auth: 'token', users: USERS, tokenAcl: (user, repo) => (user === 'alice' ? ['pull', 'push'] : user === 'bob' && !repo.startsWith('private/') ? ['pull'] : []) }),
    ]);
    const image = await buildImage(join(dir, 'img'), { tag: '1', layers: [{ size: 300 * 1024 }] });
    [pushedBasic, pushedToken] = await Promise.all([
      pushImage(image, `${htpasswd.host}/private/app:1`, { creds: { username: 'alice', password: USERS.alice } }),
      pushImage(image, `${token.host}/private/app:1`, { creds: { username: 'alice', password: USERS.alice } }),
    ]);
  });

  after(async () => {
    for (const a of agents) await a.cleanup();
    await Promise.all([htpasswd?.stop(), token?.stop()]);
    if (dir) await removeTempDir(dir);
  });

  const start = async (origin: Registry, credentials?: { username: string; password: string }): Promise<TestAgent> => {
    const a = await startTestAgent({
      origin: origin.url,
      overrides: { registries: [{ host: origin.host, url: origin.url, ...(credentials ?? {}) }] },
    });
    agents.push(a);
    return a;
  };

  test('htpasswd origin: client credentials are honoured, everyone else is refused, also for cached blobs', async () => {
    const agent = await start(htpasswd);
    const layer = pushedBasic.manifests[0]?.layers[0];
    assert.ok(layer);
    const ping = await rawRequest(agent.url, '/v2/');
    assert.equal(ping.status, 401, 'anonymous /v2/ gets the origin\'s challenge (skopeo/docker authenticate only after one)');
    assert.match(String(ping.headers['www-authenticate']), /^Basic realm=/);
    const pingAlice = await rawRequest(agent.url, '/v2/', { headers: { authorization: basic('alice', USERS.alice) } });
    assert.equal(pingAlice.status, 200);
    const anonymous = await rawRequest(agent.url, '/v2/private/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assertRefused(anonymous, 'anonymous manifest');
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm=/, 'challenge relayed so the client can authenticate');
    const asAlice = await rawRequest(agent.url, `/v2/private/app/blobs/${layer.digest}`, { headers: { authorization: basic('alice', USERS.alice) } });
    assert.equal(asAlice.status, 200);
    assert.equal(sha256Digest(asAlice.body), layer.digest);
    // Now cached. Nobody else gets it.
    for (const [who, headers] of [
      ['anonymous', {}],
      ['podman-style empty creds', { authorization: 'Basic Og==' }],
      ['wrong password', { authorization: basic('alice', 'nope') }],
      ['unknown user', { authorization: basic('mallory', 'x') }],
    ] as const) {
      const res = await rawRequest(agent.url, `/v2/private/app/blobs/${layer.digest}`, { headers });
      assertRefused(res, who);
      assert.ok(!res.body.includes(asAlice.body.subarray(0, 64)), `${who}: no blob bytes`);
    }
    const head = await rawRequest(agent.url, `/v2/private/app/blobs/${layer.digest}`, { method: 'HEAD' });
    assertRefused({ ...head, body: Buffer.from('{"errors":[{"code":"UNAUTHORIZED"}]}') }, 'anonymous HEAD');
  });

  test('htpasswd origin: the agent\'s configured credentials serve clients that send none', async () => {
    const agent = await start(htpasswd, { username: 'alice', password: USERS.alice });
    const res = await rawRequest(agent.url, '/v2/private/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assert.equal(res.status, 200);
    assert.equal(sha256Digest(res.body), pushedBasic.digest);
    const wrong = await rawRequest(agent.url, '/v2/private/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS, authorization: basic('alice', 'wrong') } });
    assertRefused(wrong, 'client credentials win over the agent\'s');
  });

  test('credentials from a Docker config.json (auths) serve clients that send none', async () => {
    const dockerConfig = join(dir, 'docker-config.json');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(dockerConfig, JSON.stringify({ auths: { [htpasswd.host]: { auth: Buffer.from(`bob:${USERS.bob}`).toString('base64') } } }));
    const agent = await startTestAgent({ origin: htpasswd.url, overrides: { dockerConfig } });
    agents.push(agent);
    const res = await rawRequest(agent.url, '/v2/private/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS } });
    assert.equal(res.status, 200);
    assert.equal(sha256Digest(res.body), pushedBasic.digest);
    const ping = await rawRequest(agent.url, '/v2/');
    assert.equal(ping.status, 200, 'the agent can act for anonymous clients, so /v2/ does not challenge them');
  });

  test('token origin: Bearer challenge relayed, client tokens and credentials honoured, others refused', async () => {
    const agent = await start(token);
    const layer = pushedToken.manifests[0]?.layers[0];
    assert.ok(layer && token.token);
    const anonymous = await rawRequest(agent.url, `/v2/private/app/blobs/${layer.digest}`);
    assertRefused(anonymous, 'anonymous');
    assert.match(String(anonymous.headers['www-authenticate']), new RegExp(`^Bearer realm="${token.token.realm}"`));

    const aliceToken = await tokenFor(token, 'alice', 'private/app');
    const viaToken = await rawRequest(agent.url, `/v2/private/app/blobs/${layer.digest}`, { headers: { authorization: `Bearer ${aliceToken}` } });
    assert.equal(viaToken.status, 200);
    assert.equal(sha256Digest(viaToken.body), layer.digest);

    const issuedBefore = token.token.issued();
    for (let i = 0; i < 3; i++) {
      const viaBasic = await rawRequest(agent.url, '/v2/private/app/manifests/1', { headers: { accept: ACCEPT_ALL_MANIFESTS, authorization: basic('alice', USERS.alice) } });
      assert.equal(viaBasic.status, 200);
      assert.equal(sha256Digest(viaBasic.body), pushedToken.digest);
    }
    assert.equal(token.token.issued() - issuedBefore, 1, 'the agent exchanged alice\'s credentials for a token once and cached it');

    const bobToken = await tokenFor(token, 'bob', 'private/app');
    for (const [who, headers] of [
      ['bob (valid user, no access) with Basic', { authorization: basic('bob', USERS.bob) }],
      ['bob with his own token', { authorization: `Bearer ${bobToken}` }],
      ['a forged token', { authorization: 'Bearer eyJhbGciOiJub25lIn0.e30.' }],
      ['anonymous', {}],
    ] as const) {
      const res = await rawRequest(agent.url, `/v2/private/app/blobs/${layer.digest}`, { headers });
      assertRefused(res, who);
      assert.ok(res.body.length < 2048, `${who}: an error body, not the blob`);
    }
  });

  test('skopeo pulls through the agent with its own credentials; without them it is refused', async () => {
    const agent = await start(token);
    const out = join(dir, 'skopeo-out');
    await run('skopeo', ['copy', '--src-tls-verify=false', '--src-creds', `alice:${USERS.alice}`, `docker://${agent.host}/private/app:1`, `dir:${out}`], { timeoutMs: 60_000 });
    const layer = pushedToken.manifests[0]?.layers[0];
    assert.ok(layer);
    const { readFile } = await import('node:fs/promises');
    assert.equal(sha256Digest(await readFile(join(out, layer.digest.slice(7)))), layer.digest);
    await assert.rejects(
      run('skopeo', ['copy', '--src-tls-verify=false', '--src-no-creds', `docker://${agent.host}/private/app:1`, `dir:${join(dir, 'denied')}`], { timeoutMs: 60_000 }),
      /unauthorized|authentication required|denied/i,
    );
  });
});
