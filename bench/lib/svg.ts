/**
 * Dependency-free SVG charts for benchmark results: grouped bar panels (with per-repetition dots, an optional inner
 * segment and reference lines) and line panels, laid out in a grid under a title.
 */

export interface Bar {
  /** Legend entry (bars of the same label share a color across groups). */
  label: string;
  value: number;
  color: string;
  /** Individual repetitions, drawn as dots over the bar. */
  points?: number[];
  /** A part of the bar drawn hatched from the axis up (e.g. time spent waiting for a verified fetch). */
  inner?: { value: number; label: string };
}

export interface BarGroup {
  label: string;
  bars: Bar[];
}

export interface BarPanel {
  kind: 'bar';
  title: string;
  unit: string;
  groups: BarGroup[];
  /** Dashed horizontal lines, e.g. a target. */
  refLines?: Array<{ value: number; label: string; color: string }>;
  /** One line of text under the panel. */
  note?: string;
  /** Digits of the value labels (default 0). */
  digits?: number;
}

export interface LineSeries {
  label: string;
  color: string;
  points: Array<[number, number]>;
}

export interface LinePanel {
  kind: 'line';
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  note?: string;
  /** Lower end of the y axis (default 0). */
  yMin?: number;
  /** Vertical dashed lines at x values. */
  markers?: Array<{ x: number; label: string; color: string }>;
}

export type Panel = BarPanel | LinePanel;

export interface Figure {
  title: string;
  subtitle?: string;
  panels: Panel[];
  /** Default 2. */
  columns?: number;
}

const PANEL_W = 540;
const PANEL_H = 340;
const HEADER_H = 64;
const FONT = 'font-family="Helvetica, Arial, sans-serif"';

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toFixed(digits);
}

/** A "nice" tick step (1, 2 or 5 × 10^k) for about `count` ticks over [0, max]. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function axisMax(values: number[]): { max: number; step: number } {
  const finite = values.filter((v) => Number.isFinite(v));
  const top = finite.length ? Math.max(...finite) * 1.12 : 1;
  const step = niceStep(top);
  return { max: Math.max(step, Math.ceil(top / step) * step), step };
}

function yAxis(x0: number, y0: number, w: number, h: number, min: number, max: number, step: number, unit: string): string {
  const out: string[] = [];
  const decimals = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  for (let v = min; v <= max + step / 1000; v += step) {
    const y = y0 + h - ((v - min) / (max - min)) * h;
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${x0 - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#555">${fmt(v, decimals)}</text>`);
  }
  out.push(`<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y0 + h}" stroke="#888"/>`);
  out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y0 + h}" y2="${y0 + h}" stroke="#888"/>`);
  out.push(`<text transform="translate(${x0 - 44},${y0 + h / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="#333">${esc(unit)}</text>`);
  return out.join('\n');
}

/** Legend entries in a row, wrapping at `right`; returns the SVG and the y of the last row. */
function legend(x: number, y: number, right: number, entries: Array<{ label: string; color: string; hatched?: boolean; dashed?: boolean }>): { svg: string; lastY: number } {
  const out: string[] = [];
  let cx = x;
  let cy = y;
  for (const e of entries) {
    const w = 15 + e.label.length * 6 + 14;
    if (cx > x && cx + w - 14 > right) {
      cx = x;
      cy += 15;
    }
    const fill = e.hatched ? 'url(#hatch)' : e.color;
    if (e.dashed) out.push(`<line x1="${cx}" x2="${cx + 11}" y1="${cy - 4}" y2="${cy - 4}" stroke="${e.color}" stroke-width="1.5" stroke-dasharray="3 2"/>`);
    else out.push(`<rect x="${cx}" y="${cy - 9}" width="11" height="11" fill="${fill}" stroke="${e.color}"/>`);
    out.push(`<text x="${cx + 15}" y="${cy}" font-size="11" fill="#333">${esc(e.label)}</text>`);
    cx += w;
  }
  return { svg: out.join('\n'), lastY: cy };
}

/** Note text under a panel, wrapped to about `maxChars` per line. */
function note(x: number, y: number, text: string, maxChars: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > maxChars) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.map((l, i) => `<text x="${x}" y="${y + i * 14}" font-size="11" fill="#444">${esc(l)}</text>`).join('\n');
}

function barPanel(p: BarPanel, ox: number, oy: number): string {
  const x0 = ox + 64;
  const y0 = oy + 34;
  const w = PANEL_W - 64 - 16;
  const h = PANEL_H - 34 - 96;
  const all = p.groups.flatMap((g) => g.bars.flatMap((b) => [b.value, ...(b.points ?? [])]));
  const { max, step } = axisMax([...all, ...(p.refLines ?? []).map((r) => r.value)]);
  const yOf = (v: number): number => y0 + h - (Math.max(0, v) / max) * h;
  const out: string[] = [`<text x="${ox + 12}" y="${oy + 20}" font-size="14" font-weight="bold" fill="#222">${esc(p.title)}</text>`];
  out.push(yAxis(x0, y0, w, h, 0, max, step, p.unit));
  const groupW = w / Math.max(1, p.groups.length);
  const legendEntries = new Map<string, { label: string; color: string; hatched?: boolean; dashed?: boolean }>();
  p.groups.forEach((g, gi) => {
    const n = Math.max(1, g.bars.length);
    const barW = Math.min(70, (groupW * 0.78) / n);
    const startX = x0 + gi * groupW + (groupW - barW * n) / 2;
    g.bars.forEach((b, bi) => {
      legendEntries.set(b.label, { label: b.label, color: b.color });
      const bx = startX + bi * barW + 2;
      const bw = barW - 4;
      const by = yOf(b.value);
      if (Number.isFinite(b.value)) {
        out.push(`<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${bw.toFixed(1)}" height="${(y0 + h - by).toFixed(1)}" fill="${b.color}" opacity="0.85"><title>${esc(`${g.label} — ${b.label}: ${fmt(b.value, p.digits ?? 0)} ${p.unit}`)}</title></rect>`);
      }
      if (b.inner && Number.isFinite(b.inner.value)) {
        const iy = yOf(Math.min(b.inner.value, b.value));
        out.push(`<rect x="${bx.toFixed(1)}" y="${iy.toFixed(1)}" width="${bw.toFixed(1)}" height="${(y0 + h - iy).toFixed(1)}" fill="url(#hatch)" stroke="#333" stroke-width="0.5"><title>${esc(`${b.inner.label}: ${fmt(b.inner.value, p.digits ?? 0)} ${p.unit}`)}</title></rect>`);
        legendEntries.set(`inner:${b.inner.label}`, { label: b.inner.label, color: '#333', hatched: true });
      }
      (b.points ?? []).forEach((v, i, arr) => {
        const dx = arr.length > 1 ? ((i / (arr.length - 1)) - 0.5) * bw * 0.5 : 0;
        out.push(`<circle cx="${(bx + bw / 2 + dx).toFixed(1)}" cy="${yOf(v).toFixed(1)}" r="3" fill="#fff" stroke="#222" stroke-width="1.2"/>`);
      });
      const top = Math.min(by, ...(b.points ?? []).map((v) => yOf(v) - 4));
      out.push(`<text x="${(bx + bw / 2).toFixed(1)}" y="${(top - 5).toFixed(1)}" text-anchor="middle" font-size="11" font-weight="bold" fill="#222">${fmt(b.value, p.digits ?? 0)}</text>`);
    });
    out.push(`<text x="${(x0 + gi * groupW + groupW / 2).toFixed(1)}" y="${y0 + h + 16}" text-anchor="middle" font-size="12" fill="#222">${esc(g.label)}</text>`);
  });
  for (const r of p.refLines ?? []) {
    const y = yOf(r.value).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y}" y2="${y}" stroke="${r.color}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    legendEntries.set(`ref:${r.label}`, { label: r.label, color: r.color, dashed: true });
  }
  const leg = legend(x0 - 50, y0 + h + 36, ox + PANEL_W - 10, [...legendEntries.values()]);
  out.push(leg.svg);
  if (p.note) out.push(note(x0 - 50, leg.lastY + 18, p.note, 85));
  return out.join('\n');
}

function linePanel(p: LinePanel, ox: number, oy: number): string {
  const x0 = ox + 64;
  const y0 = oy + 34;
  const w = PANEL_W - 64 - 16;
  const h = PANEL_H - 34 - 96;
  const xs = p.series.flatMap((s) => s.points.map(([x]) => x));
  const ys = p.series.flatMap((s) => s.points.map(([, y]) => y));
  const xAxis = axisMax(xs.length ? [Math.max(...xs) / 1.12] : [1]);
  const yMin = p.yMin ?? 0;
  const yRange = axisMax(ys.length ? [Math.max(...ys) - yMin] : [1]);
  const yMax = yMin + yRange.max;
  const X = (v: number): number => x0 + (v / xAxis.max) * w;
  const Y = (v: number): number => y0 + h - ((v - yMin) / (yMax - yMin)) * h;
  const out: string[] = [`<text x="${ox + 12}" y="${oy + 20}" font-size="14" font-weight="bold" fill="#222">${esc(p.title)}</text>`];
  out.push(yAxis(x0, y0, w, h, yMin, yMax, yRange.step, p.yLabel));
  const xDecimals = xAxis.step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(xAxis.step)));
  for (let v = 0; v <= xAxis.max + xAxis.step / 1000; v += xAxis.step) {
    out.push(`<text x="${X(v).toFixed(1)}" y="${y0 + h + 15}" text-anchor="middle" font-size="11" fill="#555">${fmt(v, xDecimals)}</text>`);
  }
  out.push(`<text x="${x0 + w / 2}" y="${y0 + h + 30}" text-anchor="middle" font-size="11" fill="#333">${esc(p.xLabel)}</text>`);
  for (const s of p.series) {
    if (s.points.length === 0) continue;
    const d = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"/>`);
  }
  (p.markers ?? []).forEach((m, i) => {
    const x = X(m.x).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + h}" stroke="${m.color}" stroke-width="1" stroke-dasharray="4 3"/>`);
    // Labels of markers in the right part of the plot go to the left of their line, so they stay inside.
    const right = X(m.x) > x0 + w * 0.7;
    out.push(`<text x="${Number(x) + (right ? -3 : 3)}" y="${y0 + 12 + i * 13}" text-anchor="${right ? 'end' : 'start'}" font-size="10" fill="${m.color}">${esc(m.label)}</text>`);
  });
  const leg = legend(x0 - 50, y0 + h + 46, ox + PANEL_W - 10, p.series.map((s) => ({ label: s.label, color: s.color })));
  out.push(leg.svg);
  if (p.note) out.push(note(x0 - 50, leg.lastY + 18, p.note, 85));
  return out.join('\n');
}

export function renderFigure(fig: Figure): string {
  const columns = fig.columns ?? 2;
  const rows = Math.ceil(fig.panels.length / columns);
  const width = columns * PANEL_W + 20;
  const height = HEADER_H + rows * PANEL_H + 10;
  const body = fig.panels.map((p, i) => {
    const ox = 10 + (i % columns) * PANEL_W;
    const oy = HEADER_H + Math.floor(i / columns) * PANEL_H;
    const frame = `<rect x="${ox + 2}" y="${oy + 2}" width="${PANEL_W - 4}" height="${PANEL_H - 6}" fill="#fff" stroke="#ddd" rx="4"/>`;
    return frame + '\n' + (p.kind === 'bar' ? barPanel(p, ox, oy) : linePanel(p, ox, oy));
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">',
    '<rect width="6" height="6" fill="#ffffff" opacity="0.35"/><line x1="0" y1="0" x2="0" y2="6" stroke="#333" stroke-width="1.5"/></pattern></defs>',
    `<rect width="${width}" height="${height}" fill="#f7f7f7"/>`,
    `<text x="20" y="28" font-size="18" font-weight="bold" fill="#111">${esc(fig.title)}</text>`,
    fig.subtitle ? `<text x="20" y="48" font-size="12" fill="#444">${esc(fig.subtitle)}</text>` : '',
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
