/**
 * Small, dependency-free SVG charts for the HTML report: a line chart (series over a
 * numeric x, with vertical markers) and a grouped bar chart. They return SVG markup
 * with every text escaped, so the report needs no script, no CDN and no network.
 */

export interface Point {
  readonly x: number;
  readonly y: number;
}

export interface LineSeries {
  readonly name: string;
  readonly points: readonly Point[];
}

export interface LineChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly LineSeries[];
  /** Vertical lines at an x, labelled (e.g. "injected"). */
  readonly markers?: readonly { readonly x: number; readonly label: string }[];
  /** A horizontal line at a y, labelled (e.g. an alarm threshold). */
  readonly threshold?: { readonly y: number; readonly label: string };
  /** Format of x tick labels. */
  readonly xFormat?: (x: number) => string;
  readonly width?: number;
  readonly height?: number;
}

export interface BarGroup {
  readonly label: string;
  readonly bars: readonly { readonly name: string; readonly value: number }[];
}

export interface BarChartSpec {
  readonly title: string;
  readonly yLabel: string;
  readonly groups: readonly BarGroup[];
  readonly width?: number;
  readonly height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const MARGIN = { top: 44, right: 16, bottom: 48, left: 60 };

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const num = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));
const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

/** About `count` round tick values covering [min, max]. */
export function ticks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function frame(title: string, width: number, height: number, body: string, legend: readonly string[]): string {
  // Legend entries flow left to right and wrap; the chart grows by the extra rows.
  let x = MARGIN.left;
  let row = 0;
  const items = legend.map((name, i) => {
    const w = 24 + name.length * 6.2;
    if (x + w > width - MARGIN.right && x > MARGIN.left) {
      x = MARGIN.left;
      row++;
    }
    const item = `<g transform="translate(${num(x)},${height - 2 + row * 16})"><rect width="10" height="10" y="-9" fill="${PALETTE[i % PALETTE.length]}"/><text x="14" font-size="11">${escapeXml(name)}</text></g>`;
    x += w;
    return item;
  });
  const total = height + 8 + row * 16;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="${escapeXml(title)}" width="${width}" height="${total}" viewBox="0 0 ${width} ${total}" font-family="sans-serif">` +
    `<title>${escapeXml(title)}</title><text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>` +
    body +
    items.join('') +
    '</svg>'
  );
}

function yAxis(yMin: number, yMax: number, scaleY: (y: number) => number, width: number, label: string, height: number): string {
  const lines = ticks(yMin, yMax)
    .map((t) => `<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${num(scaleY(t))}" y2="${num(scaleY(t))}" stroke="#ddd"/><text x="${MARGIN.left - 6}" y="${num(scaleY(t) + 4)}" text-anchor="end" font-size="10">${fmt(t)}</text>`)
    .join('');
  const mid = (MARGIN.top + height - MARGIN.bottom) / 2;
  return `${lines}<text transform="translate(14,${num(mid)}) rotate(-90)" text-anchor="middle" font-size="11">${escapeXml(label)}</text>`;
}

export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 720;
  const height = spec.height ?? 300;
  const points = spec.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const xs = [...points.map((p) => p.x), ...(spec.markers ?? []).map((m) => m.x)];
  const ys = [...points.map((p) => p.y), ...(spec.threshold ? [spec.threshold.y] : [])];
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs) > xMin ? Math.max(...xs) : xMin + 1;
  const yMin = Math.min(0, ...ys);
  const yMax = Math.max(...ys) > yMin ? Math.max(...ys) * 1.05 : yMin + 1;
  const scaleX = (x: number) => MARGIN.left + ((x - xMin) / (xMax - xMin)) * (width - MARGIN.left - MARGIN.right);
  const scaleY = (y: number) => height - MARGIN.bottom - ((y - yMin) / (yMax - yMin)) * (height - MARGIN.top - MARGIN.bottom);
  const xFormat = spec.xFormat ?? fmt;
  let body = yAxis(yMin, yMax, scaleY, width, spec.yLabel, height);
  body += ticks(xMin, xMax)
    .map((t) => `<text x="${num(scaleX(t))}" y="${height - MARGIN.bottom + 14}" text-anchor="middle" font-size="10">${escapeXml(xFormat(t))}</text>`)
    .join('');
  body += `<text x="${(MARGIN.left + width - MARGIN.right) / 2}" y="${height - MARGIN.bottom + 28}" text-anchor="middle" font-size="11">${escapeXml(spec.xLabel)}</text>`;
  if (spec.threshold) {
    const y = num(scaleY(spec.threshold.y));
    body += `<line class="threshold" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${y}" y2="${y}" stroke="#d62728" stroke-dasharray="6 3"/><text x="${width - MARGIN.right}" y="${num(scaleY(spec.threshold.y) - 4)}" text-anchor="end" font-size="10" fill="#d62728">${escapeXml(spec.threshold.label)}</text>`;
  }
  // Marker labels alternate between two lines so neighbours do not overwrite each other.
  [...(spec.markers ?? [])].sort((a, b) => a.x - b.x).forEach((m, i) => {
    const x = num(scaleX(m.x));
    body += `<line class="marker" x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${height - MARGIN.bottom}" stroke="#555" stroke-dasharray="2 3"/><text x="${x}" y="${MARGIN.top - (i % 2 ? 12 : 2)}" text-anchor="middle" font-size="10">${escapeXml(m.label)}</text>`;
  });
  spec.series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (pts.length === 0) return;
    const color = PALETTE[i % PALETTE.length];
    body += `<polyline class="series" fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${num(scaleX(p.x))},${num(scaleY(p.y))}`).join(' ')}"/>`;
    body += pts.map((p) => `<circle cx="${num(scaleX(p.x))}" cy="${num(scaleY(p.y))}" r="2.5" fill="${color}"><title>${escapeXml(`${s.name}: ${fmt(p.y)} at ${xFormat(p.x)}`)}</title></circle>`).join('');
  });
  return frame(spec.title, width, height, body, spec.series.map((s) => s.name));
}

export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? 720;
  const height = spec.height ?? 300;
  const names = [...new Set(spec.groups.flatMap((g) => g.bars.map((b) => b.name)))];
  const values = spec.groups.flatMap((g) => g.bars.map((b) => b.value)).filter(Number.isFinite);
  const yMax = Math.max(1e-9, ...values) * 1.1;
  const scaleY = (y: number) => height - MARGIN.bottom - (y / yMax) * (height - MARGIN.top - MARGIN.bottom);
  const groupWidth = (width - MARGIN.left - MARGIN.right) / Math.max(1, spec.groups.length);
  const barWidth = (groupWidth * 0.8) / Math.max(1, names.length);
  let body = yAxis(0, yMax, scaleY, width, spec.yLabel, height);
  spec.groups.forEach((g, gi) => {
    const x0 = MARGIN.left + gi * groupWidth + groupWidth * 0.1;
    body += `<text x="${num(x0 + groupWidth * 0.4)}" y="${height - MARGIN.bottom + 14}" text-anchor="middle" font-size="10">${escapeXml(g.label)}</text>`;
    for (const b of g.bars) {
      if (!Number.isFinite(b.value)) continue;
      const i = names.indexOf(b.name);
      const y = scaleY(b.value);
      body += `<rect class="bar" x="${num(x0 + i * barWidth)}" y="${num(y)}" width="${num(barWidth * 0.9)}" height="${num(height - MARGIN.bottom - y)}" fill="${PALETTE[i % PALETTE.length]}"><title>${escapeXml(`${g.label} ${b.name}: ${fmt(b.value)}`)}</title></rect>`;
    }
  });
  return frame(spec.title, width, height, body, names);
}
