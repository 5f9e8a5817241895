/**
 * `npm run optimization:validate-database`: checks every index Perfpilot applied
 * (catalog marks + the ledger's live create-index changes) still exists, is valid,
 * is used and still pays. Prints a table (or --json) and exits 1 when one does not.
 */
import './cli/env.ts';
import '#local/polyfills';
import { Command, Option } from 'commander';
import { DEFAULT_CONFIG_FILE, loadConfig } from '#lib/config';
import type { Change } from '#shared/change';
import { validateDatabase } from '#functions/database/validate';
import { openLedger } from './cli/context.ts';
import { reportLines } from './cli/format.ts';

const write = (line: string) => process.stdout.write(`${line}\n`);

const program = new Command('validate-database')
  .description("checks that every index Perfpilot applied still exists, is valid, is used and still pays")
  .addOption(new Option('-c, --config <file>', 'config file').default(DEFAULT_CONFIG_FILE))
  .addOption(new Option('-t, --target <target>', 'local or aws').choices(['local', 'aws']).default('local'))
  .option('--table <name>', 'ledger table name with --target aws')
  .option('--no-ledger', 'check the catalog only (no missing-index or before/after checks)')
  .option('--json', 'print JSON')
  .action(async (opts: { config: string; target: 'local' | 'aws'; table?: string; ledger: boolean; json?: boolean }) => {
    const config = loadConfig(opts.config);
    let appliedChanges: Change[] | undefined;
    if (opts.ledger) {
      const access = await openLedger(config, opts);
      try {
        appliedChanges = await access.ledger.recentChanges('database', new Date(0), 5_000);
      } finally {
        await access.close();
      }
    }
    const report = await validateDatabase(config, { target: opts.target, appliedChanges });
    if (opts.json) write(JSON.stringify(report.json, null, 2));
    else for (const line of reportLines(report)) write(line);
    if (!(report.json as { ok: boolean }).ok) process.exitCode = 1;
  });

program.parseAsync().catch((error: Error) => {
  process.stderr.write(`${error.name}: ${error.message}\n`);
  process.exitCode = 2;
});
