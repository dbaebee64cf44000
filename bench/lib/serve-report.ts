/** bench:serve's result document (JSON), text report and plot (SVG figure). */
import type { FsyncProbe } from './disk.ts';
import type { MachineInfo } from './machine.ts';
import type { ServeBenchOptions } from './options.ts';
import type { RssPoint } from './procfs.ts';
import { GiB, humanBytes, MiB, round, summarize } from './stats.ts';
import type { Figure } from './svg.ts';
import { fixed, formatTable } from './table.ts';
import { loadavg } from 'node:os';
import { peakKiB } from './procfs.ts';
import type { Summary } from './stats.ts';
import {
  GET_SIDES, IDLE_MS, SIDE_NAME, TARGET_COLD_PULL_RATIO, TARGET_THROUGHPUT_RATIO,
  type Blob, type ColdFetch, type GetRun, type GetSide, type PullRun,
} from './serve-types.ts';

export function sideSummary(runs: readonly GetRun[], side: GetSide): Summary {
  return summarize(runs.filter((r) => r.side === side).map((r) => r.mbps));
}

// ---- result document ------------------------------------------------------------------------------

export interface BuildInput {
  opts: ServeBenchOptions;
  machine: MachineInfo;
  startedAt: Date;
  finishedAt: Date;
  fsync: FsyncProbe;
  big: Blob;
  small: Blob;
  imageBytes: number;
  pullLayers: Array<{ digest: string; bytes: number }>;
  getRuns: GetRun[];
  pullRuns: PullRun[];
  coldSmall: ColdFetch;
  coldBig: ColdFetch;
  warmTrace: Record<string, RssPoint[]>;
}

export type ServeResult = ReturnType<typeof buildResult>;

export function roundDeep<T>(value: T): T {
  if (typeof value === 'number') return round(value, 4) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => roundDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundDeep(v)])) as T;
  }
  return value;
}

export function buildResult(input: BuildInput) {
  const { opts, getRuns, pullRuns, coldSmall, coldBig } = input;
  const agentTp = sideSummary(getRuns, 'agent');
  const registryTp = sideSummary(getRuns, 'registry');
  const referenceTp = sideSummary(getRuns, 'reference');
  const restartedTp = sideSummary(getRuns, 'restarted');
  const throughputRatio = agentTp.median / registryTp.median;
  const agentPull = summarize(pullRuns.filter((r) => r.side === 'agent').map((r) => r.seconds));
  const directPull = summarize(pullRuns.filter((r) => r.side === 'direct').map((r) => r.seconds));
  const pullRatio = agentPull.median / directPull.median;
  const fetchWall = summarize(pullRuns.flatMap((r) => (r.fetchWallSeconds !== undefined ? [r.fetchWallSeconds] : [])));
  const cpuPerGiB = (side: GetSide): number =>
    summarize(getRuns.filter((r) => r.side === side && r.serverCpuSeconds !== null).map((r) => (r.serverCpuSeconds as number) / (input.big.bytes / GiB))).median;
  const warmAgent = input.warmTrace['agent'] ?? [];
  const cold = (c: ColdFetch) => ({
    blobBytes: c.blobBytes,
    digest: c.digest,
    ttfbSeconds: c.ttfbSeconds,
    seconds: c.seconds,
    mbps: c.mbps,
    agentCpuSeconds: c.agentCpuSeconds,
    agentIdleRssKiB: c.agentIdleRssKiB,
    agentPeakRssKiB: c.agentPeakRssKiB,
    agentGrowthKiB: c.agentGrowthKiB,
    registryIdleRssKiB: c.registryIdleRssKiB,
    registryPeakRssKiB: c.registryPeakRssKiB,
    getStartMs: c.getStartMs,
    getEndMs: c.getEndMs,
    trace: c.trace,
  });
  return roundDeep({
    benchmark: 'serve',
    schema: 1,
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    durationSeconds: (input.finishedAt.getTime() - input.startedAt.getTime()) / 1000,
    options: {
      blobSize: opts.blobSize, smallBlobSize: opts.smallBlobSize, imageSizes: opts.imageSizes, reps: opts.reps, sampleMs: opts.sampleMs, quick: opts.quick,
    },
    machine: input.machine,
    loadAvgAtEnd: loadavg().map((l) => round(l, 2)),
    units: { throughput: 'MB/s = 10^6 bytes per second', rss: 'KiB (VmRSS)', time: 'seconds' },
    clients: {
      throughput: `curl -sS --http1.1 -o /dev/null (${input.machine.tools['curl'] ?? ''}); time = curl time_total`,
      pull: `skopeo copy docker://… dir:… (${input.machine.tools['skopeo'] ?? ''}); time = wall time of the command`,
    },
    targets: { throughputRatioMin: TARGET_THROUGHPUT_RATIO, coldPullRatioMax: TARGET_COLD_PULL_RATIO },
    disk: { fsyncProbe: input.fsync },
    throughput: {
      blobBytes: input.big.bytes,
      digest: input.big.digest,
      runs: getRuns,
      agent: agentTp,
      registry: registryTp,
      restarted: restartedTp,
      reference: referenceTp,
      ratio: throughputRatio,
      referenceRatio: agentTp.median / referenceTp.median,
      restartedRatio: restartedTp.median / registryTp.median,
      pass: throughputRatio >= TARGET_THROUGHPUT_RATIO,
      serverCpuSecondsPerGiB: { agent: cpuPerGiB('agent'), registry: cpuPerGiB('registry'), restarted: cpuPerGiB('restarted'), reference: cpuPerGiB('reference') },
      agentWarmServePeakRssKiB: peakKiB(warmAgent),
      registryWarmServePeakRssKiB: peakKiB(input.warmTrace['registry'] ?? []),
    },
    coldPull: {
      imageBytes: input.imageBytes,
      layers: input.pullLayers,
      runs: pullRuns,
      agent: agentPull,
      direct: directPull,
      ratio: pullRatio,
      pass: pullRatio <= TARGET_COLD_PULL_RATIO,
      /** Per agent rep, the wall time with a blob fetch (download + verify + fsync) in progress: no byte of a blob is served before its fetch ends. */
      fetchWallSeconds: fetchWall,
    },
    rss: {
      sampleMs: opts.sampleMs,
      small: cold(coldSmall),
      large: cold(coldBig),
      growthRatioLargeToSmall: coldBig.agentGrowthKiB / coldSmall.agentGrowthKiB,
      /** Flat when the large blob's growth stays under twice the small one's (and under a quarter of its size). */
      flat: coldBig.agentGrowthKiB < 2 * Math.max(coldSmall.agentGrowthKiB, 16 * 1024) && coldBig.agentGrowthKiB * 1024 < coldBig.blobBytes / 4,
    },
  });
}

// ---- text report ----------------------------------------------------------------------------------

export function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'MISS';
}

export function report(r: ServeResult): string {
  const tp = r.throughput;
  const cp = r.coldPull;
  const m = r.machine;
  const blob = humanBytes(tp.blobBytes);
  const img = humanBytes(cp.imageBytes);
  const lines: string[] = [];
  lines.push(`layerswarm bench:serve — ${m.cores} cores ${m.cpuModel}, ${m.memTotalMiB} MiB RAM, node ${m.node}, load ${m.loadAvg.join('/')} → ${r.loadAvgAtEnd.join('/')}, ${r.durationSeconds.toFixed(0)} s`);
  lines.push('');
  lines.push(formatTable([
    ['measure', 'agent', 'baseline', 'ratio', 'target', ''],
    [`cache-hit GET ${blob}, MB/s (median of ${tp.agent.n})`, fixed(tp.agent.median, 0), `${fixed(tp.registry.median, 0)} registry`, fixed(tp.ratio, 2), `≥ ${TARGET_THROUGHPUT_RATIO.toFixed(2)}`, verdict(tp.pass)],
    [`cold pull ${img}, s (median of ${cp.agent.n})`, fixed(cp.agent.median, 2), `${fixed(cp.direct.median, 2)} direct`, fixed(cp.ratio, 2), `≤ ${TARGET_COLD_PULL_RATIO.toFixed(2)}`, verdict(cp.pass)],
  ], ['l', 'r', 'r', 'r', 'r', 'l']));
  lines.push('');
  lines.push('cache-hit GET detail (curl -o /dev/null)');
  const cpu = tp.serverCpuSecondsPerGiB;
  lines.push(formatTable([
    ['server', 'median MB/s', 'min', 'max', 'server CPU s/GiB', 'reps MB/s'],
    ...GET_SIDES.map((side) => {
      const s = tp[side];
      const reps = tp.runs.filter((x) => x.side === side).map((x) => x.mbps.toFixed(0)).join(' ');
      return [SIDE_NAME[side], fixed(s.median, 0), fixed(s.min, 0), fixed(s.max, 0), fixed(cpu[side], 2), reps];
    }),
  ], ['l', 'r', 'r', 'r', 'r', 'l']));
  lines.push(`agent = the process that did the cold fetch; "agent (restarted)" = a fresh agent process on the same store: ${fixed(tp.restartedRatio, 2)} × registry`);
  lines.push(`agent / reference (plain Node streaming the same file): ${fixed(tp.referenceRatio, 2)}`);
  lines.push('');
  lines.push('cold pull detail (skopeo copy → dir:, fresh agent data dir per rep)');
  lines.push(formatTable([
    ['rep', 'agent s', 'direct s', 'agent − direct s', 'fetch wait s', 'fetches (MB/s each)', 'agent CPU s', 'skopeo CPU s agent/direct'],
    ...Array.from({ length: r.options.reps }, (_, i) => {
      const a = cp.runs.find((x) => x.rep === i + 1 && x.side === 'agent');
      const d = cp.runs.find((x) => x.rep === i + 1 && x.side === 'direct');
      const speeds = (a?.fetches ?? []).filter((f) => f.bytes >= MiB).map((f) => (f.bytes / f.seconds / 1e6).toFixed(0)).join(' ');
      return [String(i + 1), fixed(a?.seconds, 2), fixed(d?.seconds, 2), fixed(a && d ? a.seconds - d.seconds : undefined, 2), fixed(a?.fetchWallSeconds, 2), speeds,
        fixed(a?.agentCpuSeconds ?? undefined, 2),
        `${fixed(a?.clientCpuSeconds, 2)} / ${fixed(d?.clientCpuSeconds, 2)}`];
    }),
  ]));
  const overlapped = cp.runs.filter((x) => x.blobRequestsOverlapped !== undefined).map((x) => x.blobRequestsOverlapped);
  lines.push(`fetch wait = time with a blob fetch (download+sha256+fsync) in progress, when the agent serves nothing of that blob; ` +
    `skopeo's blob GETs ${overlapped.length === 0 ? 'n/a' : overlapped.every((o) => !o) ? 'ran one after the other (no overlap)' : 'overlapped'}`);
  const f = r.disk.fsyncProbe;
  lines.push(`disk probe: write ${humanBytes(f.bytes)} ${f.writeSeconds.toFixed(2)} s, then fsync ${f.fsyncSeconds.toFixed(2)} s (the agent fsyncs each blob before serving it)`);
  lines.push('');
  lines.push(`agent RSS (VmRSS sampled every ${r.rss.sampleMs} ms)`);
  const mib = (k: number | null | undefined): string => (k === null || k === undefined ? 'n/a' : (k / 1024).toFixed(1));
  lines.push(formatTable([
    ['phase', 'idle MiB', 'peak MiB', 'growth MiB', 'TTFB s', 'total s', 'registry peak MiB'],
    ...[r.rss.small, r.rss.large].map((c) => [`cold fetch+serve ${humanBytes(c.blobBytes)}`, mib(c.agentIdleRssKiB), mib(c.agentPeakRssKiB), mib(c.agentGrowthKiB),
      fixed(c.ttfbSeconds, 2), fixed(c.seconds, 2), mib(c.registryPeakRssKiB)]),
    [`cache-hit serving ${blob} (${tp.agent.n + 1} GETs)`, '', mib(tp.agentWarmServePeakRssKiB), '', '', '', mib(tp.registryWarmServePeakRssKiB)],
    [`cold pull ${img} (peak over reps)`, '', mib(Math.max(...cp.runs.map((x) => x.agentPeakRssKiB ?? Number.NaN).filter(Number.isFinite))), '', '', '', ''],
  ]));
  lines.push(`RSS growth ${humanBytes(r.rss.large.blobBytes)} vs ${humanBytes(r.rss.small.blobBytes)}: ×${fixed(r.rss.growthRatioLargeToSmall, 2)} for ×${(r.rss.large.blobBytes / r.rss.small.blobBytes).toFixed(0)} the bytes → ` +
    (r.rss.flat ? 'flat in blob size (streaming)' : 'NOT flat: memory grows with the blob size (bytes are held in memory during the fetch)'));
  return lines.join('\n');
}

// ---- figure ---------------------------------------------------------------------------------------

export const COLOR = { agent: '#2b6cb0', baseline: '#9c9c9c', reference: '#d69e2e', restarted: '#90cdf4', idle: '#a0aec0', peak: '#2b6cb0', registry: '#9c9c9c', small: '#38a169', large: '#c53030' };

export function figure(r: ServeResult): Figure {
  const tp = r.throughput;
  const cp = r.coldPull;
  const pts = (side: string, key: 'mbps' | 'seconds', runs: ReadonlyArray<{ side: string; mbps?: number; seconds: number }>): number[] =>
    runs.filter((x) => x.side === side).map((x) => (key === 'mbps' ? (x.mbps ?? Number.NaN) : x.seconds));
  const mib = (k: number | null): number => (k === null ? Number.NaN : k / 1024);
  const rel = (c: { trace: { agent: RssPoint[]; registry: RssPoint[] } }, name: 'agent' | 'registry'): Array<[number, number]> =>
    c.trace[name].map(([t, k]) => [t / 1000, k / 1024]);
  const blob = humanBytes(tp.blobBytes);
  const small = humanBytes(r.rss.small.blobBytes);
  return {
    title: `layerswarm bench:serve — agent vs distribution registry (${r.startedAt})`,
    subtitle: `${r.machine.cores} cores ${r.machine.cpuModel}, node ${r.machine.node}, load ${r.machine.loadAvg.join('/')}; bars = median, dots = repetitions; ` +
      `throughput ratio ${fixed(tp.ratio, 2)} (target ≥ ${TARGET_THROUGHPUT_RATIO}), cold-pull ratio ${fixed(cp.ratio, 2)} (target ≤ ${TARGET_COLD_PULL_RATIO})`,
    panels: [
      {
        kind: 'bar',
        title: `Cache-hit GET of a ${blob} blob (curl → /dev/null)`,
        unit: 'MB/s (higher is better)',
        groups: [{
          label: `${blob} blob, ${tp.agent.n} reps`,
          bars: [
            { label: 'agent (from its store)', value: tp.agent.median, color: COLOR.agent, points: pts('agent', 'mbps', tp.runs) },
            { label: 'registry (baseline)', value: tp.registry.median, color: COLOR.baseline, points: pts('registry', 'mbps', tp.runs) },
            { label: 'agent restarted (diagnostic)', value: tp.restarted.median, color: COLOR.restarted, points: pts('restarted', 'mbps', tp.runs) },
            { label: 'node:http+fs (reference)', value: tp.reference.median, color: COLOR.reference, points: pts('reference', 'mbps', tp.runs) },
          ],
        }],
        refLines: [{ value: tp.registry.median * TARGET_THROUGHPUT_RATIO, label: `target: agent ≥ ${TARGET_THROUGHPUT_RATIO.toFixed(2)} × registry`, color: '#c53030' }],
        note: `agent/registry ${fixed(tp.ratio, 2)} ${verdict(tp.pass)}; server CPU s/GiB: agent ${fixed(tp.serverCpuSecondsPerGiB.agent, 2)}, registry ${fixed(tp.serverCpuSecondsPerGiB.registry, 2)}`,
      },
      {
        kind: 'bar',
        title: `Cold pull of a ${humanBytes(cp.imageBytes)} image (skopeo copy → dir:)`,
        unit: 'seconds (lower is better)',
        digits: 2,
        groups: [{
          label: `${cp.layers.length} layers, ${cp.agent.n} reps`,
          bars: [
            { label: 'through a cold agent', value: cp.agent.median, color: COLOR.agent, points: pts('agent', 'seconds', cp.runs),
              inner: { value: cp.fetchWallSeconds.median, label: 'waiting for fetch+verify+fsync (no byte served)' } },
            { label: 'registry direct (baseline)', value: cp.direct.median, color: COLOR.baseline, points: pts('direct', 'seconds', cp.runs) },
          ],
        }],
        refLines: [{ value: cp.direct.median * TARGET_COLD_PULL_RATIO, label: `target: ≤ ${TARGET_COLD_PULL_RATIO} × direct`, color: '#c53030' }],
        note: `agent/direct ${fixed(cp.ratio, 2)} ${verdict(cp.pass)}; disk probe: fsync of ${humanBytes(r.disk.fsyncProbe.bytes)} took ${fixed(r.disk.fsyncProbe.fsyncSeconds, 2)} s`,
      },
      {
        kind: 'bar',
        title: 'Agent RSS: idle baseline vs peak during a cold fetch+serve',
        unit: 'MiB (VmRSS)',
        digits: 0,
        groups: [
          { label: `${small} blob`, bars: [
            { label: 'agent idle', value: mib(r.rss.small.agentIdleRssKiB), color: COLOR.idle },
            { label: 'agent peak', value: mib(r.rss.small.agentPeakRssKiB), color: COLOR.peak },
            { label: 'registry peak', value: mib(r.rss.small.registryPeakRssKiB), color: COLOR.registry },
          ] },
          { label: `${blob} blob`, bars: [
            { label: 'agent idle', value: mib(r.rss.large.agentIdleRssKiB), color: COLOR.idle },
            { label: 'agent peak', value: mib(r.rss.large.agentPeakRssKiB), color: COLOR.peak },
            { label: 'registry peak', value: mib(r.rss.large.registryPeakRssKiB), color: COLOR.registry },
          ] },
        ],
        note: `agent growth: +${fixed(mib(r.rss.small.agentGrowthKiB), 1)} MiB (${small}) vs +${fixed(mib(r.rss.large.agentGrowthKiB), 1)} MiB (${blob}): ` +
          (r.rss.flat ? 'flat in blob size (streaming)' : 'grows with the blob size (not streaming)'),
      },
      {
        kind: 'line',
        title: 'RSS over time during the cold fetch+serve',
        xLabel: `seconds since sampling started (idle ${IDLE_MS / 1000} s, then the GET)`,
        yLabel: 'MiB (VmRSS)',
        series: [
          { label: `agent, ${small}`, color: COLOR.small, points: rel(r.rss.small, 'agent') },
          { label: `agent, ${blob}`, color: COLOR.large, points: rel(r.rss.large, 'agent') },
          { label: `registry, ${blob}`, color: COLOR.registry, points: rel(r.rss.large, 'registry') },
        ],
        markers: [
          { x: r.rss.large.getStartMs / 1000, label: 'GET sent', color: '#444' },
          { x: (r.rss.large.getStartMs / 1000) + r.rss.large.ttfbSeconds, label: `${blob}: first byte`, color: COLOR.large },
          { x: (r.rss.large.getStartMs / 1000) + r.rss.large.seconds, label: `${blob}: last byte`, color: COLOR.large },
        ],
        note: `${blob}: first byte ${fixed(r.rss.large.ttfbSeconds, 2)} s after the GET (the whole blob is fetched, hashed and fsynced first), last byte after ${fixed(r.rss.large.seconds, 2)} s`,
      },
    ],
  };
}


