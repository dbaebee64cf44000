// The tracker's swarm-health dashboard in headless Chromium during a live multi-agent pull: a real registry, a
// tracker, a seeder and four agents (one too slow for its stall timeout: it falls back to the origin for its layer,
// which the page must show as an event and as origin bytes). The page's numbers are compared with
// the tracker API answer they were rendered from (each rendered part carries the `at` of its answer; the test
// captures the page's own API responses), and, once the pull is over, with a fresh API call. Screenshots go to the
// test's temp dir; with LAYERSWARM_UPDATE_SCREENSHOT=1 one is also copied to docs/images/dashboard.png (the README's),
// so a plain test run never changes the checkout. Chromium is the system one (Debian `chromium`), driven by
// playwright-core: no browser is ever downloaded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { loadSeederConfig, peerAdvertiseOf } from '../../agent/seeder/config.ts';
import { startSeeder } from '../../agent/seeder/seeder.ts';
import { createSwarmSeeding } from '../../agent/seeder/swarm-seeding.ts';
import { silentLogger } from '../../shared/logging.ts';
import type { EventList, SwarmList } from '../../tracker/client.ts';
import { DEFAULT_TRACKER_CONFIG } from '../../tracker/config.ts';
import type { SwarmDetailView } from '../../tracker/swarm-views.ts';
import { startTracker, type RunningTracker } from '../../tracker/tracker.ts';
import { startTestAgent, type TestAgent } from '../fixtures/agent.ts';
import { rawRequest } from '../fixtures/http.ts';
import { buildImage, pushImage, sha256Digest } from '../fixtures/images.ts';
import { waitFor } from '../fixtures/process.ts';
import { startRegistry, type Registry } from '../fixtures/registry.ts';
import { makeTempDir, removeTempDir } from '../fixtures/tmp.ts';

const MiB = 2 ** 20;
const CHROMIUM = '/usr/bin/chromium';
const DOCS_SCREENSHOT = new URL('../../docs/images/dashboard.png', import.meta.url).pathname;

/** What the page shows, read in one go (one JS task: no render can happen in between). */
interface PageSnapshot {
  at: number;
  totals: Record<string, string>;
  rows: Array<{ digest: string; size: string; progress: string; seeders: string; complete: string; leechers: string }>;
  events: number;
}
interface DetailSnapshot {
  at: number;
  digest: string;
  peers: Array<{ peerId: string; role: string; progress: string }>;
}

// The browser-side functions below run in the page; these are the few DOM shapes they use (the project's
// TypeScript has no DOM lib).
interface El {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): El | null;
}
declare const document: { querySelector(selector: string): El | null; querySelectorAll(selector: string): Iterable<El> & { length: number } };

const percent = (x: number | null): string => (x === null ? '–' : `${Math.floor(x * 100)}%`);

function expectedRows(list: SwarmList): PageSnapshot['rows'] {
  return list.swarms.map((s) => ({
    digest: s.digest, size: String(s.size), progress: String(s.progress),
    seeders: String(s.seeders), complete: String(s.complete), leechers: String(s.leechers),
  }));
}

function expectedTotals(list: SwarmList): Record<string, string> {
  const t = list.totals;
  return {
    swarms: String(t.swarms), peers: String(t.peers), seeders: String(t.seeders), offloadRatio: percent(t.offloadRatio),
    fallback: String(t.events.fallback), badPeers: String(t.events.peer_banned),
  };
}

async function snapshot(page: Page): Promise<PageSnapshot> {
  return page.evaluate(() => {
    const text = (sel: string): string => document.querySelector(sel)?.textContent ?? '';
    const totals: Record<string, string> = {};
    for (const key of ['swarms', 'peers', 'seeders', 'offloadRatio', 'fallback', 'badPeers']) totals[key] = text(`.kpis [data-total="${key}"]`);
    const rows = [...document.querySelectorAll('#swarms tbody tr')].map((tr) => {
      const cell = (f: string): El | null => tr.querySelector(`[data-field="${f}"]`);
      return {
        digest: tr.getAttribute('data-digest') ?? '',
        size: cell('size')?.getAttribute('data-value') ?? 'null',
        progress: cell('progress')?.querySelector('.bar')?.getAttribute('data-value') ?? 'null',
        seeders: cell('seeders')?.textContent ?? '', complete: cell('complete')?.textContent ?? '', leechers: cell('leechers')?.textContent ?? '',
      };
    });
    return { at: Number(document.querySelector('#swarms')?.getAttribute('data-at')), totals, rows, events: document.querySelectorAll('#events li').length };
  });
}

async function detailSnapshot(page: Page): Promise<DetailSnapshot> {
  return page.evaluate(() => {
    const panel = document.querySelector('#detail');
    return {
      at: Number(panel?.getAttribute('data-at')),
      digest: panel?.getAttribute('data-digest') ?? '',
      peers: [...document.querySelectorAll('#peers tbody tr')].map((tr) => ({
        peerId: tr.getAttribute('data-peer') ?? '',
        role: tr.querySelector('[data-field="role"]')?.textContent ?? '',
        progress: tr.querySelector('[data-field="progress"] .bar')?.getAttribute('data-value') ?? 'null',
      })),
    };
  });
}

describe('swarm-health dashboard in Chromium during a live pull', { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM} (apt-get install chromium)` }, () => {
  let work: string;
  let registry: Registry;
  let tracker: RunningTracker;
  let seeder: { close(): Promise<void> } | undefined;
  const agents: TestAgent[] = [];
  let context: BrowserContext | undefined;
  let layers: Array<{ digest: string; size: number }>;

  before(async () => {
    work = await makeTempDir('dashboard-');
    [registry, tracker] = await Promise.all([
      startRegistry({ auth: 'none' }),
      startTracker({ ...DEFAULT_TRACKER_CONFIG, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent', announceInterval: 1000, peerTtl: 15_000 }, { logger: silentLogger() }),
    ]);
    const image = await buildImage(join(work, 'img'), { tag: '1', seed: 'dashboard', layers: [0, 1, 2].map(() => ({ size: 8 * MiB, gzip: false })) });
    const pushed = await pushImage(image, `${registry.host}/team/web:1`);
    layers = pushed.manifests[0]?.layers ?? [];
    assert.equal(layers.length, 3);
    const config = loadSeederConfig([
      '--origin', registry.url, '--tracker', tracker.url, '--listen', '127.0.0.1:0', '--peer-listen', '127.0.0.1:0',
      '--seeder-id', 'dashboard-seeder', '--data-dir', join(work, 'seeder'), '--heartbeat-interval', '1s', '--log-level', 'silent',
    ], {});
    assert.ok(config);
    seeder = await startSeeder(config, { logger: silentLogger(), seeding: (ctx) => createSwarmSeeding(ctx, { advertise: peerAdvertiseOf(config) }) });
    await waitFor(async () => (await fetch(`${tracker.url}/readyz`)).ok && tracker.metainfo.seeders().length > 0, { timeoutMs: 10_000, what: 'the seeder registered' });
    for (let i = 0; i < 4; i++) {
      agents.push(await startTestAgent({
        origin: registry.url,
        overrides: {
          tracker: tracker.url, peerListen: { host: '127.0.0.1', port: 0 }, peerAdvertise: '127.0.0.1', prefetch: false, logLevel: 'warn',
          zone: i % 2 === 0 ? 'zone-a' : 'zone-b', swarmStallTimeout: 15_000,
          // Slow enough for the page to see the pull in progress.
          downloadLimit: 3 * MiB,
          // Agent 3 (one layer only) gives up on the swarm when no piece is verified within 400 ms, which its 1 MiB/s
          // link cannot do for 1 MiB pieces: it falls back to the origin (reason stalled), which the page shows as
          // an event and as origin bytes.
          ...(i === 3 ? { swarmStallTimeout: 400, downloadLimit: MiB } : {}),
        },
      }));
    }
    context = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1440, height: 1000 },
      timeout: 30_000,
    });
  });

  after(async () => {
    await context?.close();
    await Promise.all(agents.map((a) => a.cleanup()));
    await seeder?.close();
    await tracker?.close();
    await registry?.stop();
    if (work) await removeTempDir(work);
  });

  test('the page shows every swarm, its peers, offload and fallbacks exactly as the API says', async () => {
    assert.ok(context);
    const t0 = performance.now();
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    const foreign: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(tracker.url)) foreign.push(r.url());
    });
    // The API answers the page rendered from, by their `at`.
    const lists = new Map<number, SwarmList>();
    const details = new Map<number, SwarmDetailView & { at: number }>();
    page.on('response', (r) => {
      const path = new URL(r.url()).pathname;
      if (r.status() !== 200 || !path.startsWith('/v1/swarms')) return;
      void r.json().then((body: { at: number }) => {
        if (path === '/v1/swarms') lists.set(body.at, body as SwarmList);
        else details.set(body.at, body as SwarmDetailView & { at: number });
      }, () => undefined);
    });

    // The pull: every agent at once, each fetching the layers one after the other (as a runtime's limited
    // concurrency would): at any moment some layers are done and seeded, one is in flight, some not started.
    const pull = Promise.all(agents.map(async (agent, i) => {
      for (const layer of i === 3 ? layers.slice(0, 1) : layers) {
        const res = await rawRequest(agent.url, `/v2/team/web/blobs/${layer.digest}`, { timeoutMs: 40_000 });
        assert.equal(res.status, 200, res.body.toString().slice(0, 200));
        assert.equal(sha256Digest(res.body), layer.digest);
      }
    }));
    let pulled = false;
    void pull.then(() => (pulled = true), () => undefined);

    await page.goto(`${tracker.url}/`, { timeout: 15_000 });
    assert.equal(new URL(page.url()).pathname, '/dashboard');
    await page.waitForFunction(() => document.querySelectorAll('#swarms tbody tr').length >= 1, undefined, { timeout: 20_000 });

    // Compare what the page shows with the API answer it rendered, until one comparison caught the pull in progress.
    let midPull = false;
    let compared = 0;
    await waitFor(async () => {
      const shown = await snapshot(page);
      const api = await waitFor(() => lists.get(shown.at), { timeoutMs: 5000, what: `the API answer at ${shown.at}` });
      assert.deepEqual(shown.rows, expectedRows(api));
      assert.deepEqual(shown.totals, expectedTotals(api));
      compared++;
      if (api.swarms.some((s) => s.leechers > 0)) midPull = true;
      return midPull || pulled;
    }, { timeoutMs: 30_000, intervalMs: 300, what: 'a compared snapshot during the pull' });
    assert.ok(midPull, 'the page showed the pull in progress');

    // A swarm's detail (the layer being downloaded now, when there is one): its peers with roles and progress.
    const current = [...lists.values()].at(-1)?.swarms.find((s) => s.leechers > 0)?.digest;
    const digest = current ?? layers[0]?.digest ?? '';
    await page.click(`#swarms tbody tr[data-digest="${digest}"]`);
    await page.waitForSelector('#detail:not([hidden]) #peers tbody tr', { timeout: 10_000 });
    const detail = await waitFor(async () => {
      const shown = await detailSnapshot(page);
      const api = details.get(shown.at);
      return shown.digest === digest && api !== undefined ? { shown, api } : undefined;
    }, { timeoutMs: 10_000, what: 'the detail panel rendered from a captured answer' });
    assert.deepEqual(detail.shown.peers, detail.api.peerList.map((p) => ({ peerId: p.peerId, role: p.role, progress: String(p.progress) })));
    assert.ok(detail.api.peerList.some((p) => p.role === 'seeder'), 'the seeder is in the swarm');
    await page.screenshot({ path: join(work, 'dashboard-mid-pull.png'), fullPage: true });
    // The README's picture: best effort, a moment with a finished layer (offload bars) and one in flight.
    const mixed = await waitFor(async () => {
      const shown = await snapshot(page);
      const finished = shown.rows.some((r) => r.leechers === '0' && Number(r.complete) > 0) && Number.parseInt(shown.totals.offloadRatio ?? '', 10) >= 50;
      return (finished && shown.rows.some((r) => r.leechers !== '0')) || pulled ? shown : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'a finished layer and one in flight' });
    const inFlight = mixed.rows.find((r) => r.leechers !== '0');
    if (!pulled && inFlight !== undefined) {
      await page.click(`#swarms tbody tr[data-digest="${inFlight.digest}"]`);
      await page.waitForSelector(`#detail[data-digest="${inFlight.digest}"] #peers tbody tr`, { timeout: 5000 });
      await page.screenshot({ path: join(work, 'dashboard-readme.png'), fullPage: true });
    }

    await pull;
    // After the pull: the page converges on a fresh API answer (retried until equal: both move with announces).
    await waitFor(async () => {
      const [shown, api, events] = await Promise.all([
        snapshot(page),
        fetch(`${tracker.url}/v1/swarms?limit=200`).then((r) => r.json() as Promise<SwarmList>),
        fetch(`${tracker.url}/v1/events?limit=100`).then((r) => r.json() as Promise<EventList>),
      ]);
      const ours = api.swarms.filter((s) => layers.some((l) => l.digest === s.digest));
      assert.deepEqual(ours.map((s) => [s.digest, s.leechers, s.complete]).sort(), layers.map((l, i) => [l.digest, 0, i === 0 ? 4 : 3]).sort(),
        'every agent holds and seeds what it pulled');
      assert.equal(events.counts.fallback, 1, 'agent 3 fell back once');
      // 72 MiB from peers (agents 0–2), agent 3's 8 MiB (less any piece it verified before giving up) from the origin.
      assert.ok(api.totals.offloadRatio !== null && api.totals.offloadRatio >= 0.9 && api.totals.offloadRatio < 1, String(api.totals.offloadRatio));
      assert.deepEqual(shown.rows, expectedRows(api));
      assert.deepEqual(shown.totals, expectedTotals(api));
      assert.equal(shown.events, events.events.length);
      return true;
    }, { timeoutMs: 15_000, intervalMs: 500, what: 'the page to match the API after the pull' });
    assert.match(await page.textContent('#events') ?? '', /origin fallback.*stalled/);
    assert.ok(await page.locator('#offload-chart svg rect').count() >= 2, 'offload bars');
    await page.screenshot({ path: join(work, 'dashboard.png'), fullPage: true });
    if (process.env['LAYERSWARM_UPDATE_SCREENSHOT'] === '1') {
      await mkdir(new URL('.', `file://${DOCS_SCREENSHOT}`).pathname, { recursive: true });
      await copyFile(join(work, existsSync(join(work, 'dashboard-readme.png')) ? 'dashboard-readme.png' : 'dashboard-mid-pull.png'), DOCS_SCREENSHOT);
    }
    assert.deepEqual(foreign, [], 'no request leaves the tracker (no CDN)');
    assert.deepEqual(consoleErrors, []);
    console.log(`dashboard test: ${compared} snapshot comparisons; ${((performance.now() - t0) / 1000).toFixed(1)} s; screenshots in ${work}`);
  });
});
