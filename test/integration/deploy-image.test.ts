// The container image: builds the real Dockerfile on a private dockerd (vfs, no bridge: every step with
// --network host) from a locally built base (test/fixtures/deploy: debootstrapped Debian + the pinned Node 22, cached
// outside the repo), then runs it: `--version`, the non-root user, production dependencies only, an agent answering
// /v2/ from the container, and a clean exit on SIGTERM (`docker stop`). Everything lives in the private dockerd's
// data-root, which its fixture removes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { startContainerd, type Containerd } from '../fixtures/clients/containerd.ts';
import { docker, startDockerd, type Dockerd } from '../fixtures/clients/dockerd.ts';
import { BASE_IMPORT_CHANGES, baseTarball, REPO_ROOT } from '../fixtures/deploy/base-image.ts';
import { rawRequest } from '../fixtures/http.ts';
import { freePort, retryOnPortClash } from '../fixtures/ports.ts';
import { run, waitFor } from '../fixtures/process.ts';

const timings: string[] = [];
const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  const started = performance.now();
  try {
    return await fn();
  } finally {
    timings.push(`${what}: ${Math.round(performance.now() - started)} ms`);
  }
};

describe('container image (Dockerfile)', { timeout: 20 * 60_000 }, () => {
  let containerd: Containerd | undefined;
  let dockerd: Dockerd | undefined;
  const image = `layerswarm-test:${randomBytes(4).toString('hex')}`;
  let d: Dockerd;

  before(async () => {
    const base = await timed('base rootfs (cached or built)', () => baseTarball());
    if (base.built) timings.push(`base rootfs built from nothing in ${Math.round(base.buildMs)} ms`);
    containerd = await startContainerd();
    // overlay2 when the data root's filesystem allows it (ext4 here: ~10x faster builds than vfs, which copies the
    // whole filesystem for every layer), else the fixture's vfs.
    dockerd = await startDockerd({ containerd, extraConfig: { 'storage-driver': 'overlay2' } }).catch(async (err: unknown) => {
      timings.push(`overlay2 unavailable (${err instanceof Error ? err.message.split('\n')[0] : String(err)}), using vfs`);
      return startDockerd({ containerd: containerd as Containerd });
    });
    d = dockerd;
    const baseImage = `layerswarm-test-base:${base.key}`;
    await timed('docker import base', () => docker(d, ['import', ...BASE_IMPORT_CHANGES.flatMap((c) => ['--change', c]), base.path, baseImage], { timeoutMs: 5 * 60_000 }));
    // The legacy builder (no buildx here) prints its steps on stdout: send them to stderr, which a failure reports.
    await timed('docker build', () =>
      run('sh', ['-c', 'exec "$@" 1>&2', 'docker', 'docker', '-H', d.host, 'build', '--network', 'host', '--build-arg', `BASE=${baseImage}`, '-t', image, REPO_ROOT], {
        timeoutMs: 10 * 60_000,
        env: { ...d.cliEnv, DOCKER_BUILDKIT: '0' },
      }),
    );
  });

  after(async () => {
    await dockerd?.stop();
    await containerd?.stop();
    if (timings.length > 0) console.log(`# deploy-image timings: ${timings.join('; ')}`);
  });

  test('`layerswarm --version` is the entrypoint', async () => {
    const { stdout } = await docker(d, ['run', '--rm', '--network', 'host', image, '--version']);
    assert.equal(stdout.trim(), 'layerswarm 0.1.0');
  });

  test('runs as a non-root user, from /app, with production dependencies only', async () => {
    const { stdout } = await docker(d, [
      'run', '--rm', '--network', 'host', '--entrypoint', 'node', image, '-e',
      [
        "const fs = require('node:fs');",
        "const has = (m) => fs.existsSync('/app/node_modules/' + m);",
        'console.log(JSON.stringify({',
        '  uid: process.getuid(), node: process.versions.node, cwd: process.cwd(),',
        "  fastify: has('fastify'), typescript: has('typescript'), eslint: has('eslint'), nodePkg: has('node/bin/node'),",
        "  tests: fs.existsSync('/app/test'), dataDirOwner: fs.statSync('/var/lib/layerswarm').uid,",
        "  bin: fs.realpathSync('/usr/local/bin/layerswarm'),",
        '}));',
      ].join(' '),
    ]);
    const facts = JSON.parse(stdout) as Record<string, unknown>;
    assert.deepEqual(facts, {
      uid: 10001,
      node: facts.node,
      cwd: '/',
      fastify: true,
      typescript: false,
      eslint: false,
      nodePkg: false,
      tests: false,
      dataDirOwner: 10001,
      bin: '/app/bin/layerswarm.mjs',
    });
    const [major, minor] = String(facts.node).split('.').map(Number);
    assert.ok(major! > 22 || (major === 22 && minor! >= 18), `Node ${String(facts.node)} >= 22.18`);
  });

  test('an agent in the container answers /v2/ and exits 0 on SIGTERM', async () => {
    // If a port is taken before the agent listens, it exits with EADDRINUSE: start over with fresh ports.
    const { name, port, res } = await retryOnPortClash(async () => {
      const port = await freePort();
      const peerPort = await freePort();
      const name = `layerswarm-agent-${randomBytes(4).toString('hex')}`;
      await docker(d, [
        'run', '-d', '--name', name, '--network', 'host', image,
        'agent', '--listen', `127.0.0.1:${port}`, '--origin', 'http://127.0.0.1:9', '--data-dir', '/var/lib/layerswarm',
        '--peer-listen', `127.0.0.1:${peerPort}`, '--shutdown-timeout', '5s',
      ]);
      try {
        const res = await waitFor(async () => {
          const r = await rawRequest(`http://127.0.0.1:${port}`, '/v2/', { timeoutMs: 2000 }).catch(() => undefined);
          if (r?.status === 200) return r;
          const running = (await docker(d, ['inspect', '--format', '{{.State.Running}}', name])).stdout.trim() === 'true';
          return running ? undefined : 'exited';
        }, { timeoutMs: 60_000, intervalMs: 200, what: 'the containerised agent to answer /v2/' });
        if (res === 'exited') {
          const logs = await docker(d, ['logs', name]);
          throw new Error(`the containerised agent exited before answering /v2/:\n${logs.stdout}${logs.stderr}`);
        }
        return { name, port, res };
      } catch (err) {
        await docker(d, ['rm', '-f', name]).catch(() => undefined);
        throw err;
      }
    });
    try {
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
      const ready = await rawRequest(`http://127.0.0.1:${port}`, '/readyz');
      assert.equal(ready.status, 200);
      await docker(d, ['stop', '--time', '20', name]);
      const { stdout } = await docker(d, ['inspect', '--format', '{{.State.ExitCode}}', name]);
      assert.equal(stdout.trim(), '0', 'exit code 0 after SIGTERM (not killed)');
      const logs = await docker(d, ['logs', name]);
      assert.match(logs.stdout, /"msg":"agent stopped"/);
    } finally {
      await docker(d, ['rm', '-f', name]).catch(() => undefined);
    }
  });
});
