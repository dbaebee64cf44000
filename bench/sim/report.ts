/** Text table and SVG figure of `layerswarm bench simulate` results. */
import { cdfPoints, type RolloutResults } from '../lib/rollout-results.ts';
import { humanBytes } from '../lib/stats.ts';
import type { Figure, LineSeries } from '../lib/svg.ts';
import { fixed, formatTable } from '../lib/table.ts';

const num = (v: unknown): number => (typeof v === 'number' ? v : Number.NaN);

export function headline(r: RolloutResults): string {
  const layers = r.layers.map((l) => humanBytes(l)).join(' + ');
  return `N = ${r.nodes}, image ${humanBytes(r.imageBytes)} (${layers}), B = ${fixed(r.nodeLinkBytesPerSec / 1e6, 1)} MB/s, ` +
    `B_s = ${fixed(r.seederLinkBytesPerSec / 1e6, 1)} MB/s, T* = ${fixed(r.boundSeconds, 2)} s`;
}

/** One run: completion percentiles (s and × T*), origin egress, upload fairness, simulator cost. */
export function simTable(r: RolloutResults): string {
  const res = r.resources;
  const d = r.diagnostics ?? {};
  const rows: string[][] = [
    ['', 'p50', 'p90', 'p99', 'max'],
    ['completion s', fixed(r.p50Seconds, 2), fixed(r.p90Seconds, 2), fixed(r.p99Seconds, 2), fixed(r.maxSeconds, 2)],
    ['× T*', fixed(r.p50Ratio, 2), fixed(r.p90Ratio, 2), fixed(r.p99Ratio, 2), fixed(r.maxRatio, 2)],
  ];
  const lines = [
    headline(r),
    formatTable(rows),
    `completed ${r.completed}/${r.nodes}; origin (seeder) egress ${humanBytes(r.originEgressBytes)} = ${fixed(r.originEgressRatio, 3)} × image ` +
      `(seeder busy ${fixed(num(d['seederBusySeconds']), 2)} s)`,
    `upload fairness: max/mean ${fixed(r.uploadMaxOverMean, 2)}, Jain ${fixed(r.uploadJainIndex, 3)}; first byte p50/p99 ` +
      `${fixed(num(d['firstByteP50Seconds']), 3)}/${fixed(num(d['firstByteP99Seconds']), 3)} s; download phase p50/p99 ` +
      `${fixed(num(d['downloadP50Seconds']), 2)}/${fixed(num(d['downloadP99Seconds']), 2)} s`,
    `closes ${JSON.stringify(d['closes'] ?? {})}; bad pieces ${String(d['badPieces'] ?? 0)}; wasted (duplicate) pieces ${String(d['wastedPieces'] ?? 0)}; ` +
      `tracker announces ${String(d['trackerAnnounces'] ?? 0)}, refused ${JSON.stringify(d['trackerRefused'] ?? {})}`,
    `link use while downloading: ${Object.entries((d['linkUse'] ?? {}) as Record<string, number>).map(([k, v]) => `${k} ${fixed(v, 2)}`).join(', ')}`,
    `simulator: wall ${fixed(num(res['wallSeconds']), 2)} s, ${num(res['events']).toLocaleString('en-US')} events ` +
      `(${num(res['eventsPerSecond']).toLocaleString('en-US')}/s), ${num(res['schedulerEvents']).toLocaleString('en-US')} scheduler events`,
  ];
  return lines.join('\n');
}

export function simFigure(r: RolloutResults): Figure {
  const series: LineSeries[] = [{ label: 'simulated nodes', color: '#1f77b4', points: cdfPoints(r.nodeSeconds) }];
  return {
    title: `Rollout simulation: completion-time CDF (N = ${r.nodes})`,
    subtitle: headline(r),
    columns: 1,
    panels: [{
      kind: 'line', title: 'Nodes with the whole image verified', xLabel: 'seconds from start', yLabel: 'fraction of nodes', series,
      markers: [
        { x: r.boundSeconds, label: `T* = ${fixed(r.boundSeconds, 2)} s`, color: '#d62728' },
        ...(Number.isFinite(r.p99Seconds) ? [{ x: r.p99Seconds, label: `p99 = ${fixed(r.p99Ratio, 2)} × T*`, color: '#555' }] : []),
      ],
      note: `p50 ${fixed(r.p50Ratio, 2)} × T*, p99 ${fixed(r.p99Ratio, 2)} × T*, max ${fixed(r.maxRatio, 2)} × T*; origin egress ${fixed(r.originEgressRatio, 3)} × image.`,
    }],
  };
}

/** The --project sweep: one row per point. */
export function projectTable(points: ReadonlyArray<{ readonly label: string; readonly results: RolloutResults }>): string {
  const rows = [['point', 'N', 'image', 'T* s', 'p50 s', 'p99 s', 'p50/T*', 'p99/T*', 'max/T*', 'origin/S', 'Jain', 'wall s', 'events/s']];
  for (const { label, results: r } of points) {
    rows.push([
      label, String(r.nodes), humanBytes(r.imageBytes), fixed(r.boundSeconds, 2), fixed(r.p50Seconds, 2), fixed(r.p99Seconds, 2), fixed(r.p50Ratio, 2),
      fixed(r.p99Ratio, 2), fixed(r.maxRatio, 2), fixed(r.originEgressRatio, 3), fixed(r.uploadJainIndex, 3), fixed(num(r.resources['wallSeconds']), 1),
      num(r.resources['eventsPerSecond']).toLocaleString('en-US'),
    ]);
  }
  return formatTable(rows);
}
