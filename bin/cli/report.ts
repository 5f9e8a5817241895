/**
 * `perfpilot report`: writes the self-contained HTML report (local/report/) from the
 * ledger and from runs saved as JSON; the demo writes one at its end too. Registered
 * with every command, so what writes the report is loaded when it is written.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { DemoReport } from '#local/demo/run-demo';
import type { ReportData } from '#local/report/html-report';
import type { GlobalOptions, LedgerAccess } from './context.ts';

export const DEFAULT_REPORT_FILE = '.perfpilot/report.html';

export async function writeHtml(file: string, data: ReportData): Promise<string> {
  const { renderHtmlReport } = await import('#local/report/html-report');
  const path = resolve(file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, renderHtmlReport(data));
  return path;
}

/** The demo's report: its own measurements and drill, and the ledger's changes. */
export async function writeDemoReport(access: LedgerAccess, demo: DemoReport, file: string, now = new Date()): Promise<string> {
  const { demoReportData, ledgerChanges } = await import('#local/report/collect');
  return writeHtml(file, {
    title: 'Perfpilot demo report',
    generatedAt: now.toISOString(),
    source: `The demo's own measurements of its fleet app in ${demo.database}; changes from the ${access.where}.`,
    ...demoReportData(demo),
    changes: await ledgerChanges(access.ledger),
  });
}

export function registerReportCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('report')
    .description('write a self-contained HTML report (inline SVG charts): latency before/after per level, hit rate over a run, the regression timeline, the ledger\'s changes with their measured effects')
    .option('-o, --out <file>', 'where to write it', DEFAULT_REPORT_FILE)
    .option('--before <file>', 'latency before: a saved `perfpilot load --json` report or validation run')
    .option('--after <file>', 'latency after: the same, measured after the changes')
    .option('--demo <file>', 'a saved `perfpilot demo --json` report (hit rate over the run, regression drill)')
    .action(async (opts: { out: string; before?: string; after?: string; demo?: string }) => {
      const [{ openLedger, readConfig }, { collectReportData }] = await Promise.all([import('./context.ts'), import('#local/report/collect')]);
      const config = readConfig(globals());
      const access = await openLedger(config, globals());
      try {
        const data = await collectReportData(access.ledger, access.where, opts, new Date());
        process.stdout.write(`Report written to ${await writeHtml(opts.out, data)}\n`);
      } finally {
        await access.close();
      }
    });
}
