// `layerswarm bench rollout` at N = 6: the real registry (behind the harness's counting proxy), tracker, seeder and
// six real agents in host processes pull a small 2-layer image, first through the swarm, then as plain mirrors
// (baseline full). Asserts every node completed with verified digests, the results are consistent
// (checkConsistency), origin egress was counted (swarm ≈ 1× image: the seeder's preheat; baseline ≈ N×), the
// ratios are computed from the recorded times, and no host process or port is left behind. At N = 8 the stress
// options at once: staggered starts, 2 agents closed mid-run, 2 at half speed, 1 serving corrupt pieces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { runRolloutBench } from '../../bench/rollout.ts';
import { parseRolloutOptions } from '../../bench/rollout/options.ts';
import { checkConsistency, fluidBound, percentile, type RolloutResults } from '../../bench/lib/rollout-results.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const N = 6;

function portClosed(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

test('bench rollout: N = 6 through the swarm and as origin-only, consistent results', { timeout: 120_000 }, async () => {
  const out = await makeTempDir('bench-rollout');
  try {
    const options = parseRolloutOptions([
      '--nodes', String(N), '--hosts', '2', '--layers', '4.5,4.5', '--piece-kib', '64', '--node-kibps', '4096', '--seed-mibps', '8',
      '--baseline', 'full', '--out', out, '--progress-ms', '60000',
    ], false);
    assert.ok(options);
    const lines: string[] = [];
    const { results, resultsPath, svgPath } = await runRolloutBench(options, 'test', (t) => lines.push(t));
    const onDisk = JSON.parse(await readFile(resultsPath, 'utf8')) as RolloutResults;
    assert.equal(onDisk.mode, 'emulated');
    assert.match(await readFile(svgPath, 'utf8'), /^<svg/);

    // Every node completed: the puller verified config and layers by sha256 at each (a failed pull is reported).
    assert.equal(results.nodes, N);
    assert.equal(results.completed, N, `failed: ${JSON.stringify(results.emulation.failed)}`);
    assert.deepEqual(results.emulation.failed, []);
    assert.ok(results.nodeSeconds.every((s) => s !== null && s > 0));
    assert.deepEqual(checkConsistency(results), []);

    // Origin egress counted by the proxy: the swarm run = the seeder's preheat (≈ 1 image) + manifests/config.
    assert.ok(results.originEgressRatio >= 1 && results.originEgressRatio <= 1.1, `swarm origin egress ${results.originEgressRatio}× image`);
    assert.ok(results.emulation.originEgress.toSeeder >= results.layers.reduce((a, l) => a + l, 0), 'the seeder fetched every layer');
    // The swarm delivered the layers: pieces came from the seeder and from other agents.
    assert.ok(results.nodeBytesFromSeeder.reduce((a, b) => a + b, 0) > 0);
    assert.ok(results.nodeBytesUp.reduce((a, b) => a + b, 0) > 0, 'agents uploaded to each other');

    // Baseline: every node pulled everything from the origin (≈ N images), measured, not projected.
    const b = results.baseline;
    assert.ok(b);
    assert.equal(b.kind, 'measured');
    assert.equal(b.completed, N);
    assert.ok(b.originEgressRatio >= N && b.originEgressRatio <= N * 1.05, `baseline origin egress ${b.originEgressRatio}× image`);
    assert.ok(b.nodeBytesFromOrigin.every((x) => x >= results.imageBytes));

    // Ratios come from the recorded times.
    const bound = fluidBound(results.imageBytes, N, results.seederLinkBytesPerSec, results.nodeLinkBytesPerSec);
    assert.ok(Math.abs(results.boundSeconds - bound) < 1e-3);
    const times = results.nodeSeconds.map((s) => s as number);
    assert.equal(results.maxSeconds, Math.round(Math.max(...times) * 1000) / 1000);
    assert.ok(Math.abs(results.maxRatio - results.maxSeconds / bound) < 1e-3);
    assert.ok(Math.abs(results.p50Seconds - percentile(times, 50)) < 1e-3);
    const baseTimes = b.nodeSeconds.map((s) => s as number);
    assert.ok(results.speedup);
    assert.ok(Math.abs(results.speedup.max - Math.round((Math.max(...baseTimes) / results.maxSeconds) * 100) / 100) < 0.011);

    // Resources were measured per host process.
    const hosts = (results.resources as { hostProcesses: Array<{ maxRssBytes: number; pid: number }> }).hostProcesses;
    assert.equal(hosts.length, 2);
    assert.ok(hosts.every((h) => h.maxRssBytes > 0));

    // Clean-up: host processes are gone, agents' registry ports closed.
    for (const h of hosts) {
      assert.throws(() => process.kill(h.pid, 0), /ESRCH/, `host process ${h.pid} still running`);
    }
    const urls = results.emulation.agentUrls;
    assert.equal(urls.length, 2 * N);
    for (const url of urls) assert.ok(await portClosed(url), `${url} still listening`);
  } finally {
    await removeTempDir(out);
  }
});

test('bench rollout: bad options are refused', () => {
  assert.throws(() => parseRolloutOptions(['--baseline', 'sometimes'], false), /--baseline/);
  assert.throws(() => parseRolloutOptions(['--piece-kib', '100'], false), /power of two/);
  assert.throws(() => parseRolloutOptions(['--churn-fraction', '0.6', '--slow-fraction', '0.5'], false), /fractions/);
  assert.equal(parseRolloutOptions(['--help'], false), undefined);
  const o = parseRolloutOptions([], false);
  assert.equal(o?.nodes, 500);
  assert.equal(o?.baseline, 'capped');
});

test('bench rollout: fair-share projection of a capped baseline', async () => {
  const { fairShareFinish } = await import('../../bench/rollout/collect.ts');
  // Two nodes, 10 and 20 bytes left, link 10 B/s shared: both at 5 B/s until the first finishes at 2 s, then the
  // second alone at 10 B/s for its last 10 bytes: 3 s.
  assert.deepEqual(fairShareFinish([10, 20], [Infinity, Infinity], 10), [2, 3]);
  // A node capped at 2 B/s leaves the rest to the other.
  const [slow, fast] = fairShareFinish([10, 40], [2, Infinity], 10);
  assert.equal(slow, 5);
  assert.equal(fast, 5);
});

test('bench rollout: stress options (stagger, churn, slow and corrupt agents) at N = 8, reported with the same metrics', { timeout: 120_000 }, async () => {
  const out = await makeTempDir('bench-rollout-stress');
  try {
    const options = parseRolloutOptions([
      '--nodes', '8', '--hosts', '2', '--layers', '4.5,4.5', '--piece-kib', '64', '--node-kibps', '2048', '--seed-mibps', '8', '--baseline', 'off',
      '--stagger-ms', '1000', '--churn-fraction', '0.25', '--churn-at-s', '2', '--slow-fraction', '0.25', '--slow-factor', '2', '--corrupt-fraction', '0.125',
      '--out', out, '--progress-ms', '60000',
    ], false);
    assert.ok(options);
    const { results } = await runRolloutBench(options, 'test', () => undefined);
    const { roles, nodeIndexes } = results.emulation;
    assert.equal(roles.slow.length, 2);
    assert.equal(roles.corrupt.length, 1);
    assert.equal(roles.churned.length, 2);
    const churned = roles.churned.map((c) => c.index);
    assert.equal(new Set([...roles.slow, ...roles.corrupt, ...churned]).size, 5, 'roles are disjoint');
    assert.ok(roles.churned.every((c) => c.seconds >= 2), 'churned at --churn-at-s');

    // Churned agents leave the statistics; every other node (slow and corrupt ones included) completed its verified pull.
    assert.equal(results.nodes, 6);
    assert.equal(results.completed, 6, `failed: ${JSON.stringify(results.emulation.failed)}`);
    assert.deepEqual(results.emulation.failed, []);
    assert.ok(churned.every((i) => !nodeIndexes.includes(i)));
    assert.deepEqual(checkConsistency(results), []);
    assert.ok(Math.abs(results.boundSeconds - fluidBound(results.imageBytes, 6, results.seederLinkBytesPerSec, results.nodeLinkBytesPerSec)) < 1e-3);

    // Slow agents got B / 2: the image cannot have reached them faster than that.
    for (const index of roles.slow) {
      const seconds = results.nodeSeconds[nodeIndexes.indexOf(index)];
      assert.ok(seconds !== null && seconds !== undefined && seconds >= results.imageBytes / (results.nodeLinkBytesPerSec / 2), `slow node ${index}: ${seconds} s`);
    }
    // The corrupt agent's pieces failed verification at their receivers, which banned it; every pull still verified.
    assert.ok(results.emulation.badPieces >= 1, 'the corrupt agent was asked for pieces');
    assert.ok(results.emulation.peersBanned >= 1);
  } finally {
    await removeTempDir(out);
  }
});
