// deploy/kubernetes: every overlay renders with `kubectl kustomize`, every object is valid against the Kubernetes
// JSON schemas (kubernetes-models; the Prometheus Operator's for ServiceMonitor/PodMonitor) and uses no unknown field,
// every `layerswarm` invocation (args, LAYERSWARM_* env, --config file from the ConfigMap) is accepted by the CLI, and
// the objects reference each other consistently.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../fixtures/deploy/base-image.ts';
import { checkInvocation, type Invocation } from '../fixtures/deploy/cli-args.ts';
import { parseDuration } from '../../shared/config/units.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- rendered manifests are untyped JSON, checked by schema first */
type Obj = Record<string, any>;

const KUSTOMIZE_DIR = join(REPO_ROOT, 'deploy', 'kubernetes');
const OVERLAYS = readdirSync(join(KUSTOMIZE_DIR, 'overlays'));
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const skip = kubectl.error === undefined ? false : 'kubectl is not installed (needed for `kubectl kustomize`)';

function render(overlay: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', join(KUSTOMIZE_DIR, 'overlays', overlay)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize overlays/${overlay}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter((o) => o !== null);
}

async function modelOf(o: Obj): Promise<{ new (data: Obj): { validate(): void } }> {
  const [group, version] = String(o.apiVersion).includes('/') ? String(o.apiVersion).split('/') : ['', o.apiVersion];
  const module = group === 'monitoring.coreos.com'
    ? `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}`
    : `kubernetes-models/${group === '' ? '' : `${group}/`}${version}/${o.kind}`;
  const mod = (await import(module)) as Record<string, { new (data: Obj): { validate(): void } }>;
  const model = mod[o.kind as string];
  assert.ok(model, `no model for ${o.apiVersion} ${o.kind}`);
  return model;
}

/** Every property name the Kubernetes and Prometheus Operator types declare (from the models' .d.ts files). */
const KNOWN_FIELDS = (() => {
  const dirOf = (specifier: string): string => dirname(fileURLToPath(import.meta.resolve(specifier)));
  const dirs = [
    ...['v1/Pod', 'apps/v1/DaemonSet', 'policy/v1/PodDisruptionBudget', 'scheduling.k8s.io/v1/PriorityClass'].map((m) => dirOf(`kubernetes-models/${m}`)),
    dirOf('@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta'),
    dirOf('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'),
  ];
  const names = new Set<string>();
  for (const dir of dirs) {
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.d.ts'))) {
      for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/^\s+"?([A-Za-z0-9$_-]+)"?\??:/gm)) names.add(m[1] as string);
    }
  }
  return names;
})();
const FREE_FORM = new Set(['labels', 'annotations', 'data', 'stringData', 'binaryData', 'matchLabels', 'nodeSelector', 'requests', 'limits']);

function unknownFields(o: Obj): string[] {
  const out: string[] = [];
  const walk = (node: unknown, path: string, key: string): void => {
    if (Array.isArray(node)) return node.forEach((v, i) => walk(v, `${path}[${i}]`, key));
    if (typeof node !== 'object' || node === null || FREE_FORM.has(key)) return;
    if (o.kind === 'Service' && path === '.spec.selector') return;
    for (const [k, v] of Object.entries(node)) {
      if (!KNOWN_FIELDS.has(k)) out.push(`${path}.${k}`);
      walk(v, `${path}.${k}`, k);
    }
  };
  walk(o, '', '');
  return out;
}

const podSpecOf = (o: Obj): Obj | undefined => o.spec?.template?.spec as Obj | undefined;
const workloads = (objs: Obj[]): Obj[] => objs.filter((o) => ['DaemonSet', 'Deployment', 'StatefulSet'].includes(o.kind));
const find = (objs: Obj[], kind: string, name: string): Obj | undefined => objs.find((o) => o.kind === kind && o.metadata?.name === name);
const argOf = (argv: readonly string[], flag: string): string | undefined => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

function secretValue(secret: Obj, key: string): string | undefined {
  if (secret.stringData?.[key] !== undefined) return String(secret.stringData[key]);
  if (secret.data?.[key] !== undefined) return Buffer.from(String(secret.data[key]), 'base64').toString('utf8');
  return undefined;
}

const FIELD_VALUES: Record<string, string> = { 'status.podIP': '10.0.0.7', 'metadata.name': 'layerswarm-seeder-7d9f-x2c4q', 'spec.nodeName': 'node-1', 'status.hostIP': '10.0.0.7' };

/** The `layerswarm` processes of a rendered overlay, as the kubelet would start them (env resolved, files mounted). */
function invocations(overlay: string, objs: Obj[]): Invocation[] {
  const out: Invocation[] = [];
  for (const w of workloads(objs)) {
    const pod = podSpecOf(w) as Obj;
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])] as Obj[]) {
      if (!String(c.image).startsWith('layerswarm')) continue;
      if (c.command !== undefined && c.command[0] !== 'layerswarm') continue; // e.g. chown, sleep
      const where = `overlays/${overlay} ${w.kind}/${w.metadata.name} container ${c.name}`;
      const env: Record<string, string> = {};
      for (const e of (c.env ?? []) as Obj[]) {
        let value: string | undefined;
        if (e.value !== undefined) value = String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string) => env[name] ?? all);
        else if (e.valueFrom?.fieldRef) value = FIELD_VALUES[e.valueFrom.fieldRef.fieldPath as string];
        else if (e.valueFrom?.configMapKeyRef) {
          const ref = e.valueFrom.configMapKeyRef as Obj;
          value = find(objs, 'ConfigMap', ref.name)?.data?.[ref.key];
          assert.ok(value !== undefined || ref.optional === true, `${where}: env ${e.name} refers to a missing ConfigMap key ${ref.name}/${ref.key}`);
        } else if (e.valueFrom?.secretKeyRef) {
          const ref = e.valueFrom.secretKeyRef as Obj;
          const secret = find(objs, 'Secret', ref.name);
          value = secret === undefined ? undefined : secretValue(secret, ref.key);
          assert.ok(value !== undefined || ref.optional === true, `${where}: env ${e.name} refers to a missing Secret key ${ref.name}/${ref.key}`);
        }
        assert.ok(value !== undefined || e.valueFrom !== undefined, `${where}: env ${e.name} has no value`);
        if (value !== undefined) env[e.name] = value;
      }
      const files: Record<string, string> = {};
      for (const m of (c.volumeMounts ?? []) as Obj[]) {
        const v = (pod.volumes as Obj[]).find((x) => x.name === m.name);
        assert.ok(v, `${where}: volumeMount ${m.name} has no volume`);
        const source = v.configMap ? find(objs, 'ConfigMap', v.configMap.name) : v.secret ? find(objs, 'Secret', v.secret.secretName) : undefined;
        if (!v.configMap && !v.secret) continue;
        assert.ok(source, `${where}: volume ${m.name} refers to a missing ${v.configMap ? 'ConfigMap' : 'Secret'}`);
        const items = ((v.configMap ?? v.secret).items as Obj[] | undefined) ?? Object.keys({ ...source.data, ...source.stringData }).map((key) => ({ key, path: key }));
        for (const item of items) {
          const content = v.configMap ? source.data?.[item.key] : secretValue(source, item.key);
          assert.ok(content !== undefined, `${where}: volume ${m.name} item ${item.key} is missing`);
          files[`${m.mountPath}/${item.path}`] = content;
        }
      }
      const argv = [...(c.command?.slice(1) ?? []), ...(c.args ?? [])] as string[];
      for (const [flag, path] of [['--config', argOf(argv, '--config')], ['--docker-config', argOf(argv, '--docker-config')]]) {
        if (path !== undefined) assert.ok(path in files, `${where}: ${flag} ${path} is not a mounted file`);
      }
      out.push({ where, argv, env, files });
    }
  }
  return out;
}

describe('deploy/kubernetes', { skip }, () => {
  test('overlays: default, monitoring, uninstall; the unknown-field check is not vacuous', () => {
    assert.deepEqual([...OVERLAYS].sort(), ['default', 'monitoring', 'uninstall']);
    assert.deepEqual(unknownFields({ kind: 'DaemonSet', spec: { template: { spec: { containers: [{ name: 'a', argz: [] }] } } } }), ['.spec.template.spec.containers[0].argz']);
  });

  for (const overlay of OVERLAYS) {
    describe(`overlays/${overlay}`, () => {
      const objs = skip ? [] : render(overlay);

      test('every object is valid against its Kubernetes JSON schema and has no unknown field', async () => {
        assert.ok(objs.length >= 10, `rendered ${objs.length} objects`);
        for (const o of objs) {
          const Model = await modelOf(o);
          assert.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata?.name}`);
          assert.deepEqual(unknownFields(o), [], `${o.kind}/${o.metadata?.name}: unknown fields`);
          if (!['Namespace', 'PriorityClass'].includes(o.kind)) assert.equal(o.metadata.namespace, 'layerswarm', `${o.kind}/${o.metadata.name}`);
        }
      });

      test('every layerswarm invocation is accepted by the CLI (flags, env, config files: no drift)', () => {
        const all = invocations(overlay, objs);
        assert.ok(all.length >= (overlay === 'uninstall' ? 3 : 4), `found ${all.length}`);
        assert.deepEqual(all.flatMap(checkInvocation), []);
        // Not vacuous: an unknown variable or config key in the same invocations is caught.
        const agent = all.find((i) => i.argv[0] === 'agent');
        if (agent !== undefined) {
          assert.notDeepEqual(checkInvocation({ ...agent, env: { ...agent.env, LAYERSWARM_STORE_MAX_BYTE: '1GiB' } }), []);
          const files = Object.fromEntries(Object.entries(agent.files ?? {}).map(([k, v]) => [k, k.endsWith('agent.yaml') ? `${v}\nstoreMaxByte: 1GiB\n` : v]));
          assert.notDeepEqual(checkInvocation({ ...agent, files }), []);
        }
      });

      test('references resolve: PDBs, Services, PriorityClass', () => {
        const pods = workloads(objs).map((w) => ({ w, labels: w.spec.template.metadata.labels as Record<string, string> }));
        for (const pdb of objs.filter((o) => o.kind === 'PodDisruptionBudget')) {
          assert.ok(pods.some((p) => matches(pdb.spec.selector.matchLabels, p.labels)), `PDB ${pdb.metadata.name} selects a workload`);
          assert.ok((pdb.spec.minAvailable === undefined) !== (pdb.spec.maxUnavailable === undefined));
        }
        for (const svc of objs.filter((o) => o.kind === 'Service')) {
          const p = pods.find((x) => matches(svc.spec.selector, x.labels));
          assert.ok(p, `Service ${svc.metadata.name} selects a workload`);
          const ports = (podSpecOf(p.w)?.containers as Obj[]).flatMap((c) => (c.ports ?? []) as Obj[]);
          for (const sp of svc.spec.ports as Obj[]) assert.ok(ports.some((cp) => cp.name === sp.targetPort || cp.containerPort === sp.targetPort), `Service ${svc.metadata.name} port ${sp.name}`);
        }
        for (const w of workloads(objs)) {
          const pc = podSpecOf(w)?.priorityClassName as string | undefined;
          if (pc !== undefined) assert.ok(find(objs, 'PriorityClass', pc), `PriorityClass ${pc}`);
          for (const c of [...(podSpecOf(w)?.initContainers ?? []), ...(podSpecOf(w)?.containers ?? [])] as Obj[]) {
            for (const kind of ['cpu', 'memory']) {
              assert.ok(c.resources?.requests?.[kind] && c.resources?.limits?.[kind], `${w.metadata.name}/${c.name}: ${kind} request and limit`);
            }
            assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${w.metadata.name}/${c.name}`);
          }
        }
      });

      if (overlay !== 'uninstall') {
        test('agent DaemonSet: every node, host network, registry on localhost (monitoring: a node-wide metrics listener), probes, containerd hosts, shutdown', () => {
          const ds = find(objs, 'DaemonSet', 'layerswarm-agent') as Obj;
          const pod = podSpecOf(ds) as Obj;
          assert.equal(pod.hostNetwork, true);
          assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
          assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
          const agent = (pod.containers as Obj[]).find((c) => c.name === 'agent') as Obj;
          const argv = agent.args as string[];
          const listen = argOf(argv, '--listen') as string;
          const [host, port] = listen.split(':');
          assert.equal(host, '127.0.0.1');
          if (overlay === 'monitoring') {
            // Prometheus scrapes the metrics-only listener on the node's addresses, through the port the PodMonitor names.
            const metricsListen = argOf(argv, '--metrics-listen') as string;
            assert.equal(metricsListen.split(':')[0], '0.0.0.0');
            const metricsPort = (agent.ports as Obj[]).find((p) => p.name === 'metrics') as Obj;
            assert.equal(String(metricsPort.containerPort), metricsListen.split(':')[1]);
            const podMonitor = find(objs, 'PodMonitor', 'layerswarm-agent') as Obj;
            assert.equal(podMonitor.spec.podMetricsEndpoints[0].port, 'metrics');
          } else {
            assert.equal(argOf(argv, '--metrics-listen'), undefined);
          }
          for (const probe of [agent.startupProbe, agent.readinessProbe, agent.livenessProbe] as Obj[]) {
            assert.equal(probe.httpGet.host, '127.0.0.1');
            assert.equal(String(probe.httpGet.port), port);
          }
          assert.equal(agent.readinessProbe.httpGet.path, '/readyz');
          assert.equal(agent.securityContext.runAsNonRoot, true);
          assert.equal(agent.securityContext.runAsUser, 10001);
          const shutdownMs = parseDuration(argOf(argv, '--shutdown-timeout') ?? '10s') as number;
          assert.ok(pod.terminationGracePeriodSeconds * 1000 >= shutdownMs + 10_000, 'grace period covers --shutdown-timeout plus the swarm close');
          // Data: the hostPath the agent's --data-dir is mounted from; the cap is storeMaxBytes in its config.
          const dataMount = (agent.volumeMounts as Obj[]).find((m) => m.mountPath === argOf(argv, '--data-dir')) as Obj;
          assert.deepEqual((pod.volumes as Obj[]).find((v) => v.name === dataMount.name)?.hostPath, { path: '/var/lib/layerswarm', type: 'DirectoryOrCreate' });
          const config = parseYaml(find(objs, 'ConfigMap', (pod.volumes as Obj[]).find((v) => v.name === 'config')?.configMap.name)?.data['agent.yaml']) as Obj;
          assert.ok(config.storeMaxBytes, 'agent.yaml sets storeMaxBytes (the hostPath size cap)');
          // The tracker the agents use is the tracker Service.
          const trackerSvc = find(objs, 'Service', 'layerswarm-tracker') as Obj;
          assert.equal(config.tracker, `http://${trackerSvc.metadata.name}.${trackerSvc.metadata.namespace}.svc.cluster.local:${trackerSvc.spec.ports[0].port}`);
          // The init container points the node's containerd at this agent.
          const init = (pod.initContainers as Obj[]).find((c) => c.name === 'configure-containerd') as Obj;
          assert.deepEqual(init.args.slice(0, 2), ['configure', 'containerd']);
          assert.equal(argOf(init.args, '--mirror'), `http://127.0.0.1:${port}`);
          const hostsMount = (init.volumeMounts as Obj[]).find((m) => m.mountPath === argOf(init.args, '--hosts-dir')) as Obj;
          assert.deepEqual((pod.volumes as Obj[]).find((v) => v.name === hostsMount.name)?.hostPath, { path: '/etc/containerd/certs.d', type: 'DirectoryOrCreate' });
        });

        test('seeder: config points at the tracker Service; registry notifications reach its Service', () => {
          const dep = find(objs, 'Deployment', 'layerswarm-seeder') as Obj;
          const pod = podSpecOf(dep) as Obj;
          const config = parseYaml(find(objs, 'ConfigMap', (pod.volumes as Obj[]).find((v) => v.name === 'config')?.configMap.name)?.data['seeder.yaml']) as Obj;
          const trackerSvc = find(objs, 'Service', 'layerswarm-tracker') as Obj;
          assert.equal(config.tracker, `http://layerswarm-tracker.layerswarm.svc.cluster.local:${trackerSvc.spec.ports[0].port}`);
          const svc = find(objs, 'Service', 'layerswarm-seeder') as Obj;
          const snippet = parseYaml(readFileSync(join(KUSTOMIZE_DIR, 'registry-notifications.yml'), 'utf8')) as Obj;
          assert.equal(snippet.notifications.endpoints[0].url, `http://${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local:${svc.spec.ports[0].port}/v1/notifications`);
          const seeder = (pod.containers as Obj[])[0] as Obj;
          assert.equal(portOfListen(argOf(seeder.args, '--listen')), String(seeder.ports.find((p: Obj) => p.name === 'http').containerPort));
        });
      }

      if (overlay === 'monitoring') {
        test('ServiceMonitor and PodMonitor select the layerswarm endpoints', () => {
          const sm = find(objs, 'ServiceMonitor', 'layerswarm') as Obj;
          const services = objs.filter((o) => o.kind === 'Service');
          const selected = services.filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels) && sm.spec.selector.matchExpressions[0].values.includes(s.metadata.labels['app.kubernetes.io/component']));
          assert.deepEqual(selected.map((s) => s.metadata.name).sort(), ['layerswarm-seeder', 'layerswarm-tracker']);
          for (const s of selected) assert.ok((s.spec.ports as Obj[]).some((p) => p.name === sm.spec.endpoints[0].port));
          const pm = find(objs, 'PodMonitor', 'layerswarm-agent') as Obj;
          const ds = find(objs, 'DaemonSet', 'layerswarm-agent') as Obj;
          assert.ok(matches(pm.spec.selector.matchLabels, ds.spec.template.metadata.labels));
          const agent = (podSpecOf(ds)?.containers as Obj[])[0] as Obj;
          assert.ok((agent.ports as Obj[]).some((p) => p.name === pm.spec.podMetricsEndpoints[0].port));
        });
      }

      if (overlay === 'uninstall') {
        test('uninstall: every node runs `configure containerd --remove` for the configured registries, then idles', () => {
          const ds = find(objs, 'DaemonSet', 'layerswarm-agent') as Obj;
          const pod = podSpecOf(ds) as Obj;
          assert.deepEqual((pod.initContainers as Obj[]).map((c) => c.name), ['configure-containerd']);
          const init = (pod.initContainers as Obj[])[0] as Obj;
          assert.ok(init.args.includes('--remove'));
          assert.ok((init.env as Obj[]).some((e) => e.name === 'LAYERSWARM_REGISTRY'));
          assert.deepEqual((pod.containers as Obj[]).map((c) => c.command), [['sleep', 'infinity']]);
          assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
        });
      }
    });
  }
});

function portOfListen(listen: string | undefined): string | undefined {
  return listen?.split(':').at(-1);
}
