// The swarm-health dashboard: polls the tracker's monitoring API (same origin) and renders it. No dependencies, no
// build step. Every value comes from an API answer as it is; each rendered part carries the `at` of the answer it
// shows (data-at) so a reader (or a test) can tell which answer it is looking at.
const POLL_MS = 2000;
const MAX_EVENTS = 100;
const SVG = 'http://www.w3.org/2000/svg';

const state = { paused: false, selected: null, lastEventId: 0, events: [], timer: undefined, inFlight: false };
const $ = (sel) => document.querySelector(sel);

/** An element with attributes and children (strings become text nodes: nothing is parsed as HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-') || k === 'title') node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const c of children) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  return node;
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
export const rate = (n) => (n > 0 ? `${bytes(n)}/s` : '–');
export const percent = (x) => (x === null || x === undefined ? '–' : `${Math.floor(x * 100)}%`);
const shortDigest = (d) => `${d.slice(7, 19)}`;
const shortPeer = (id) => id.slice(0, 8);
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
function ago(ms) {
  if (ms < 1500) return 'now';
  if (ms < 90_000) return `${Math.round(ms / 1000)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}

function progressBar(progress, label) {
  const p = progress ?? 0;
  return el('div', { class: `bar${p >= 1 ? ' done' : ''}`, 'data-value': progress },
    Object.assign(el('div', { class: 'fill' }), { style: `width:${(p * 100).toFixed(1)}%` }),
    el('div', { class: 'txt' }, label ?? percent(progress)));
}

async function getJson(path) {
  const res = await fetch(path, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(8000) });
  const body = await res.json().catch(() => undefined);
  if (!res.ok) {
    const err = new Error(body?.errors?.[0]?.message ?? `${path}: HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

function renderTotals(list) {
  const t = list.totals;
  const set = (key, text, value) => {
    for (const node of document.querySelectorAll(`[data-total="${key}"]`)) {
      node.textContent = text;
      node.setAttribute('data-value', String(value));
    }
  };
  set('swarms', String(t.swarms), t.swarms);
  set('peers', String(t.peers), t.peers);
  set('seeders', String(t.seeders), t.seeders);
  set('downRate', rate(t.downRate), t.downRate);
  set('offloadRatio', percent(t.offloadRatio), t.offloadRatio);
  const level = t.offloadRatio === null ? 'none' : t.offloadRatio >= 0.8 ? 'good' : t.offloadRatio >= 0.5 ? 'fair' : 'poor';
  document.querySelector('.kpi.accent').setAttribute('data-level', level);
  $('#offload-sub').textContent = t.offloadRatio === null ? 'no layer committed by an agent yet' : 'of layer bytes agents committed came from peers (last hour)';
  set('fallback', String(t.events.fallback), t.events.fallback);
  set('badPeers', String(t.events.peer_banned), t.events.peer_banned);
  document.querySelector('.kpis').setAttribute('data-at', String(list.at));
}

function renderSwarms(list) {
  const body = $('#swarms tbody');
  const rows = list.swarms.map((s) => {
    const name = s.repository ? `${s.registry ? `${s.registry}/` : ''}${s.repository}` : 'unknown image';
    const holders = s.complete + s.leechers;
    const label = s.progress === null ? (holders === 0 ? 'seeded only' : 'n/a') : `${percent(s.progress)} · ${s.complete}/${holders} done`;
    const row = el('tr', { 'data-digest': s.digest, class: s.digest === state.selected ? 'selected' : '' },
      el('td', { class: 'layer' }, el('div', { class: 'repo' }, name), el('div', { class: 'digest', title: s.digest }, shortDigest(s.digest))),
      el('td', { class: 'num', 'data-field': 'size', 'data-value': s.size }, bytes(s.size)),
      el('td', { class: 'wide', 'data-field': 'progress' }, progressBar(s.progress, label)),
      el('td', { class: 'num', 'data-field': 'seeders' }, String(s.seeders)),
      el('td', { class: 'num', 'data-field': 'complete' }, String(s.complete)),
      el('td', { class: 'num', 'data-field': 'leechers' }, String(s.leechers)),
      el('td', { class: 'num', 'data-field': 'downRate', 'data-value': s.downRate }, rate(s.downRate)));
    row.addEventListener('click', () => select(s.digest));
    return row;
  });
  body.replaceChildren(...rows);
  $('#swarms').setAttribute('data-at', String(list.at));
  $('#no-swarms').hidden = rows.length > 0;
}

function renderDetail(d) {
  $('#detail').hidden = false;
  $('#detail').setAttribute('data-digest', d.digest);
  $('#detail').setAttribute('data-at', String(d.at));
  $('#detail-title').textContent = d.repository ? `${d.repository} · ${shortDigest(d.digest)}` : d.digest;
  const fact = (k, v) => el('span', {}, `${k} `, el('b', {}, v));
  $('#detail-facts').replaceChildren(
    fact('digest', d.digest), fact('size', bytes(d.size)), fact('pieces', d.pieces === null ? '–' : `${d.pieces} × ${bytes(d.pieceLength)}`),
    fact('peers', String(d.peers)), fact('↓', rate(d.downRate)), fact('↑', rate(d.upRate)));
  const a = d.availability;
  $('#avail-note').textContent = `${a.fullCopies} full cop${a.fullCopies === 1 ? 'y' : 'ies'} (seeders + finished peers)` +
    (a.distributedCopies === null ? '' : ` · ≈ ${a.distributedCopies} distributed copies`) + ' · downloading peers by progress (from announced piece counts):';
  $('#avail-bars').replaceChildren(...a.histogram.map((h) => el('div', { class: 'col' }, el('b', {}, String(h.peers)), h.label)));
  const rows = d.peerList.map((p) => el('tr', { 'data-peer': p.peerId },
    el('td', { class: 'mono', title: `${p.peerId} ${p.address}:${p.port}` }, `${shortPeer(p.peerId)} `, el('span', { class: 'muted' }, p.address)),
    el('td', { 'data-field': 'role' }, el('span', { class: `badge ${p.role}` }, p.role)),
    el('td', {}, p.zone ?? '–'),
    el('td', { class: 'wide', 'data-field': 'progress' }, progressBar(p.progress, p.role === 'seeder' ? 'seeder: all pieces' : `${percent(p.progress)} · ${p.pieces}${d.pieces === null ? '' : `/${d.pieces}`}`)),
    el('td', { class: 'num', 'data-field': 'downRate', 'data-value': p.downRate }, rate(p.downRate)),
    el('td', { class: 'num', 'data-field': 'upRate', 'data-value': p.upRate }, rate(p.upRate)),
    el('td', { class: 'num' }, ago(p.lastSeenAgoMs))));
  $('#peers tbody').replaceChildren(...rows);
}

function renderEvents(answer) {
  for (const e of answer.events) if (e.id > state.lastEventId) state.events.unshift(e);
  state.lastEventId = Math.max(state.lastEventId, answer.lastId);
  state.events.length = Math.min(state.events.length, MAX_EVENTS);
  const label = { fallback: 'origin fallback', bad_piece: 'bad piece', peer_banned: 'peer banned' };
  $('#events').replaceChildren(...state.events.map((e) => el('li', { 'data-event': e.id },
    el('span', { class: 'muted' }, clock(e.at)),
    el('span', {}, el('span', { class: `badge ${e.kind}` }, label[e.kind] ?? e.kind)),
    el('span', { class: 'what', title: `${e.peerId} ${e.digest ?? ''}` },
      `peer ${shortPeer(e.peerId)}${e.zone ? ` (${e.zone})` : ''}${e.digest ? ` · layer ${shortDigest(e.digest)}` : ''}${e.reason ? ` · ${e.reason.replaceAll('_', ' ')}` : ''}`))));
  $('#no-events').hidden = state.events.length > 0;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function renderOffload(o) {
  const W = 600;
  const H = 220;
  const pad = { l: 56, r: 40, t: 10, b: 24 };
  // The x axis ends with the current bucket, so its bar stays inside the plot.
  const end = (Math.floor(o.at / o.bucketMs) + 1) * o.bucketMs;
  const first = o.points[0]?.t ?? end;
  const span = Math.min(o.windowMs, Math.max(60_000, end - first + 2 * o.bucketMs));
  const start = end - span;
  const x = (t) => pad.l + ((t - start) / span) * (W - pad.l - pad.r);
  const maxBytes = Math.max(1, ...o.points.map((p) => p.peers + p.origin));
  const y = (b) => H - pad.b - (b / maxBytes) * (H - pad.t - pad.b);
  const yr = (r) => H - pad.b - r * (H - pad.t - pad.b);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'origin offload over time' });
  root.append(svg('line', { class: 'axis', x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b }));
  for (const r of [0, 0.5, 1]) {
    root.append(svg('line', { class: 'axis', x1: pad.l, y1: yr(r), x2: W - pad.r, y2: yr(r), 'stroke-dasharray': '2 4' }));
    const t = svg('text', { x: W - pad.r + 4, y: yr(r) + 4 });
    t.textContent = `${r * 100}%`;
    root.append(t);
  }
  const top = svg('text', { x: 4, y: pad.t + 10 });
  top.textContent = `${bytes(maxBytes)} per ${o.bucketMs / 1000} s`;
  root.append(top);
  for (const [tx, anchor] of [[start, 'start'], [end, 'end']]) {
    const t = svg('text', { x: x(tx), y: H - 6, 'text-anchor': anchor });
    t.textContent = clock(tx);
    root.append(t);
  }
  const bw = Math.max(2, (o.bucketMs / span) * (W - pad.l - pad.r) - 1);
  let cumPeers = 0;
  let cumAll = 0;
  const line = [];
  for (const p of o.points) {
    if (p.t < start) continue;
    root.append(svg('rect', { x: x(p.t), y: y(p.peers), width: bw, height: H - pad.b - y(p.peers), fill: 'var(--peers)' }));
    root.append(svg('rect', { x: x(p.t), y: y(p.peers + p.origin), width: bw, height: y(p.peers) - y(p.peers + p.origin), fill: 'var(--origin)' }));
    cumPeers += p.peers;
    cumAll += p.peers + p.origin;
    line.push(`${(x(p.t) + bw / 2).toFixed(1)},${yr(cumPeers / cumAll).toFixed(1)}`);
    root.append(svg('circle', { cx: (x(p.t) + bw / 2).toFixed(1), cy: yr(cumPeers / cumAll).toFixed(1), r: 3.5, fill: 'var(--ratio)' }));
  }
  if (line.length > 0) {
    root.append(svg('polyline', { points: line.join(' '), fill: 'none', stroke: 'var(--ratio)', 'stroke-width': 2.5 }));
  } else {
    const t = svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' });
    t.textContent = 'no layer committed by an agent yet';
    root.append(t);
  }
  $('#offload-chart').replaceChildren(root);
  $('#offload-chart').setAttribute('data-at', String(o.at));
}

async function refresh() {
  if (state.inFlight) return;
  state.inFlight = true;
  try {
    const selected = state.selected;
    const [list, offload, events, detail] = await Promise.all([
      getJson('/v1/swarms?limit=200'),
      getJson('/v1/offload'),
      getJson(`/v1/events?since=${state.lastEventId}&limit=${MAX_EVENTS}`),
      selected ? getJson(`/v1/swarms/${encodeURIComponent(selected)}`).catch((err) => (err.status === 404 ? null : Promise.reject(err))) : undefined,
    ]);
    renderTotals(list);
    renderSwarms(list);
    renderOffload(offload);
    renderEvents(events);
    if (detail) renderDetail(detail);
    else if (detail === null) closeDetail(`the swarm of ${shortDigest(selected)} has no peer any more`);
    $('#banner').hidden = true;
    setLive(state.paused ? 'paused' : 'live', `${state.paused ? 'paused' : 'live'} · ${clock(list.at)}`);
    document.body.setAttribute('data-at', String(list.at));
  } catch (err) {
    $('#banner').textContent = `Tracker not answering (${err.message}); retrying every ${POLL_MS / 1000} s.`;
    $('#banner').hidden = false;
    setLive('error', 'tracker unreachable');
  } finally {
    state.inFlight = false;
  }
}

function setLive(kind, text) {
  $('#live').setAttribute('data-state', kind);
  $('#live').textContent = text;
}

function select(digest) {
  state.selected = digest;
  for (const row of document.querySelectorAll('#swarms tbody tr')) row.classList.toggle('selected', row.getAttribute('data-digest') === digest);
  void refresh();
}

function closeDetail(note) {
  state.selected = null;
  $('#detail').hidden = true;
  $('#detail').removeAttribute('data-digest');
  if (note) {
    $('#banner').textContent = note;
    $('#banner').hidden = false;
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = state.paused ? undefined : setInterval(() => void refresh(), POLL_MS);
}

$('#pause').addEventListener('click', () => {
  state.paused = !state.paused;
  $('#pause').textContent = state.paused ? 'Resume' : 'Pause';
  setLive(state.paused ? 'paused' : 'live', state.paused ? 'paused' : 'live');
  schedule();
  if (!state.paused) void refresh();
});
$('#detail-close').addEventListener('click', () => closeDetail());
schedule();
void refresh();
