/**
 * `layerswarm demo` (npm run demo): the whole pull path on one machine, with real parts.
 * Starts a real distribution registry as the origin, builds and pushes a generated 3-layer image, starts an agent
 * (the real CLI, as a subprocess) in front of it, pulls the image through the agent with skopeo twice, verifies every
 * layer digest, and shows the origin's blob egress for each pull (the second pull is served from the agent's cache).
 * Then the swarm: a tracker, a seeder and three agents with --tracker (all real CLI processes); the three pull the
 * image at once, and the demo shows where their layer bytes came from (peers, seeder, origin) and what the origin sent.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry } from '../test/fixtures/registry.ts';
import { buildImage, pushImage, sha256Digest } from '../test/fixtures/images.ts';
import { freePort } from '../test/fixtures/ports.ts';
import { run, startProcess } from '../test/fixtures/process.ts';
import { startAgentProcess, startSeederProcess, startTrackerProcess } from '../test/fixtures/cluster.ts';

const MiB = 2 ** 20;
const cli = fileURLToPath(new URL('../bin/layerswarm.mjs', import.meta.url));

function say(text: string): void {
  console.log(`[demo] ${text}`);
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log('Usage: layerswarm demo [--keep]\n\nStarts an origin registry, an agent and pulls a generated image through it with skopeo; then a tracker, a seeder and three\nswarm agents that pull it at once. --keep keeps the temporary directory.');
    return 0;
  }
  // Not the fixtures' makeTempDir: that one is removed at exit, and --keep must keep it.
  const dir = await mkdtemp(join(tmpdir(), 'layerswarm-demo-'));
  const cleanups: Array<() => Promise<void>> = [];
  try {
    say('starting the origin: a real distribution registry (docker-registry)');
    const origin = await startRegistry({ auth: 'none' });
    cleanups.push(() => origin.stop());
    say(`origin at ${origin.url}`);

    say('building a 3-layer image (8 + 16 + 24 MiB of random data) and pushing it with skopeo');
    const image = await buildImage(join(dir, 'layout'), { tag: '1', layers: [{ size: 8 * MiB }, { size: 16 * MiB }, { size: 24 * MiB }] });
    const pushed = await pushImage(image, `${origin.host}/demo/app:1`);
    const layers = pushed.manifests[0]?.layers ?? [];
    say(`pushed ${origin.host}/demo/app:1 = ${pushed.digest}`);

    const port = await freePort();
    say(`starting the agent: layerswarm agent --listen 127.0.0.1:${port} --origin ${origin.url}`);
    const agent = await startProcess(process.execPath, [cli, 'agent', '--listen', `127.0.0.1:${port}`, '--origin', origin.url, '--data-dir', join(dir, 'agent'), '--log-level', 'warn'], {
      name: 'agent',
      ready: async (signal) => (await fetch(`http://127.0.0.1:${port}/readyz`, { signal })).ok,
    });
    cleanups.unshift(() => agent.stop());

    for (const round of [1, 2]) {
      origin.clearRequests();
      const out = join(dir, `pull-${round}`);
      const started = performance.now();
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://127.0.0.1:${port}/demo/app:1`, `dir:${out}`], { timeoutMs: 120_000 });
      const ms = performance.now() - started;
      const files = await readdir(out);
      for (const layer of layers) {
        const hex = layer.digest.slice('sha256:'.length);
        if (!files.includes(hex) || sha256Digest(await readFile(join(out, hex))) !== layer.digest) throw new Error(`layer ${layer.digest} missing or wrong in pull ${round}`);
      }
      const blobGets = (await origin.settledRequests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
      const egress = blobGets.reduce((n, r) => n + r.bytes, 0);
      say(`pull ${round}: skopeo docker://127.0.0.1:${port}/demo/app:1 → dir: in ${ms.toFixed(0)} ms; ${layers.length} layers verified by sha256; ` +
        `origin served ${blobGets.length} blob GETs, ${(egress / MiB).toFixed(1)} MiB`);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    say('agent metrics:');
    for (const line of metrics.split('\n')) {
      if (/^layerswarm_(blob_bytes_served_total|blob_fetches_total|store_bytes|store_blobs|access_checks_total)/.test(line)) console.log(`         ${line}`);
    }
    say('the second pull was served from the agent\'s verified cache without blob traffic to the origin.');

    say('the swarm: a tracker, a seeder beside the origin and three agents with --tracker (real CLI processes)');
    const tracker = await startTrackerProcess();
    cleanups.unshift(() => tracker.stop());
    const seeder = await startSeederProcess({
      origin: origin.url, tracker: tracker.url, dataDir: join(dir, 'seeder'), seederId: 'demo-seeder', port: await freePort(), peerPort: await freePort(), logLevel: 'warn',
    });
    cleanups.unshift(() => seeder.stop());
    const agents = [];
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const a = await startAgentProcess({ name, origin: origin.url, tracker: tracker.url, dir: join(dir, 'swarm'), logLevel: 'warn' });
      cleanups.unshift(() => a.stop());
      agents.push(a);
    }
    origin.clearRequests();
    const started = performance.now();
    await Promise.all(agents.map((a) => run('skopeo', ['copy', '--src-tls-verify=false', `docker://${a.host}/demo/app:1`, `dir:${join(dir, `swarm-${a.name}`)}`], { timeoutMs: 120_000 })));
    for (const a of agents) {
      const files = await readdir(join(dir, `swarm-${a.name}`));
      for (const layer of layers) {
        const hex = layer.digest.slice('sha256:'.length);
        if (!files.includes(hex) || sha256Digest(await readFile(join(dir, `swarm-${a.name}`, hex))) !== layer.digest) throw new Error(`layer ${layer.digest} missing or wrong at ${a.name}`);
      }
    }
    const blobGets = (await origin.settledRequests()).filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
    const egress = blobGets.reduce((n, r) => n + r.bytes, 0);
    const imageBytes = layers.reduce((n, l) => n + l.size, 0);
    say(`3 agents pulled at once in ${(performance.now() - started).toFixed(0)} ms, every layer verified by sha256; the origin sent ` +
      `${(egress / MiB).toFixed(1)} MiB in ${blobGets.length} blob GETs = ${(egress / imageBytes).toFixed(2)}× the layers (instead of 3×)`);
    for (const a of agents) {
      const from = async (source: string): Promise<string> => ((await a.metric('layerswarm_blob_bytes_total', { source })) / MiB).toFixed(1);
      say(`  ${a.name}: layer bytes from other agents ${await from('peer')} MiB, from the seeder ${await from('seeder')} MiB, from the origin ${await from('origin')} MiB`);
    }
    say('done.');
    return 0;
  } catch (err) {
    console.error(`[demo] failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    return 1;
  } finally {
    for (const c of cleanups) await c().catch(() => {});
    if (!argv.includes('--keep')) await rm(dir, { recursive: true, force: true });
    else say(`kept ${dir}`);
  }
}
