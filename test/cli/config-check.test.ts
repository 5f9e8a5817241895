/**
 * What `perfpilot config check` accepts is what deploys: schedules are held to
 * EventBridge's rules, and the local ledger path means the same folder from anywhere.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '#lib/config';
import { scheduleExpressionProblem } from '#lib/schedule-expression';

const exec = promisify(execFile);
const targets = {
  caching: { redisUrl: 'redis://127.0.0.1:6379/0' },
  database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' },
};

describe('EventBridge schedule expressions', () => {
  it.each([
    'rate(1 minute)',
    'rate(5 minutes)',
    'rate(1 hour)',
    'rate(12 hours)',
    'rate(1 day)',
    'rate(7 days)',
    'cron(0 3 * * ? *)',
    'cron(15 10 ? * 6L 2026-2030)',
    'cron(0/15 8-17 ? * MON-FRI *)',
    'cron(0 12 L * ? *)',
    'cron(0 9 ? JAN,JUL 2#1 *)',
    'cron(30 4 1W * ? *)',
  ])('accepts %s', (expression) => {
    expect(scheduleExpressionProblem(expression)).toBeUndefined();
  });

  it.each([
    ['rate(0 minutes)', 'at least 1'],
    ['rate(5 minute)', 'plural unit: rate(5 minutes)'],
    ['rate(1 hours)', 'singular unit: rate(1 hour)'],
    ['rate(1 week)', 'unknown rate unit "week"'],
    ['rate(1.5 hours)', 'whole number'],
    ['rate(5  minutes)', 'expected rate(<value> <unit>)'],
    ['cron(0 3 * * *)', 'expected 6 fields'],
    ['cron(0 3 * * * *)', 'use ? in exactly one of day-of-month and day-of-week'],
    ['cron(0 3 ? * ? *)', 'use ? in exactly one'],
    ['cron(60 3 * * ? *)', 'minutes: 60 is outside 0–59'],
    ['cron(0 24 * * ? *)', 'hours: 24 is outside 0–23'],
    ['cron(0 3 * 13 ? *)', 'month: 13 is outside 1–12'],
    ['cron(0 3 ? * 8 *)', 'day-of-week: 8 is outside 1–7'],
    ['cron(0 3 ? * MON#6 *)', '#6 must be 1–5'],
    ['cron(0/0 3 * * ? *)', 'step "0" must be a whole number ≥ 1'],
    ['cron(? 3 * * ? *)', 'minutes: ? is only allowed'],
    ['every hour', 'expected an EventBridge schedule expression'],
  ])('rejects %s, saying why', (expression, why) => {
    expect(scheduleExpressionProblem(expression)).toContain(why);
  });

  it('names the config field and the rule in the config error', () => {
    expect(() => parseConfig({ targets, areas: { database: { schedule: 'cron(0 3 * * *)' } } }, 'perfpilot.config.json')).toThrow(
      /areas\.database\.schedule: "cron\(0 3 \* \* \*\)": expected 6 fields/,
    );
  });

  it('`perfpilot config check --offline` fails with the field named for a schedule EventBridge would reject', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'perfpilot-schedule-'));
    const file = join(dir, 'perfpilot.config.json');
    writeFileSync(file, JSON.stringify({ targets, areas: { caching: { schedule: 'rate(1 hours)' } } }));
    const outcome = await exec('node', ['bin/perfpilot.mjs', '--config', file, 'config', 'check', '--offline'], { env: { ...process.env, NO_COLOR: '1' } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    rmSync(dir, { recursive: true, force: true });
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toContain('areas.caching.schedule: "rate(1 hours)": a rate of 1 takes the singular unit: rate(1 hour)');
  });
});

describe('the local ledger path', () => {
  it('is absolute, resolved against the config file folder, not the working directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'perfpilot-ledger-path-'));
    mkdirSync(join(dir, 'conf'));
    const file = join(dir, 'conf', 'perfpilot.config.json');
    writeFileSync(file, JSON.stringify({ targets, ledger: { localDataDir: 'state/ledger' } }));
    const cwd = process.cwd();
    try {
      process.chdir(tmpdir());
      expect(loadConfig(file).ledger.localDataDir).toBe(join(dir, 'conf', 'state', 'ledger'));
      writeFileSync(file, JSON.stringify({ targets }));
      expect(loadConfig(file).ledger.localDataDir).toBe(join(dir, 'conf', '.perfpilot', 'ledger'));
      writeFileSync(file, JSON.stringify({ targets, ledger: { localDataDir: '/var/tmp/pp-ledger' } }));
      expect(loadConfig(file).ledger.localDataDir).toBe('/var/tmp/pp-ledger');
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
