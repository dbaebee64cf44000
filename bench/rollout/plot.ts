/** The rollout's figure: completion-time CDFs (swarm, origin-only) with the fluid bound T* as a vertical line. */
import { cdfPoints } from '../lib/rollout-results.ts';
import type { Figure, LinePanel } from '../lib/svg.ts';
import type { EmulatedResults } from './report.ts';

export function rolloutFigure(res: EmulatedResults): Figure {
  const swarm = { label: `swarm (${res.completed}/${res.nodes})`, color: '#1f77b4', points: cdfPoints(res.nodeSeconds) };
  const markers = [{ x: res.boundSeconds, label: `T* = ${res.boundSeconds.toFixed(0)} s`, color: '#d62728' }];
  const panels: LinePanel[] = [{
    kind: 'line', title: 'Swarm: completion-time CDF', xLabel: 'seconds from the common start', yLabel: 'fraction of nodes complete',
    series: [swarm], markers, note: `p50 ${res.p50Seconds.toFixed(1)} s, p99 ${res.p99Seconds.toFixed(1)} s, max ${res.maxSeconds.toFixed(1)} s; max/T* ${res.maxRatio}`,
  }];
  if (res.baseline) {
    const b = res.baseline;
    const cap = res.emulation.baselineMeasured;
    panels.push({
      kind: 'line', title: `Swarm vs origin-only (${b.kind})`, xLabel: 'seconds from the common start', yLabel: 'fraction of nodes complete',
      series: [swarm, { label: `origin-only${b.kind === 'projected' ? ', projected after the cap' : ''}`, color: '#ff7f0e', points: cdfPoints(b.nodeSeconds) }],
      markers: [...markers, ...(b.kind === 'projected' && cap ? [{ x: cap.wallSeconds, label: 'baseline cap', color: '#7f7f7f' }] : [])],
      note: `speed-up p50 ${res.speedup?.p50}×, p99 ${res.speedup?.p99}×, max ${res.speedup?.max}×`,
    });
  }
  return {
    title: `layerswarm bench rollout (emulated): N = ${res.nodes}, S = ${(res.imageBytes / 2 ** 20).toFixed(1)} MiB`,
    subtitle: `B = ${(res.nodeLinkBytesPerSec / 1024).toFixed(0)} KiB/s per agent, B_s = ${(res.seederLinkBytesPerSec / 2 ** 20).toFixed(1)} MiB/s; origin egress ${res.originEgressRatio}× S`,
    panels,
    columns: panels.length,
  };
}
