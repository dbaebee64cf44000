// The layerswarm command as users run it: a real subprocess, configured by flags, LAYERSWARM_* env and a YAML
// file; bad config is a clear exit-2 error; SIGTERM is a clean exit; an older system Node re-executes on the pinned
// Node 22; and the README's demo command works.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { freePort, retryOnPortClash } from '../fixtures/ports.ts';
import { run, startProcess } from '../fixtures/process.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const cli = fileURLToPath(new URL('../../bin/layerswarm.mjs', import.meta.url));

function exec(args: string[], env: NodeJS.ProcessEnv = {}, node = process.execPath): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('layerswarm CLI', () => {
  let dir: string;
  let origin: Registry;
  before(async () => {
    dir = await makeTempDir('cli-');
    origin = await startRegistry({ auth: 'none' });
  });
  after(async () => {
    await origin?.stop();
    if (dir) await removeTempDir(dir);
  });

  test('help and usage errors', async () => {
    const help = await exec(['agent', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--store-max-bytes SIZE/);
    assert.match(help.stdout, /LAYERSWARM_ORIGIN/);
    const top = await exec([]);
    assert.equal(top.code, 2);
    assert.match(top.stdout, /agent .*configure .*demo/s);
    const unknown = await exec(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });

  test('invalid configuration: exit 2 with every problem named', async () => {
    const config = join(dir, 'bad.yaml');
    await writeFile(config, 'origin: ftp://nope\nstoreMaxBytes: plenty\n');
    const r = await exec(['agent', '--config', config, '--listen', 'localhost'], { LAYERSWARM_FETCH_ATTEMPTS: '99' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /origin: expected an http:\/\/ or https:\/\/ URL/);
    assert.match(r.stderr, /storeMaxBytes: expected a size/);
    assert.match(r.stderr, /--listen: expected HOST:PORT/);
    assert.match(r.stderr, /LAYERSWARM_FETCH_ATTEMPTS: must be ≤ 10/);
  });

  test('an agent configured by file + env + flag serves, and exits cleanly on SIGTERM', async () => {
    const config = join(dir, 'agent.yaml');
    await writeFile(config, `origin: ${origin.url}\nlogLevel: info\nstoreMaxBytes: 64MiB\n`);
    let port = 0;
    const agent = await retryOnPortClash(async () => {
      port = await freePort();
      return startProcess(process.execPath, [cli, 'agent', '--config', config, '--listen', `127.0.0.1:${port}`], {
        name: 'agent',
        env: { LAYERSWARM_DATA_DIR: join(dir, 'data') },
        ready: async (signal) => (await fetch(`http://127.0.0.1:${port}/readyz`, { signal })).ok,
      });
    });
    try {
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      assert.match(metrics, new RegExp(`layerswarm_store_cap_bytes ${64 * 1024 * 1024}`));
      const v2 = await fetch(`http://127.0.0.1:${port}/v2/`);
      assert.equal(v2.headers.get('docker-distribution-api-version'), 'registry/2.0');
      process.kill(agent.pid, 'SIGTERM');
      assert.equal(await agent.exited, 0);
      assert.ok(existsSync(join(dir, 'data', 'blobs')), 'data dir from LAYERSWARM_DATA_DIR');
      const lines = agent.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; component?: string });
      assert.ok(lines.some((l) => l.msg === 'agent ready' && l.component === 'agent'), 'JSON logs with a component');
      assert.ok(lines.some((l) => l.msg === 'agent stopped'));
    } finally {
      await agent.stop();
    }
  });

  test('started by an older system Node, the CLI re-executes on the pinned Node 22', { skip: !existsSync('/usr/bin/node') && 'no system node' }, async () => {
    const system = await run('/usr/bin/node', ['--version']);
    const r = await exec(['version'], {}, '/usr/bin/node');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /layerswarm \d+\.\d+\.\d+/);
    assert.ok(system.stdout.startsWith('v'), system.stdout);
  });

  test('the README demo command runs end to end', async () => {
    const r = await exec(['demo']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /pull 1: .*3 layers verified by sha256; origin served \d+ blob GETs/);
    assert.match(r.stdout, /pull 2: .*3 layers verified by sha256; origin served 0 blob GETs, 0\.0 MiB/);
  });
});
