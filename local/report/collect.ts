/**
 * Gathers what `perfpilot report` shows: the ledger's changes (every area), and what
 * runs saved as JSON — `perfpilot load --json` or a saved validation run for the
 * latency before and after, and `perfpilot demo --json` for the hit rate over the run,
 * the demo's latency before and after, and the regression drill.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AREAS } from '#lib/config';
import type { ChangeLedger } from '#shared/ledger';
import { InvalidRequestError } from '#shared/errors';
import type { LevelReport } from '#local/load/fleet-load';
import type { DemoReport } from '#local/demo/run-demo';
import type { LatencyLevel, ReportChange, ReportData } from './html-report.ts';

/** The levels of a saved load report (`perfpilot load --json`) or validation run. */
function levelsOf(raw: unknown, path: string): LevelReport[] {
  const r = raw as { levels?: LevelReport[]; level?: LevelReport; kind?: string };
  if (Array.isArray(r?.levels)) return r.levels;
  if (r?.level && typeof r.level.loops === 'number') return [r.level];
  throw new InvalidRequestError(`${path} is neither a load report (perfpilot load --json) nor a saved validation run`);
}

export function readJsonFile(file: string): unknown {
  const path = resolve(file);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InvalidRequestError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Before/after latency per concurrency level, matched by loops. */
export function latencyLevels(before: readonly LevelReport[], after: readonly LevelReport[]): LatencyLevel[] {
  const loops = [...new Set([...before.map((l) => l.loops), ...after.map((l) => l.loops)])].sort((a, b) => a - b);
  return loops.map((n) => ({
    label: `${n} loop${n === 1 ? '' : 's'}`,
    before: before.find((l) => l.loops === n)?.latency ?? null,
    after: after.find((l) => l.loops === n)?.latency ?? null,
  }));
}

export async function ledgerChanges(ledger: ChangeLedger, rolloutsPerArea = 20): Promise<ReportChange[]> {
  const out: ReportChange[] = [];
  for (const area of AREAS) {
    for (const rollout of await ledger.listRollouts(area, rolloutsPerArea)) {
      for (const c of await ledger.listChanges(rollout.rolloutId)) {
        out.push({ area, changeId: c.changeId, kind: c.kind, target: c.target, status: c.status, reason: c.reason, createdAt: c.createdAt, ...(c.effect ? { effect: c.effect } : {}) });
      }
    }
  }
  return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** The report's data from a demo run (its JSON report). */
export function demoReportData(demo: DemoReport): Pick<ReportData, 'latency' | 'hitRate' | 'regression'> {
  return {
    ...(demo.latency ? { latency: { beforeLabel: 'warm-up', afterLabel: 'after the rollouts', levels: [{ label: `${demo.workload.loops} loops`, before: demo.latency.before, after: demo.latency.after }] } } : {}),
    ...(demo.hitRateSeries && demo.hitRateSeries.length > 0
      ? { hitRate: { points: demo.hitRateSeries, markers: demo.markers ?? [], ...(demo.regression ? { thresholdPercent: demo.regression.alarm.threshold } : {}) } }
      : {}),
    ...(demo.regression ? { regression: demo.regression } : {}),
  };
}

export interface CollectOptions {
  readonly before?: string;
  readonly after?: string;
  readonly demo?: string;
}

export async function collectReportData(ledger: ChangeLedger, where: string, options: CollectOptions, now: Date): Promise<ReportData> {
  const fromDemo = options.demo ? demoReportData(readJsonFile(options.demo) as DemoReport) : {};
  const before = options.before ? levelsOf(readJsonFile(options.before), options.before) : [];
  const after = options.after ? levelsOf(readJsonFile(options.after), options.after) : [];
  const latency = before.length || after.length ? { beforeLabel: 'before', afterLabel: 'after', levels: latencyLevels(before, after) } : fromDemo.latency;
  return {
    title: 'Perfpilot report',
    generatedAt: now.toISOString(),
    source: `Changes from the ${where}${options.before || options.after ? `; latency from ${[options.before, options.after].filter(Boolean).join(' and ')}` : ''}${options.demo ? `; run data from ${options.demo}` : ''}.`,
    ...fromDemo,
    ...(latency ? { latency } : {}),
    changes: await ledgerChanges(ledger),
  };
}
