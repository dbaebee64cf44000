import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_HOST,
  MANAGED_MARKER,
  isLoopbackHost,
  isManagedHostsToml,
  normalizeMirrorUrl,
  normalizeRegistry,
  originUrl,
  renderHostsToml,
} from '../../agent/containerd/hosts-toml.ts';
import {
  BACKUP_SUFFIX,
  applyContainerdHosts,
  hostsTomlPath,
  removeContainerdHosts,
  type ConfigureAction,
} from '../../agent/containerd/configure.ts';
import { main } from '../../agent/cmd/configure.ts';
import { isLayerswarmError } from '../../shared/errors.ts';

const MIRROR = 'http://127.0.0.1:5050';

function kinds(actions: readonly ConfigureAction[]): string[] {
  return actions.map((a) => `${a.action} ${a.registry}`);
}

/** The TOML keys/values we rely on, read back with a minimal line parser (comments ignored). */
function parseHostsToml(text: string): { server?: string; hosts: Record<string, string[]> } {
  const out: { server?: string; hosts: Record<string, string[]> } = { hosts: {} };
  let section: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const head = /^\[host\.("(?:[^"\\]|\\.)*")\]$/.exec(line);
    if (head) {
      section = JSON.parse(head[1] as string) as string;
      out.hosts[section] = [];
      continue;
    }
    const kv = /^(\w+)\s*=\s*(.+)$/.exec(line);
    assert.ok(kv, `unexpected line ${JSON.stringify(line)}`);
    const value: unknown = JSON.parse(kv[2] as string);
    if (section === undefined && kv[1] === 'server') out.server = value as string;
    else if (section !== undefined && kv[1] === 'capabilities') out.hosts[section] = value as string[];
    else assert.fail(`unexpected key ${kv[1]}`);
  }
  return out;
}

describe('hosts.toml rendering', () => {
  test('loopback registry: http origin, mirror with pull+resolve, marker first', () => {
    const text = renderHostsToml({ registry: '127.0.0.1:5000', mirror: MIRROR });
    assert.ok(text.startsWith(`${MANAGED_MARKER}\n`));
    assert.ok(isManagedHostsToml(text));
    assert.deepEqual(parseHostsToml(text), {
      server: 'http://127.0.0.1:5000',
      hosts: { [MIRROR]: ['pull', 'resolve'] },
    });
  });

  test('docker.io goes to registry-1.docker.io over https', () => {
    const parsed = parseHostsToml(renderHostsToml({ registry: 'docker.io', mirror: MIRROR }));
    assert.equal(parsed.server, 'https://registry-1.docker.io');
  });

  test('remote registries are https unless listed insecure (by host:port or by host)', () => {
    assert.equal(originUrl('ghcr.io'), 'https://ghcr.io');
    assert.equal(originUrl('reg.lan:5000'), 'https://reg.lan:5000');
    assert.equal(originUrl('reg.lan:5000', ['reg.lan:5000']), 'http://reg.lan:5000');
    assert.equal(originUrl('reg.lan:5000', ['reg.lan']), 'http://reg.lan:5000');
    assert.equal(originUrl('reg.lan:5000', ['reg.lan:6000']), 'https://reg.lan:5000');
    assert.equal(originUrl('localhost:5000'), 'http://localhost:5000');
    assert.equal(originUrl('[::1]:5000'), 'http://[::1]:5000');
    assert.equal(originUrl('[fd00::1]:5000', ['[fd00::1]']), 'http://[fd00::1]:5000');
  });

  test('_default has no server line (containerd falls back to the requested host)', () => {
    const text = renderHostsToml({ registry: DEFAULT_HOST, mirror: MIRROR });
    const parsed = parseHostsToml(text);
    assert.equal(parsed.server, undefined);
    assert.deepEqual(parsed.hosts, { [MIRROR]: ['pull', 'resolve'] });
    assert.equal(originUrl(DEFAULT_HOST), undefined);
  });

  test('a file without the marker is not ours', () => {
    assert.equal(isManagedHostsToml('server = "https://x"\n'), false);
    assert.equal(isManagedHostsToml(`server = "https://x"\n${MANAGED_MARKER}\n`), false);
  });

  test('loopback detection', () => {
    for (const h of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', 'x.localhost']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['10.0.0.1', 'ghcr.io', 'fd00::1', 'localhost.example.com']) assert.ok(!isLoopbackHost(h), h);
  });
});

describe('argument normalisation', () => {
  test('registries', () => {
    assert.equal(normalizeRegistry('Docker.IO'), 'docker.io');
    assert.equal(normalizeRegistry(' 127.0.0.1:05000 '), '127.0.0.1:5000');
    assert.equal(normalizeRegistry('[::1]:5000'), '[::1]:5000');
    assert.equal(normalizeRegistry('_default'), '_default');
    for (const bad of ['', 'http://reg:5000', 'reg:5000/path', 'user@reg', 'reg:0', 'reg:70000', 'reg:x', '::1', 'a..b', '[zz]:1']) {
      assert.throws(() => normalizeRegistry(bad), (err: unknown) => isLayerswarmError(err, 'CONFIG_INVALID'), bad);
    }
  });

  test('mirror URLs', () => {
    assert.equal(normalizeMirrorUrl('http://127.0.0.1:5050/'), 'http://127.0.0.1:5050');
    assert.equal(normalizeMirrorUrl('HTTPS://Mirror.Local:443/base/'), 'https://mirror.local/base');
    for (const bad of ['127.0.0.1:5050', 'ftp://x', 'http://u:p@x', 'http://x/?a=1', 'not a url']) {
      assert.throws(() => normalizeMirrorUrl(bad), (err: unknown) => isLayerswarmError(err, 'CONFIG_INVALID'), bad);
    }
  });
});

describe('apply / remove in a hosts dir', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ls-hosts-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('writes <dir>/<host:port>/hosts.toml; second run is unchanged', async () => {
    const registries = ['127.0.0.1:5000', 'docker.io', '_default'];
    const first = await applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries });
    assert.deepEqual(kinds(first), ['created 127.0.0.1:5000', 'created docker.io', 'created _default']);
    assert.deepEqual((await readdir(dir)).sort(), ['127.0.0.1:5000', '_default', 'docker.io']);
    const path = join(dir, '127.0.0.1:5000', 'hosts.toml');
    assert.equal(hostsTomlPath(dir, '127.0.0.1:5000'), path);
    const text = await readFile(path, 'utf8');
    assert.equal(text, renderHostsToml({ registry: '127.0.0.1:5000', mirror: MIRROR }));
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    const mtime = (await stat(path)).mtimeMs;

    const second = await applyContainerdHosts({ hostsDir: dir, mirror: `${MIRROR}/`, registries });
    assert.deepEqual(kinds(second), ['unchanged 127.0.0.1:5000', 'unchanged docker.io', 'unchanged _default']);
    assert.equal((await stat(path)).mtimeMs, mtime);
    // No temporary files left behind.
    assert.deepEqual(await readdir(join(dir, '127.0.0.1:5000')), ['hosts.toml']);
  });

  test('a changed mirror updates our file', async () => {
    await applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries: ['ghcr.io'] });
    const actions = await applyContainerdHosts({ hostsDir: dir, mirror: 'http://127.0.0.1:6060', registries: ['ghcr.io'] });
    assert.deepEqual(kinds(actions), ['updated ghcr.io']);
    const parsed = parseHostsToml(await readFile(hostsTomlPath(dir, 'ghcr.io'), 'utf8'));
    assert.deepEqual(parsed, { server: 'https://ghcr.io', hosts: { 'http://127.0.0.1:6060': ['pull', 'resolve'] } });
  });

  test('an operator file is backed up once, and restored by remove', async () => {
    const registryDir = join(dir, 'docker.io');
    await mkdir(registryDir);
    const theirs = 'server = "https://registry-1.docker.io"\n\n[host."https://corp-mirror.example"]\n  capabilities = ["pull"]\n';
    await writeFile(join(registryDir, 'hosts.toml'), theirs);
    await writeFile(join(registryDir, 'ca.crt'), 'not a real cert\n');

    const first = await applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries: ['docker.io'] });
    assert.deepEqual(kinds(first), ['backed-up docker.io', 'created docker.io']);
    assert.equal(await readFile(join(registryDir, `hosts.toml${BACKUP_SUFFIX}`), 'utf8'), theirs);
    assert.ok(isManagedHostsToml(await readFile(join(registryDir, 'hosts.toml'), 'utf8')));

    const second = await applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries: ['docker.io'] });
    assert.deepEqual(kinds(second), ['unchanged docker.io']);
    assert.equal(await readFile(join(registryDir, `hosts.toml${BACKUP_SUFFIX}`), 'utf8'), theirs);

    const removed = await removeContainerdHosts({ hostsDir: dir, registries: ['docker.io'] });
    assert.deepEqual(kinds(removed), ['restored docker.io']);
    assert.equal(await readFile(join(registryDir, 'hosts.toml'), 'utf8'), theirs);
    assert.deepEqual((await readdir(registryDir)).sort(), ['ca.crt', 'hosts.toml']);

    // Removing again: the operator's file is not ours and stays.
    const again = await removeContainerdHosts({ hostsDir: dir, registries: ['docker.io'] });
    assert.deepEqual(kinds(again), ['kept docker.io']);
    assert.equal(await readFile(join(registryDir, 'hosts.toml'), 'utf8'), theirs);
  });

  test('a different backup already present: refuses and writes nothing', async () => {
    const registryDir = join(dir, 'ghcr.io');
    await mkdir(registryDir);
    await writeFile(join(registryDir, 'hosts.toml'), 'server = "https://new"\n');
    await writeFile(join(registryDir, `hosts.toml${BACKUP_SUFFIX}`), 'server = "https://old"\n');
    await assert.rejects(
      applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries: ['quay.io', 'ghcr.io'] }),
      (err: unknown) => isLayerswarmError(err, 'CONFIG_INVALID') && /already holds a different file/.test(err.message),
    );
    assert.equal(await readFile(join(registryDir, 'hosts.toml'), 'utf8'), 'server = "https://new"\n');
    assert.deepEqual((await readdir(dir)).sort(), ['ghcr.io']); // quay.io not written either
  });

  test('remove deletes our file and its directory; second remove reports absent', async () => {
    await applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries: ['127.0.0.1:5000', '_default'] });
    const removed = await removeContainerdHosts({ hostsDir: dir, registries: ['127.0.0.1:5000', '_default'] });
    assert.deepEqual(kinds(removed), ['removed 127.0.0.1:5000', 'removed _default']);
    assert.deepEqual(await readdir(dir), []);
    const again = await removeContainerdHosts({ hostsDir: dir, registries: ['127.0.0.1:5000'] });
    assert.deepEqual(kinds(again), ['absent 127.0.0.1:5000']);
  });

  test('insecure registries get an http origin', async () => {
    await applyContainerdHosts({
      hostsDir: dir,
      mirror: MIRROR,
      registries: ['reg.lan:5000'],
      insecureRegistries: ['reg.lan:5000'],
    });
    const parsed = parseHostsToml(await readFile(hostsTomlPath(dir, 'reg.lan:5000'), 'utf8'));
    assert.equal(parsed.server, 'http://reg.lan:5000');
  });

  test('bad arguments are rejected before anything is written', async () => {
    const reject = (p: Promise<unknown>): Promise<void> =>
      assert.rejects(p, (err: unknown) => isLayerswarmError(err, 'CONFIG_INVALID'));
    await reject(applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries: [] }));
    await reject(applyContainerdHosts({ hostsDir: dir, mirror: MIRROR, registries: ['ok.io', 'https://bad.io'] }));
    await reject(applyContainerdHosts({ hostsDir: dir, mirror: 'ftp://x', registries: ['ok.io'] }));
    await reject(removeContainerdHosts({ hostsDir: dir, registries: [] }));
    assert.deepEqual(await readdir(dir), []);
  });
});

describe('layerswarm configure (command)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ls-hosts-cmd-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await main(argv, env, {
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: (t: string) => (stderr += t) },
    });
    return { code, stdout, stderr };
  }

  test('apply, apply again, remove', async () => {
    const args = ['containerd', '--hosts-dir', dir, '--mirror', MIRROR, '--registry', '127.0.0.1:5000,docker.io'];
    const first = await run(args);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^created +\S+127\.0\.0\.1:5000\/hosts\.toml/m);
    assert.match(first.stdout, /^created +\S+docker\.io\/hosts\.toml/m);
    const second = await run(args);
    assert.equal(second.code, 0);
    assert.equal(second.stdout.split('\n').filter((l) => l.startsWith('unchanged')).length, 2);
    const removed = await run(['containerd', `--hosts-dir=${dir}`, '--remove', '--registry', '127.0.0.1:5000', '--registry', 'docker.io']);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout.split('\n').filter((l) => l.startsWith('removed')).length, 2);
    assert.deepEqual(await readdir(dir), []);
  });

  test('--insecure-registry and environment variables', async () => {
    const res = await run(['containerd', '--registry', 'reg.lan:5000', '--insecure-registry', 'reg.lan'], {
      LAYERSWARM_HOSTS_DIR: dir,
      LAYERSWARM_MIRROR: MIRROR,
      LAYERSWARM_CONFIG: '/nonexistent/agent.yaml', // the agent's config file is not read by configure
    });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(parseHostsToml(await readFile(hostsTomlPath(dir, 'reg.lan:5000'), 'utf8')).server, 'http://reg.lan:5000');
  });

  test('--help documents the default hosts dir', async () => {
    const res = await run(['containerd', '--help']);
    assert.equal(res.code, 0);
    assert.match(res.stdout, /--hosts-dir\b[^\n]*\n[^\n]*Default: \/etc\/containerd\/certs\.d\./);
    assert.match(res.stdout, /--insecure-registry/);
    const top = await run(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /containerd/);
  });

  test('usage errors exit 2 on stderr', async () => {
    const cases: [string[], RegExp][] = [
      [[], /Usage: layerswarm configure TARGET/],
      [['docker'], /unknown target "docker"/],
      [['containerd', '--hosts-dir', dir, '--registry', 'docker.io'], /--mirror URL is required/],
      [['containerd', '--hosts-dir', dir, '--mirror', MIRROR], /--registry is required/],
      [['containerd', '--hosts-dir', dir, '--mirror', MIRROR, '--registry', 'http://x'], /without a scheme/],
      [['containerd', '--hosts-dir', dir, '--mirror', 'x', '--registry', 'docker.io'], /invalid mirror URL/],
      [['containerd', '--hosts-dir', dir, '--mirror', MIRROR, '--registry', 'a', '--bogus'], /unknown option --bogus/],
      [['containerd', '--hosts-dir', dir, '--mirror', MIRROR, '--registry', 'a', 'extra'], /unexpected argument "?extra"?/],
    ];
    for (const [argv, message] of cases) {
      const res = await run(argv);
      assert.equal(res.code, 2, argv.join(' '));
      assert.equal(res.stdout, '');
      assert.match(res.stderr, message);
    }
    assert.deepEqual(await readdir(dir), []);
  });

  test('a write conflict exits 1', async () => {
    await mkdir(join(dir, 'ghcr.io'));
    await writeFile(join(dir, 'ghcr.io', 'hosts.toml'), 'a = 1\n');
    await writeFile(join(dir, 'ghcr.io', `hosts.toml${BACKUP_SUFFIX}`), 'b = 2\n');
    const res = await run(['containerd', '--hosts-dir', dir, '--mirror', MIRROR, '--registry', 'ghcr.io']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /already holds a different file/);
  });
});
