/**
 * `perfpilot report` writes one self-contained HTML file; opened in headless Chromium
 * (Debian's chromium, driven by playwright-core) its charts are drawn, it makes no
 * request and logs no error. The inputs are a real ledger (dynalite on disk, written
 * through the ChangeLedger) and saved run files in the shapes the commands write.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import type { LevelReport } from '#local/load/fleet-load';
import type { DemoReport } from '#local/demo/run-demo';
import { drillTimeline, type DrillReport } from '#local/demo/regression-drill';
import { renderHtmlReport } from '#local/report/html-report';
import { escapeXml, lineChart, ticks } from '#local/report/svg-chart';
import { LocalRuntime } from '#local/runtime';
import { perfpilot } from '../support/perfpilot-cli.ts';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let dir: string;
let browser: Browser;

const percentiles = (p50: number, p95: number, p99: number) => ({ count: 1_000, p50Ms: p50, p95Ms: p95, p99Ms: p99, maxMs: p99 * 2 });
const level = (loops: number, p95: number): LevelReport =>
  ({ loops, minRequestMs: 0, durationSeconds: 10, requests: 1_000, errors: 0, errorRatePercent: 0, throughputRequestsPerSecond: 100, throughputQueriesPerSecond: 300, latency: percentiles(p95 / 4, p95, p95 * 1.5), latencyByKind: {}, queryLatency: null, cacheProbeLatency: null, cacheReads: 0, peakConnections: loops + 1, peakActiveConnections: loops, maxConnections: 100, connectionUtilizationPercent: loops + 1 }) as LevelReport;

const t0 = Date.parse('2026-11-29T10:00:00.000Z');
const at = (s: number) => new Date(t0 + s * 1_000).toISOString();
const times = { injectedAt: at(20), firstBreachAt: at(30), alarmAt: at(40), revertedAt: at(41), backToNormalAt: at(60) };
const drill: DrillReport = {
  ...times,
  timeline: drillTimeline(times),
  outcome: 'reverted',
  detail: 'injected, caught by the alarm, reverted by the rollback, back to normal',
  pattern: 'vehicle:{id}:position',
  harmfulTtlMs: 1,
  alarm: { name: 'perfpilot-critical-cache-hit-rate', threshold: 70, periodSeconds: 10, evaluationPeriods: 3, datapointsToAlarm: 2 },
  rolloutId: 'caching-drill-1',
  changeId: 'caching-drill-1#0000',
  startedAt: at(0),
  firedAlarm: 'perfpilot-critical-cache-hit-rate',
  datapoints: [0, 10, 20, 30, 40].map((s, i) => ({ at: at(s), area: 'caching', alarm: 'perfpilot-critical-cache-hit-rate', signal: 'cacheHitRatePercent', value: [85, 84, 86, 45, 38][i]!, threshold: 70, state: i < 4 ? 'OK' : 'ALARM' }) as const),
  measured: [10, 20, 30, 40, 50, 60].map((s, i) => ({ at: at(s), seconds: 10, reads: 800, hitRatePercent: [84, 85, 50, 40, 60, 82][i]! })),
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'perfpilot-report-'));
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`npm run services\` (it installs Debian's chromium)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
});

afterAll(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('svg charts', () => {
  it('ticks are round numbers covering the range, and text is escaped', () => {
    expect(ticks(0, 100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(ticks(0.3, 2.9)).toEqual([1, 2]);
    expect(ticks(0, 0.05)).toEqual([0, 0.01, 0.02, 0.03, 0.04, 0.05]);
    expect(escapeXml('<a & "b">')).toBe('&lt;a &amp; &quot;b&quot;&gt;');
    const svg = lineChart({ title: 'T <x>', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [{ x: 0, y: 1 }, { x: 1, y: 3 }] }], markers: [{ x: 0.5, label: 'm' }] });
    expect(svg).toContain('<title>T &lt;x&gt;</title>');
    expect(svg.match(/<polyline class="series"[^>]*points="([^"]+)"/)?.[1]?.split(' ')).toHaveLength(2);
    expect(svg).toContain('class="marker"');
  });
});

describe('perfpilot report', () => {
  it('writes a self-contained report that Chromium renders with its charts drawn, no request and no console error', async () => {
    // A ledger with a kept index and its measured effect, and a reverted policy.
    const config = { targets: { caching: { redisUrl: 'redis://127.0.0.1:6379/0' }, database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' } }, ledger: { localDataDir: join(dir, 'ledger') } };
    const configFile = join(dir, 'perfpilot.config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const runtime = await LocalRuntime.start(parseConfig(config));
    try {
      const now = () => new Date();
      await runtime.ledger.startRollout({ rolloutId: 'database-r1', area: 'database', trigger: 'test', now: now() });
      const [index] = await runtime.ledger.addChanges('database-r1', 'database', [{ kind: 'create-index', target: 'fleet_demo.positions(vehicle_id)', params: {}, reason: 'position history scans 60,000 rows', stage: 0 }], now());
      for (const s of ['applying', 'applied', 'kept'] as const) await runtime.ledger.transition(index!, s, { now: now() });
      await runtime.ledger.recordEffect(index!, { meanTimeMs: { before: 12.5, after: 0.4 } }, now());
      await runtime.ledger.endRollout('database-r1', 'succeeded', '1 change kept', now());
    } finally {
      await runtime.close();
    }
    writeFileSync(join(dir, 'before.json'), JSON.stringify({ levels: [level(1, 8), level(4, 20)] }));
    writeFileSync(join(dir, 'after.json'), JSON.stringify({ levels: [level(1, 5), level(4, 11)] }));
    const demo = { database: 'perfpilot_demo', workload: { loops: 3, requests: 1, errors: 0 }, hitRateSeries: drill.measured.map((m) => ({ at: m.at, hitRatePercent: m.hitRatePercent! })), markers: [{ at: at(5), label: 'caching rollout' }], regression: drill } as unknown as DemoReport;
    writeFileSync(join(dir, 'demo.json'), JSON.stringify(demo));

    const out = join(dir, 'report.html');
    const r = await perfpilot(configFile, ['report', '--out', out, '--before', join(dir, 'before.json'), '--after', join(dir, 'after.json'), '--demo', join(dir, 'demo.json')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Report written to ${out}`);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);

    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (req) => {
      if (!req.url().startsWith('file:')) requests.push(req.url());
    });
    await page.goto(pathToFileURL(out).href);
    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((svg) => {
        const marks = [...svg.querySelectorAll('polyline.series, rect.bar')];
        const box = svg.getBoundingClientRect();
        return {
          title: svg.querySelector('title')?.textContent ?? '',
          width: box.width,
          height: box.height,
          marks: marks.length,
          drawn: marks.filter((m) => {
            const b = (m as unknown as { getBBox(): { width: number; height: number } }).getBBox();
            return b.width > 0 || b.height > 0;
          }).length,
        };
      }),
    );
    expect(charts.map((c) => c.title)).toEqual([
      'p50 / p95 / p99 request latency (before vs after)',
      'Cache hit rate per window',
      'Regression drill: hit rate, alarm and rollback',
    ]);
    for (const c of charts) {
      expect(c.width, c.title).toBeGreaterThan(100);
      expect(c.height, c.title).toBeGreaterThan(100);
      expect(c.marks, c.title).toBeGreaterThan(0);
      expect(c.drawn, c.title).toBe(c.marks);
    }
    // Two levels × (3 before + 3 after) bars.
    expect(charts[0]!.marks).toBe(12);
    const text = await page.textContent('body');
    expect(text).toContain('fleet_demo.positions(vehicle_id)');
    expect(text).toContain('meanTimeMs 12.5 → 0.4 (-97%)');
    for (const event of ['injected', 'alarm', 'reverted', 'back to normal']) expect(text).toContain(event);
    expect(text).toContain('+21.0 s'); // reverted, 21 s after the injection
    expect(text).toContain('Not in this run (they appear when their area has data): Realtime: WebSocket posts and bytes per update; Vector search: recall against latency.');
    expect(problems).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  }, 60_000);

  it('shows an area section when its data exists, and leaves out what has none', () => {
    const html = renderHtmlReport({
      title: 'r',
      generatedAt: at(0),
      source: 's',
      changes: [],
      areaSections: [{ area: 'vector', title: 'Vector search: recall against latency', svg: lineChart({ title: 'recall', xLabel: 'ms', yLabel: 'recall', series: [{ name: 'ef', points: [{ x: 1, y: 0.9 }] }] }) }],
    });
    expect(html).toContain('id="area-vector"');
    expect(html).not.toContain('id="latency"');
    expect(html).not.toContain('id="regression"');
    expect(html).toContain('Not in this run (they appear when their area has data): Realtime: WebSocket posts and bytes per update.');
  });
});
