/**
 * EventBridge schedule expressions, checked with EventBridge's own rules so that
 * `perfpilot config check` rejects what `cdk deploy` would (PutRule fails on it):
 *
 *   rate(1 minute) | rate(n minutes), n ≥ 2 — likewise hour(s), day(s); singular for 1, plural otherwise
 *   cron(minutes hours day-of-month month day-of-week year) — six fields; `?` in exactly
 *   one of day-of-month and day-of-week
 *
 * Pure: returns what is wrong, in words, or undefined.
 */

const RATE = /^rate\((.*)\)$/;
const CRON = /^cron\((.*)\)$/;

function rateProblem(body: string): string | undefined {
  const m = /^(\S+) (\S+)$/.exec(body.trim() === body ? body : '');
  if (!m) return 'expected rate(<value> <unit>), e.g. rate(1 hour) or rate(15 minutes)';
  const [, valueText, unit] = m as unknown as [string, string, string];
  if (!/^\d+$/.test(valueText)) return `the rate value must be a whole number, got ${JSON.stringify(valueText)}`;
  const value = Number(valueText);
  if (value < 1) return `the rate value must be at least 1, got ${value}`;
  const singular = ['minute', 'hour', 'day'];
  const plural = ['minutes', 'hours', 'days'];
  if (!singular.includes(unit) && !plural.includes(unit)) return `unknown rate unit ${JSON.stringify(unit)}: use minute(s), hour(s) or day(s)`;
  if (value === 1 && plural.includes(unit)) return `a rate of 1 takes the singular unit: rate(1 ${unit.slice(0, -1)})`;
  if (value !== 1 && singular.includes(unit)) return `a rate of ${value} takes the plural unit: rate(${value} ${unit}s)`;
  return undefined;
}

interface CronField {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const FIELDS: readonly CronField[] = [
  { name: 'minutes', min: 0, max: 59 },
  { name: 'hours', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] },
  { name: 'day-of-week', min: 1, max: 7, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
  { name: 'year', min: 1970, max: 2199 },
];

function valueProblem(field: CronField, text: string): string | undefined {
  const index = field.names?.indexOf(text.toUpperCase()) ?? -1;
  if (index >= 0) return undefined;
  if (!/^\d+$/.test(text)) return `${field.name}: ${JSON.stringify(text)} is not a value`;
  const n = Number(text);
  if (n < field.min || n > field.max) return `${field.name}: ${n} is outside ${field.min}–${field.max}`;
  return undefined;
}

function itemProblem(field: CronField, item: string): string | undefined {
  if (item === '') return `${field.name}: empty list item`;
  if (field.name === 'day-of-month' && (item === 'L' || item === 'LW')) return undefined;
  if (field.name === 'day-of-month' && /^\d+W$/.test(item)) return valueProblem(field, item.slice(0, -1));
  if (field.name === 'day-of-week') {
    if (item === 'L') return undefined;
    const last = /^(\w+)L$/.exec(item);
    if (last) return valueProblem(field, last[1]!);
    const nth = /^(\w+)#(\d+)$/.exec(item);
    if (nth) return valueProblem(field, nth[1]!) ?? (Number(nth[2]) >= 1 && Number(nth[2]) <= 5 ? undefined : `${field.name}: #${nth[2]} must be 1–5`);
  }
  const [base, step, extra] = item.split('/');
  if (extra !== undefined) return `${field.name}: ${JSON.stringify(item)} has more than one /`;
  if (step !== undefined && (!/^\d+$/.test(step) || Number(step) < 1)) return `${field.name}: step ${JSON.stringify(step)} must be a whole number ≥ 1`;
  if (base === '*') return undefined;
  const [from, to, more] = base!.split('-');
  if (more !== undefined) return `${field.name}: ${JSON.stringify(base)} is not a range`;
  return valueProblem(field, from!) ?? (to === undefined ? undefined : valueProblem(field, to));
}

function cronProblem(body: string): string | undefined {
  const parts = body.trim().split(/\s+/);
  if (parts.length !== 6) {
    return `expected 6 fields (minutes hours day-of-month month day-of-week year), got ${parts.length}: e.g. cron(0 3 * * ? *)`;
  }
  const dom = parts[2]!;
  const dow = parts[4]!;
  if ((dom === '?') === (dow === '?')) {
    return 'use ? in exactly one of day-of-month and day-of-week (EventBridge cannot take both), e.g. cron(0 3 * * ? *)';
  }
  for (const [i, field] of FIELDS.entries()) {
    const text = parts[i]!;
    if (text === '?') {
      if (field.name !== 'day-of-month' && field.name !== 'day-of-week') return `${field.name}: ? is only allowed in day-of-month or day-of-week`;
      continue;
    }
    for (const item of text.split(',')) {
      const problem = itemProblem(field, item);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** What is wrong with an EventBridge schedule expression, or undefined when EventBridge accepts it. */
export function scheduleExpressionProblem(expression: string): string | undefined {
  const rate = RATE.exec(expression);
  if (rate) return rateProblem(rate[1]!);
  const cron = CRON.exec(expression);
  if (cron) return cronProblem(cron[1]!);
  return 'expected an EventBridge schedule expression such as "rate(1 hour)", "rate(15 minutes)" or "cron(0 3 * * ? *)"';
}
