/**
 * The Perfpilot CLI. Every command runs the same cores the Lambdas run: locally
 * (the default) against the services in the config, or against the deployed stack
 * with `--target aws`.
 *
 * Registering the commands loads only commander and the small modules below; a
 * command loads what it needs when it runs (`load`), so `perfpilot --help` loads no
 * config schema, database driver or AWS SDK (test/cli/cli-bundle.test.ts holds it).
 */
import './cli/env.ts';
import '#local/polyfills';
import { Command, InvalidArgumentError, Option } from 'commander';
import { AREAS, DEFAULT_CONFIG_FILE, type AreaName } from '#lib/names';
import type { Area } from '#shared/change';
import type { GlobalOptions } from './cli/context.ts';
import { paint, reportLines, table } from './cli/format.ts';
import { registerLoadTestCommands } from './cli/load-tests.ts';
import { DEFAULT_REPORT_FILE, registerReportCommand, writeDemoReport } from './cli/report.ts';
import { registerMonitoringCommands } from './cli/monitoring-commands.ts';

const load = {
  context: () => import('./cli/context.ts'),
  status: () => import('./cli/status.ts'),
  rollout: () => import('./cli/rollout.ts'),
  awsRollout: () => import('./cli/aws-rollout.ts'),
  rollback: () => import('./cli/rollback.ts'),
  configCheck: () => import('./cli/config-check.ts'),
  plugins: () => import('#local/plugins'),
  targetCheck: () => import('#local/target-check'),
  lambda: async () => new (await import('@aws-sdk/client-lambda')).LambdaClient({}),
  sfn: async () => new (await import('@aws-sdk/client-sfn')).SFNClient({}),
};

const write = (line: string) => process.stdout.write(`${line}\n`);

function parseArea(value: string): AreaName {
  if (!(AREAS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${AREAS.join(', ')}`);
  }
  return value as AreaName;
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number ≥ 0');
  return n;
}

const program = new Command('perfpilot')
  .description(
    'A performance autopilot for applications on AWS: it tunes caching, realtime delivery, PostgreSQL/PostGIS and vector search\n' +
      'with staged, reversible changes, and keeps a ledger of every change and its measured effect.',
  )
  .addOption(new Option('-c, --config <file>', 'config file').default(DEFAULT_CONFIG_FILE))
  .addOption(
    new Option('-t, --target <target>', 'local: the services in the config, ledger on this machine; aws: the deployed stack')
      .choices(['local', 'aws'])
      .default('local'),
  )
  .option('--table <name>', 'ledger table name with --target aws (default: <name>-ledger)')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  $ perfpilot demo                     seed a demo app, run its workload, roll out database and caching
  $ perfpilot config check            validate the config and check the services answer
  $ perfpilot analyze database         what the database advisor would change, and why
  $ perfpilot rollout caching          run the caching rollout locally (canary, bake, guardrails)
  $ perfpilot status                   recent rollouts, changes, verdicts and effects
  $ perfpilot rollback --all --yes     emergency: revert everything Perfpilot applied
  $ perfpilot rollout database -t aws  start the deployed rollout and follow it`,
  );

const globals = () => program.opts<GlobalOptions>();

program
  .command('status')
  .description('show recent rollouts with their stages, changes, guardrail verdicts and measured effects')
  .option('--json', 'print JSON')
  .option('--area <area>', 'only this area', parseArea)
  .option('--limit <n>', 'how many rollouts', parseCount, 10)
  .action(async (opts: { json?: boolean; area?: AreaName; limit: number }) => {
    const [{ openLedger, readConfig }, { collectStatus, renderStatus }] = await Promise.all([load.context(), load.status()]);
    const config = readConfig(globals());
    const access = await openLedger(config, globals());
    try {
      const report = await collectStatus(access, opts, config);
      write(opts.json ? JSON.stringify(report, null, 2) : renderStatus(report, config));
    } finally {
      await access.close();
    }
  });

const configCommand = program.command('config').description('work with the config file');
configCommand
  .command('check')
  .description('validate the config file (errors name the field) and check that local targets answer')
  .option('--offline', 'validate only; do not contact the services')
  .action(async (opts: { offline?: boolean }) => {
    const [{ readConfig }, { probeTargets, renderConfigSummary }] = await Promise.all([load.context(), load.configCheck()]);
    const config = readConfig(globals());
    write(renderConfigSummary(config, globals().config));
    if (opts.offline || globals().target === 'aws') return;
    const probes = await probeTargets(config);
    write('');
    for (const p of probes) write(`${p.ok ? paint.green('✓') : paint.red('✗')} ${p.target}: ${p.detail}`);
    if (probes.some((p) => !p.ok)) process.exitCode = 1;
  });

program
  .command('rollout')
  .description('run an area\'s staged rollout: plan, baseline, canary stage, bake, guardrails, remaining stages, record (or revert)')
  .argument('<area>', `one of ${AREAS.join(', ')}`, parseArea)
  .option('--bake-seconds <n>', 'bake time per stage (default: rollout.bakeSeconds from the config)', parseCount)
  .option('--force', 'run even if the circuit breaker disabled the area')
  .option('--json', 'print the result as JSON')
  .action(async (area: AreaName, opts: { bakeSeconds?: number; force?: boolean; json?: boolean }) => {
    const [{ openLedger, readConfig }, { inconclusiveRecord, lockRefusal, progressPrinter, renderChanges, runLocalRolloutCommand }] = await Promise.all([load.context(), load.rollout()]);
    const config = readConfig(globals());
    if (globals().target === 'aws') {
      const { runAwsRollout } = await load.awsRollout();
      const access = await openLedger(config, globals());
      const circuit = await access.areaState.circuit(area).finally(() => access.close());
      const result = await runAwsRollout(await load.sfn(), config, area, opts.json ? () => undefined : progressPrinter(write, opts.bakeSeconds ?? config.rollout.bakeSeconds), 2000, {
        bakeSeconds: opts.bakeSeconds,
        circuit,
        force: opts.force,
      });
      const refused = lockRefusal(result.output);
      write(
        opts.json
          ? JSON.stringify({ ...result, ...(refused ? { refused } : {}) }, null, 2)
          : refused
            ? paint.red(`\nExecution ${result.executionArn} did not run: ${refused}`)
            : `\nExecution ${result.executionArn}: ${result.status}${result.cause ? ` — ${result.cause}` : ''}`,
      );
      if (result.status !== 'SUCCEEDED' || refused) process.exitCode = 1;
      return;
    }
    const access = await openLedger(config, globals(), (subject, message) => write(paint.yellow(`! ${subject}: ${message}`)));
    try {
      const { result, changes } = await runLocalRolloutCommand(access.runtime!, config, area, opts, write);
      const refused = lockRefusal(result.output);
      if (opts.json) {
        write(JSON.stringify({ ...result, ...(refused ? { refused } : {}), changes }, null, 2));
      } else if (refused) {
        write('');
        write(paint.red(`Rollout ${result.rolloutId} did not run: ${refused}.`));
        write(paint.dim('Nothing was applied. `perfpilot status` shows the running rollout; `perfpilot rollback` stops and reverts it.'));
      } else {
        write('');
        write(renderChanges(changes));
        const kept = changes.filter((c) => c.status === 'kept').length;
        const reverted = changes.filter((c) => c.status === 'reverted').length;
        write('');
        if (result.status === 'ABORTED' && result.error === 'RolloutStopped') {
          write(paint.red(`Rollout ${result.rolloutId} was stopped by a rollback: ${result.cause ?? ''}. The rollback reverts what it applied.`));
        } else if (result.status === 'SUCCEEDED' && inconclusiveRecord(result.output)) {
          const r = inconclusiveRecord(result.output)!;
          write(
            paint.yellow(
              `Rollout ${result.rolloutId} inconclusive: the guardrails had no evidence to judge by (no application traffic during the bake?). ` +
                `${r.kept} change(s) kept unverified${r.cancelled ? `, ${r.cancelled} not applied` : ''}. ` +
                `Run it again while the application has traffic, or \`perfpilot rollback ${area}\` to undo.`,
            ),
          );
        } else if (result.status === 'SUCCEEDED') {
          write(paint.green(`Rollout ${result.rolloutId} succeeded: ${changes.length === 0 ? 'nothing to do' : `${kept} change(s) applied and kept${reverted ? `, ${reverted} reverted after measuring` : ''}`}.`));
        } else {
          write(paint.red(`Rollout ${result.rolloutId} ${result.status.toLowerCase()}: ${result.error ?? ''}${result.cause ? ` — ${result.cause}` : ''}`));
        }
        write(paint.dim('See `perfpilot status` for the ledger.'));
      }
      if (result.status !== 'SUCCEEDED' || refused) process.exitCode = 1;
    } finally {
      await access.close();
    }
  });

program
  .command('rollback')
  .description(
    'revert what Perfpilot applied to an area, or to every area with --all (emergency rollback), from the ledger, ' +
      'and (locally) from the marks Perfpilot leaves on the targets when the ledger does not know them',
  )
  .argument('[area]', `one of ${AREAS.join(', ')}`, parseArea)
  .option('--all', 'every area')
  .option('-y, --yes', 'do not ask for confirmation')
  .option('--reason <text>', 'recorded in the ledger', 'manual rollback from the CLI')
  .option('--json', 'print the result as JSON')
  .action(async (area: AreaName | undefined, opts: { all?: boolean; yes?: boolean; reason: string; json?: boolean }) => {
    if (!area && !opts.all) throw new InvalidArgumentError('name an area or pass --all');
    const [{ openLedger, readConfig }, { confirmRollback, plannedReverts, renderMarkReverts, renderRollbackReports, rollbackInAws, rollbackLocally }, { checkTargets, revertMarks }] =
      await Promise.all([load.context(), load.rollback(), load.targetCheck()]);
    const config = readConfig(globals());
    const access = await openLedger(config, globals(), (subject, message) => write(paint.yellow(`! ${subject}: ${message}`)));
    try {
      const areas: Area[] = opts.all ? [...AREAS] : [area!];
      const changes = await plannedReverts(access, config, areas);
      const running = (await Promise.all(areas.map((a) => access.ledger.runningRollouts(a)))).flat();
      // The second record: what the targets say Perfpilot applied that this ledger will not revert.
      const targetDeps = access.runtime ? { ledger: access.ledger, policies: access.runtime.policies } : undefined;
      const check = targetDeps ? await checkTargets(config, targetDeps, areas) : undefined;
      const marks = check?.marks.filter((m) => m.revertFromMark) ?? [];
      if (!opts.json) for (const u of check?.unreachable ?? []) write(paint.dim(`note: could not read the ${u.area} target's marks: ${u.error}`));
      if (changes.length === 0 && running.length === 0 && marks.length === 0) {
        write(opts.json ? JSON.stringify({ reverted: 0, reports: [], targetReverts: [] }) : `Nothing to roll back: ${access.where} has no applied change${opts.all ? '' : ` for ${area}`} and no running rollout${check ? `, and the targets${check.unreachable.length ? ' it could read' : ''} carry no Perfpilot change it does not know` : ''}.`);
        return;
      }
      if (!(await confirmRollback(changes, opts, write, { marks, ledger: access.where }))) {
        write('Nothing was changed.');
        process.exitCode = opts.json ? 2 : 1;
        return;
      }
      const reports =
        globals().target === 'aws'
          ? await rollbackInAws(await load.lambda(), config, areas, opts.reason)
          : await rollbackLocally(access, areas, opts.reason);
      const targetReverts = targetDeps && marks.length > 0 ? await revertMarks(config, targetDeps, marks) : [];
      if (opts.json) {
        write(JSON.stringify({ reports, targetReverts }, null, 2));
      } else {
        write('');
        write(renderRollbackReports(reports));
        if (targetReverts.length > 0) {
          write('');
          write(paint.bold('Reverted from the marks on the targets (the ledger did not know them):'));
          write(renderMarkReverts(targetReverts));
        }
        const failed = reports.reduce((n, r) => n + r.failed, 0) + targetReverts.filter((r) => !r.reverted).length;
        write(failed ? paint.red(`${failed} change(s) could not be reverted: see \`perfpilot status\`.`) : paint.green('Rolled back. `perfpilot status` shows the reverts.'));
      }
      if (reports.some((r) => r.failed > 0) || targetReverts.some((r) => !r.reverted)) process.exitCode = 1;
    } finally {
      await access.close();
    }
  });

program
  .command('enable')
  .description('re-enable an area the circuit breaker disabled (after fixing the cause)')
  .argument('<area>', `one of ${AREAS.join(', ')}`, parseArea)
  .action(async (area: AreaName) => {
    const { openLedger, readConfig } = await load.context();
    const config = readConfig(globals());
    const access = await openLedger(config, globals());
    try {
      if (globals().target === 'aws') {
        // The circuit breaker disabled the schedule rule; enabling the area turns it back on.
        const rule = `${config.name}-${area}-schedule`;
        const { EnableRuleCommand, EventBridgeClient } = await import('@aws-sdk/client-eventbridge');
        await new EventBridgeClient({}).send(new EnableRuleCommand({ Name: rule }));
        await access.areaState.enable(area);
        write(`${area} is enabled again: its schedule rule ${rule} is on.`);
        return;
      }
      await access.areaState.enable(area);
      write(`${area} is enabled again.`);
    } finally {
      await access.close();
    }
  });

program
  .command('analyze')
  .description('read-only analysis of an area: what its planner sees and would change, and why')
  .argument('<area>', `one of ${AREAS.join(', ')}`, parseArea)
  .option('--json', 'print JSON')
  .action(async (area: AreaName, opts: { json?: boolean }) => {
    const { readConfig } = await load.context();
    const config = readConfig(globals());
    const report =
      globals().target === 'aws'
        ? await (await load.awsRollout()).analyzeInAws(await load.lambda(), config, area)
        : await (await (await load.plugins()).loadAnalyzer(area))(config);
    if (opts.json) {
      write(JSON.stringify(report.json, null, 2));
      return;
    }
    for (const line of reportLines(report)) write(line);
  });

program
  .command('demo')
  .description(
    'see the autopilot work on the local services: seed a fleet-tracking app, run its workload, roll out database then caching, summarize what changed and what was measured',
  )
  .option('--warmup-seconds <n>', 'workload traffic before the first rollout, so the planners have statistics', parseCount, 20)
  .option('--reset', 'recreate the demo data (reverting the indexes Perfpilot made in it first)')
  .option('--json', 'progress on stderr, the report as one JSON object on stdout')
  .addOption(new Option('--scale <scale>', 'size of the seeded app').choices(['default', 'small']).default('default').hideHelp())
  .addOption(new Option('--measure-seconds <n>', 'workload time after the last rollout').argParser(parseCount).default(10).hideHelp())
  .addOption(new Option('--loops <n>', 'concurrent request loops of the workload').argParser(parseCount).default(3).hideHelp())
  .option('--no-regression-drill', 'skip the harmful change an alarm must catch and roll back')
  .option('--report <file>', 'where to write the HTML report', DEFAULT_REPORT_FILE)
  .action(async (opts: { warmupSeconds: number; reset?: boolean; json?: boolean; scale: 'default' | 'small'; measureSeconds: number; loops: number; regressionDrill: boolean; report: string }) => {
    if (globals().target === 'aws') throw new InvalidArgumentError('the demo runs on the local services only (no --target aws)');
    const [{ openLedger, readConfig }, { probeTargets }, { runLocalRolloutCommand }] = await Promise.all([load.context(), load.configCheck(), load.rollout()]);
    const config = readConfig(globals());
    const { runDemo, renderDemoSummary } = await import('#local/demo/run-demo');
    const progress = opts.json ? (line: string) => process.stderr.write(`${line}\n`) : write;
    const access = await openLedger(config, globals(), (subject, message) => progress(paint.yellow(`! ${subject}: ${message}`)));
    try {
      const report = await runDemo(
        {
          config,
          runtime: access.runtime!,
          write: progress,
          probe: () => probeTargets(config),
          rollout: (area) => runLocalRolloutCommand(access.runtime!, config, area, {}, progress),
        },
        { warmupSeconds: opts.warmupSeconds, measureSeconds: opts.measureSeconds, reset: Boolean(opts.reset), scale: opts.scale, loops: Math.max(1, opts.loops), regressionDrill: opts.regressionDrill },
      );
      progress(`Report written to ${await writeDemoReport(access, report, opts.report)}`);
      if (opts.json) {
        write(JSON.stringify(report, null, 2));
      } else {
        write('');
        write(renderDemoSummary(report));
      }
    } finally {
      await access.close();
    }
  });

function parseLevels(value: string): number[] {
  const levels = value.split(',').map((v) => Number(v.trim()));
  if (levels.length === 0 || levels.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError('expected whole numbers ≥ 1 separated by commas, e.g. 1,4,16,32');
  return levels;
}

program
  .command('load')
  .description(
    'peak-load test of the demo fleet app on the local services: its request mix at a ramp of concurrency levels; per level throughput, latency percentiles, errors, cache hit rate and connections; the peak level against the KPI targets',
  )
  .option('--levels <list>', 'concurrent request loops per level, comma-separated', parseLevels, [1, 4, 16, 32])
  .option('--seconds-per-level <n>', 'how long each level runs', parseCount, 10)
  .option('--fail-on-kpi', 'exit 1 when a KPI is missed at the peak level')
  .option('--json', 'progress on stderr, the report as one JSON object on stdout')
  .addOption(new Option('--scale <scale>', 'size of the seeded app').choices(['default', 'small']).default('default').hideHelp())
  .action(async (opts: { levels: number[]; secondsPerLevel: number; failOnKpi?: boolean; json?: boolean; scale: 'default' | 'small' }) => {
    if (globals().target === 'aws') throw new InvalidArgumentError('the load test runs on the local services only (no --target aws)');
    const { readConfig } = await load.context();
    const config = readConfig(globals());
    const { runLoad, renderLoadReport } = await import('#local/load/peak-load');
    const progress = opts.json ? (line: string) => process.stderr.write(`${line}\n`) : write;
    const report = await runLoad({ config, write: progress }, { levels: opts.levels, secondsPerLevel: opts.secondsPerLevel, scale: opts.scale });
    write(opts.json ? JSON.stringify(report, null, 2) : `\n${renderLoadReport(report)}`);
    if (opts.failOnKpi && !report.kpisPassed) process.exitCode = 1;
  });

registerLoadTestCommands(program, globals);
registerReportCommand(program, globals);
registerMonitoringCommands(program, globals);

program
  .command('areas')
  .description('list the areas and whether this installation can tune them yet')
  .action(async () => {
    const { AREA_REGISTRY, isRegisteredArea } = await load.plugins();
    write(
      table(
        ['AREA', 'ROLLOUT AND ANALYZE', 'TUNES'],
        AREAS.map((a) => [a, isRegisteredArea(a) ? 'yes' : 'not yet', isRegisteredArea(a) ? AREA_REGISTRY[a].summary : '']),
      ),
    );
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const e = error as Error;
  if (e.name === 'ConfigError') {
    process.stderr.write(`${paint.red('config error:')} ${e.message}\n`);
    process.exitCode = 2;
  } else if (e.name === 'InvalidArgumentError' || e.name === 'CommanderError') {
    process.stderr.write(`${paint.red('error:')} ${e.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`${paint.red('error:')} ${e.message}\n`);
    if (process.env.PERFPILOT_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  }
}
