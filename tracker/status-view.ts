/**
 * `layerswarm status` as text: the facts of the dashboard (totals, swarms with progress, offload, recent events; one
 * swarm's peers) as terminal tables. Pure functions of the API answers, so the CLI and its tests share them.
 */
import type { EventList, SwarmList } from './client.ts';
import type { SwarmEvent } from './event-log.ts';
import type { OffloadReport } from './offload-series.ts';
import type { SwarmDetailView } from './swarm-views.ts';

export function humanBytes(n: number | null): string {
  if (n === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}
export const humanRate = (n: number): string => (n > 0 ? `${humanBytes(n)}/s` : '-');
export const humanPercent = (x: number | null): string => (x === null ? '-' : `${Math.floor(x * 100)}%`);
export const shortDigest = (digest: string): string => digest.slice(7, 19);
const time = (ms: number): string => new Date(ms).toISOString().slice(11, 19);

export function bar(progress: number | null, width = 20): string {
  if (progress === null) return `[${' '.repeat(width)}]`;
  const full = Math.round(Math.min(1, Math.max(0, progress)) * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}]`;
}

/** Columns padded to the widest cell; `right` lists the right-aligned columns. */
export function table(header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const EVENT_LABEL: Record<SwarmEvent['kind'], string> = { fallback: 'origin fallback', bad_piece: 'bad piece', peer_banned: 'peer banned' };

export function eventLine(e: SwarmEvent): string {
  return [
    time(e.at), EVENT_LABEL[e.kind].padEnd(15), `peer ${e.peerId.slice(0, 8)}${e.zone ? ` (${e.zone})` : ''}`,
    ...(e.digest ? [`layer ${shortDigest(e.digest)}`] : []), ...(e.reason ? [e.reason.replaceAll('_', ' ')] : []),
  ].join('  ');
}

export interface StatusInput {
  readonly url: string;
  readonly list: SwarmList;
  readonly offload: OffloadReport;
  readonly events: EventList;
  /** Recent events shown (newest last). */
  readonly eventLines?: number;
}

export function swarmName(s: { repository: string | null; registry: string | null }): string {
  return s.repository === null ? '(unknown image)' : `${s.registry === null ? '' : `${s.registry}/`}${s.repository}`;
}

export function renderStatus(input: StatusInput): string {
  const { list, offload, events } = input;
  const t = list.totals;
  const out = [
    `layerswarm status · tracker ${input.url} · ${time(list.at)} UTC`,
    `swarms ${t.swarms} · peers ${t.peers} · seeders ${t.seeders} · swarm rate ${humanRate(t.downRate)} · origin offload ${humanPercent(t.offloadRatio)}` +
      ` (last ${Math.round(offload.windowMs / 60_000)} min: ${humanBytes(offload.window.peers)} from peers, ${humanBytes(offload.window.origin)} from origin)` +
      ` · fallbacks ${t.events.fallback} · bad peers ${t.events.peer_banned}`,
    '',
  ];
  if (list.swarms.length === 0) out.push('No swarm: no peer announced a layer within the peer TTL.');
  else {
    out.push(table(
      ['IMAGE', 'LAYER', 'SIZE', 'PROGRESS', '', 'SEED', 'DONE', 'DOWNLOADING', 'RATE'],
      list.swarms.map((s) => [
        swarmName(s), shortDigest(s.digest), humanBytes(s.size), bar(s.progress), humanPercent(s.progress),
        String(s.seeders), String(s.complete), String(s.leechers), humanRate(s.downRate),
      ]),
      new Set([2, 4, 5, 6, 7, 8]),
    ));
    if (t.swarms > list.swarms.length) out.push(`… and ${t.swarms - list.swarms.length} more swarms`);
  }
  const recent = events.events.slice(-(input.eventLines ?? 10));
  out.push('', recent.length === 0 ? 'No fallback, bad piece or banned peer reported.' : 'RECENT EVENTS', ...recent.map(eventLine));
  return `${out.join('\n')}\n`;
}

export function renderSwarm(url: string, d: SwarmDetailView & { at: number }): string {
  const a = d.availability;
  const out = [
    `layerswarm status · tracker ${url} · ${time(d.at)} UTC`,
    `${swarmName(d)} · layer ${d.digest}`,
    `size ${humanBytes(d.size)} · pieces ${d.pieces ?? '-'} · progress ${humanPercent(d.progress)} · seeders ${d.seeders} · done ${d.complete} · downloading ${d.leechers} · ↓ ${humanRate(d.downRate)} · ↑ ${humanRate(d.upRate)}`,
    `availability (from announced piece counts): ${a.fullCopies} full copies${a.distributedCopies === null ? '' : `, ≈ ${a.distributedCopies} distributed copies`}; ` +
      `downloading peers by progress: ${a.histogram.map((h) => `${h.label} ${h.peers}`).join(', ')}`,
    '',
    table(
      ['PEER', 'ADDRESS', 'ROLE', 'ZONE', 'PROGRESS', '', 'PIECES', 'RATE ↓', 'RATE ↑', 'LAST SEEN'],
      d.peerList.map((p) => [
        p.peerId.slice(0, 12), `${p.address}:${p.port}`, p.role, p.zone ?? '-', bar(p.progress), humanPercent(p.progress),
        String(p.pieces), humanRate(p.downRate), humanRate(p.upRate), `${Math.round(p.lastSeenAgoMs / 1000)} s ago`,
      ]),
      new Set([5, 6, 7, 8, 9]),
    ),
  ];
  if (d.peers > d.peerList.length) out.push(`… and ${d.peers - d.peerList.length} more peers`);
  return `${out.join('\n')}\n`;
}
