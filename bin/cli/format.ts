/**
 * Plain-text tables and small formatting helpers for the CLI. Colour only on a TTY
 * (and never with NO_COLOR), so piped output stays clean.
 */
const useColor = () => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

export const paint = {
  bold: (s: string) => (useColor() ? `\x1b[1m${s}\x1b[22m` : s),
  dim: (s: string) => (useColor() ? `\x1b[2m${s}\x1b[22m` : s),
  green: (s: string) => (useColor() ? `\x1b[32m${s}\x1b[39m` : s),
  red: (s: string) => (useColor() ? `\x1b[31m${s}\x1b[39m` : s),
  yellow: (s: string) => (useColor() ? `\x1b[33m${s}\x1b[39m` : s),
};

type Cell = string | number | boolean | null | undefined;

function cellText(value: Cell): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(2);
  return String(value);
}

/** A left-aligned table with a header row; long cells are cut at `maxWidth`. */
export function table(columns: readonly string[], rows: readonly (readonly Cell[])[], maxWidth = 60): string {
  const text = rows.map((r) => columns.map((_, i) => {
    const t = cellText(r[i]).replace(/\s+/g, ' ');
    return t.length > maxWidth ? `${t.slice(0, maxWidth - 1)}…` : t;
  }));
  const widths = columns.map((c, i) => Math.max(c.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [paint.bold(line(columns)), ...text.map(line)].join('\n');
}

export function ago(iso: string | undefined, now = new Date()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/** `{ meanTimeMs: { before: 12, after: 3 } }` → `meanTimeMs 12→3 (-75%)`. */
export function formatEffect(effect: Record<string, { before: number; after: number }> | undefined): string {
  if (!effect) return '-';
  return Object.entries(effect)
    .map(([name, { before, after }]) => {
      const pct = before !== 0 ? ` (${after >= before ? '+' : ''}${(((after - before) / Math.abs(before)) * 100).toFixed(0)}%)` : '';
      return `${name} ${cellText(before)}→${cellText(after)}${pct}`;
    })
    .join(', ');
}

/** An analysis or validation report as the CLI prints it: title, each section's table, notes. */
export function reportLines(report: {
  readonly title: string;
  readonly sections: readonly { readonly title: string; readonly columns: readonly string[]; readonly rows: readonly (readonly Cell[])[]; readonly empty?: string }[];
  readonly notes: readonly string[];
}): string[] {
  const lines = [paint.bold(report.title)];
  for (const section of report.sections) {
    lines.push('', paint.bold(section.title), section.rows.length ? table(section.columns, section.rows, 70) : section.empty ?? 'nothing found');
  }
  if (report.notes.length) lines.push('', ...report.notes.map((note) => paint.dim(`note: ${note}`)));
  return lines;
}
