/**
 * `perfpilot metrics`, `perfpilot analytics` and `perfpilot monitoring`
 * (npm run performance:metrics, performance:analytics, monitoring:activate-comprehensive).
 * Registered with every command, so each loads what it needs when it runs.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { GlobalOptions } from './context.ts';

const context = () => import('./context.ts');
const cloudWatch = async () => new (await import('@aws-sdk/client-cloudwatch')).CloudWatchClient({});

const write = (line: string) => process.stdout.write(`${line}\n`);

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 300) throw new InvalidArgumentError('expected seconds above 0 and at most 300');
  return n;
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return n;
}

export function registerMonitoringCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('metrics')
    .description('the KPIs now against their targets: locally from the services and the runtime\'s counters, with --target aws from CloudWatch')
    .option('--sample-seconds <n>', 'locally: the window the rates and hit rate are measured over', seconds, 5)
    .option('--json', 'print JSON')
    .action(async (opts: { sampleSeconds: number; json?: boolean }) => {
      const [{ openLedger, readConfig }, { awsKpis, localKpis, renderKpis }] = await Promise.all([context(), import('./metrics.ts')]);
      const config = readConfig(globals());
      if (globals().target === 'aws') {
        const report = await awsKpis(await cloudWatch(), config, new Date());
        write(opts.json ? JSON.stringify(report, null, 2) : renderKpis(report));
        return;
      }
      const access = await openLedger(config, globals());
      try {
        const runtime = access.runtime!;
        const report = await localKpis(config, (area, now) => runtime.signals.snapshot(area, now), opts.sampleSeconds);
        write(opts.json ? JSON.stringify(report, null, 2) : renderKpis(report));
      } finally {
        await access.close();
      }
    });

  program
    .command('analytics')
    .description('trends over the ledger\'s history: changes per area, kept vs reverted, measured effect distributions, effects over time')
    .option('--limit <n>', 'rollouts per area', count, 100)
    .option('--json', 'print JSON')
    .action(async (opts: { limit: number; json?: boolean }) => {
      const [{ openLedger, readConfig }, { collectAnalytics, renderAnalytics }] = await Promise.all([context(), import('./analytics.ts')]);
      const config = readConfig(globals());
      const access = await openLedger(config, globals());
      try {
        const report = await collectAnalytics(access.ledger, access.where, opts.limit);
        write(opts.json ? JSON.stringify(report, null, 2) : renderAnalytics(report));
      } finally {
        await access.close();
      }
    });

  program
    .command('monitoring')
    .description('check that every alarm and KPI dashboard widget the config asks for exists and watches a produced metric (locally: that the local evaluation covers it); changes nothing unless --create-missing (alarms)')
    .option('--create-missing', 'with --target aws: create the missing alarms from their definitions')
    .option('--json', 'print JSON')
    .action(async (opts: { createMissing?: boolean; json?: boolean }) => {
      const [{ openLedger, readConfig }, { checkAwsMonitoring, checkLocalMonitoring, renderMonitoring }] = await Promise.all([context(), import('./monitoring.ts')]);
      const config = readConfig(globals());
      let report;
      if (globals().target === 'aws') {
        report = await checkAwsMonitoring(await cloudWatch(), config, { createMissing: Boolean(opts.createMissing) });
      } else {
        const access = await openLedger(config, globals());
        try {
          const runtime = access.runtime!;
          report = await checkLocalMonitoring(config, (area, now) => runtime.signals.snapshot(area, now));
        } finally {
          await access.close();
        }
      }
      write(opts.json ? JSON.stringify(report, null, 2) : renderMonitoring(report));
      if (report.missing > 0) process.exitCode = 1;
    });
}
