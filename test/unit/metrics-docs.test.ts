// docs/METRICS.md is the contract of every component's /metrics: each metric a component registers is documented in
// that component's table with the same type and label names, every documented metric is registered, and the Grafana
// dashboard only queries documented names (with documented labels).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { BLOB_BYTE_SOURCES, createAgentMetrics } from '../../agent/metrics.ts';
import { createSeederMetrics } from '../../agent/seeder/metrics.ts';
import { createTrackerMetrics } from '../../tracker/metrics.ts';

const DOC = readFileSync(new URL('../../docs/METRICS.md', import.meta.url), 'utf8');
const DASHBOARD = JSON.parse(readFileSync(new URL('../../deploy/grafana/layerswarm-dashboard.json', import.meta.url), 'utf8')) as Dashboard;

interface Documented {
  readonly name: string;
  readonly type: string;
  readonly labels: string[];
  /** The label cell as written (values are prose). */
  readonly labelText: string;
}

interface Registered {
  readonly name: string;
  readonly type: string;
  readonly labels: string[];
}

const COMPONENTS = {
  agent: { section: 'Agent', processPrefix: 'layerswarm_process_' },
  tracker: { section: 'Tracker', processPrefix: 'layerswarm_tracker_process_' },
  seeder: { section: 'Seeder', processPrefix: 'layerswarm_seeder_process_' },
} as const;
type Component = keyof typeof COMPONENTS;

/** The metric rows of the table under `## <section>`. */
function documented(section: string): Documented[] {
  const start = DOC.indexOf(`\n## ${section}\n`);
  assert.ok(start >= 0, `docs/METRICS.md has a "## ${section}" section`);
  const end = DOC.indexOf('\n## ', start + 1);
  const rows: Documented[] = [];
  for (const line of DOC.slice(start, end < 0 ? undefined : end).split('\n')) {
    const m = /^\| `([^`]+)` \| (counter|gauge|histogram|summary) \| (.*?) \| .* \|$/.exec(line);
    if (m === null) continue;
    const [, name = '', type = '', labelText = ''] = m;
    const labels = labelText === '—' ? [] : labelText.split(';').map((part) => {
      const l = /^\s*`(\w+)`/.exec(part);
      assert.ok(l, `${name}: label cell part ${JSON.stringify(part)} starts with a backticked label name`);
      return l[1] ?? '';
    });
    rows.push({ name, type, labels, labelText });
  }
  assert.ok(rows.length > 0, `the ${section} table has rows`);
  return rows;
}

async function registered(registry: Registry): Promise<Registered[]> {
  const out: Registered[] = [];
  for (const metric of registry.getMetricsAsArray()) {
    const m = metric as unknown as { name: string; labelNames?: string[]; get(): Promise<{ type: unknown }> };
    const { type } = await m.get();
    out.push({ name: m.name, type: String(type), labels: [...(m.labelNames ?? [])] });
  }
  return out;
}

function registries(): Record<Component, Registry> {
  const agent = createAgentMetrics(() => ({ bytes: 0, count: 0, capBytes: 0 }), () => 0, () => undefined);
  const tracker = createTrackerMetrics({
    swarms: () => 0, peers: () => 0, peersByState: () => ({ seeder: 0, complete: 0, leecher: 0 }), seeders: () => 0,
    metainfoKnown: () => 0, metainfoBytes: () => 0, metainfoInFlight: () => 0,
  });
  const seeder = createSeederMetrics({ metainfoKnown: () => 0, storeBytes: () => 0, storeBlobs: () => 0, productionsInFlight: () => 0, preheatQueued: () => 0 });
  return { agent: agent.registry, tracker: tracker.registry, seeder: seeder.registry };
}

/** Every documented metric of a component, process metrics expanded with its prefix. */
function documentedFor(component: Component): Documented[] {
  const { section, processPrefix } = COMPONENTS[component];
  const processRows = documented('Process metrics (every component)').map((d) => {
    assert.ok(d.name.startsWith('{prefix}'), `${d.name}: process metric rows start with {prefix}`);
    return { ...d, name: d.name.replace('{prefix}', processPrefix) };
  });
  return [...documented(section), ...processRows];
}

function allDocumented(): Map<string, Documented> {
  const all = new Map<string, Documented>();
  for (const c of Object.keys(COMPONENTS) as Component[]) for (const d of documentedFor(c)) all.set(d.name, d);
  return all;
}

describe('docs/METRICS.md matches the registries', () => {
  for (const component of Object.keys(COMPONENTS) as Component[]) {
    test(`${component}: every registered metric is documented with its type and labels, and vice versa`, async () => {
      const docs = documentedFor(component);
      const regs = await registered(registries()[component]);
      const docByName = new Map(docs.map((d) => [d.name, d]));
      assert.equal(docByName.size, docs.length, `${component}: no metric documented twice`);
      const undocumented = regs.filter((r) => !docByName.has(r.name)).map((r) => r.name);
      assert.deepEqual(undocumented, [], `${component}: registered but not in docs/METRICS.md`);
      const regNames = new Set(regs.map((r) => r.name));
      const stale = docs.filter((d) => !regNames.has(d.name)).map((d) => d.name);
      assert.deepEqual(stale, [], `${component}: documented but not registered`);
      for (const r of regs) {
        const d = docByName.get(r.name);
        assert.ok(d);
        assert.equal(d.type, r.type, `${r.name}: type`);
        assert.deepEqual([...d.labels].sort(), [...r.labels].sort(), `${r.name}: label names`);
      }
    });
  }

  test('names follow the Prometheus conventions and the blob byte sources are exactly cache|peer|seeder|origin', () => {
    for (const d of allDocumented().values()) {
      assert.match(d.name, /^layerswarm_[a-z0-9_]+$/, d.name);
      if (d.type === 'counter') assert.match(d.name, /_total$/, `${d.name}: counters end in _total`);
      else assert.doesNotMatch(d.name, /_total$/, `${d.name}: only counters end in _total`);
      if (d.type === 'histogram') assert.match(d.name, /_seconds$/, `${d.name}: histograms here measure seconds`);
      for (const label of d.labels) assert.ok(!/digest|peer_?id|repository/.test(label), `${d.name}: unbounded label ${label}`);
    }
    const bytes = allDocumented().get('layerswarm_blob_bytes_total');
    assert.ok(bytes);
    assert.equal(bytes.labelText, `\`source\`: ${BLOB_BYTE_SOURCES.join(', ')}`);
  });
});

interface Panel {
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Array<{ expr: string; datasource?: { uid: string } }>;
}

interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; definition?: string }> };
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];
const SCRAPE_LABELS = new Set(['job', 'instance', 'le']);

describe('Grafana dashboard (deploy/grafana/layerswarm-dashboard.json)', () => {
  const docs = allDocumented();
  const queries = (): string[] => [
    ...DASHBOARD.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ...DASHBOARD.templating.list.map((v) => v.definition ?? '').filter((q) => q !== ''),
  ];

  test('is a Grafana dashboard with a Prometheus datasource variable used by every panel', () => {
    assert.equal(DASHBOARD.uid, 'layerswarm');
    const ds = DASHBOARD.templating.list.find((v) => v.type === 'datasource');
    assert.ok(ds, 'a datasource variable');
    assert.equal(ds.query, 'prometheus');
    const panels = DASHBOARD.panels.filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 15, `${panels.length} panels`);
    for (const p of panels) {
      assert.equal(p.datasource?.uid, `\${${ds.name}}`, `${p.title}: panel datasource`);
      assert.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, `\${${ds.name}}`, `${p.title}: target datasource`);
    }
    const titles = panels.map((p) => p.title.toLowerCase());
    for (const want of ['origin offload', 'bytes by source', 'pull duration', 'fallbacks', 'bad pieces', 'peers connected', 'store usage',
      'swarms', 'peers by state', 'announce rate', 'handout latency', 'preheats', 'metainfo generation']) {
      assert.ok(titles.some((t) => t.includes(want)), `a panel about "${want}"`);
    }
  });

  test('uses only documented metric names, with documented labels', () => {
    const used = new Set<string>();
    for (const expr of queries()) {
      for (const m of expr.matchAll(/\b(layerswarm_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
        const raw = m[1] ?? '';
        let name = raw;
        if (!docs.has(name)) {
          const suffix = HISTOGRAM_SUFFIXES.find((s) => raw.endsWith(s));
          const base = suffix === undefined ? raw : raw.slice(0, -suffix.length);
          assert.equal(docs.get(base)?.type, 'histogram', `${raw} (in ${expr}) is documented in docs/METRICS.md`);
          name = base;
        }
        used.add(name);
        const labels = docs.get(name)?.labels ?? [];
        for (const matcher of (m[3] ?? '').matchAll(/(\w+)\s*(=~|!~|!=|=)/g)) {
          const label = matcher[1] ?? '';
          assert.ok(labels.includes(label) || SCRAPE_LABELS.has(label), `${raw}: label ${label} is documented (in ${expr})`);
        }
      }
      for (const by of expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const label of (by[1] ?? '').split(',').map((s) => s.trim())) {
          assert.ok(SCRAPE_LABELS.has(label) || [...docs.values()].some((d) => d.labels.includes(label)), `by (${label}) is a documented label (in ${expr})`);
        }
      }
    }
    for (const want of ['layerswarm_blob_bytes_total', 'layerswarm_blob_pull_duration_seconds', 'layerswarm_swarm_fallbacks_total', 'layerswarm_tracker_peers_by_state',
      'layerswarm_tracker_handout_duration_seconds', 'layerswarm_seeder_metainfo_generation_seconds', 'layerswarm_seeder_preheats_total']) {
      assert.ok(used.has(want), `the dashboard uses ${want}`);
    }
  });
});
