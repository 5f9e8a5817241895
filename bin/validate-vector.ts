/**
 * `npm run optimization:validate-vector`: checks that the active vector index version
 * still meets the recall and latency targets on fresh probes. Prints a table (or
 * --json) and exits 1 when it does not.
 */
import './cli/env.ts';
import '#local/polyfills';
import { Command, Option } from 'commander';
import { DEFAULT_CONFIG_FILE, loadConfig } from '#lib/config';
import { validateVector } from '#functions/vector/validate';
import { reportLines } from './cli/format.ts';

const write = (line: string) => process.stdout.write(`${line}\n`);

const program = new Command('validate-vector')
  .description('checks that the active vector index still meets the recall and latency targets on fresh probes')
  .addOption(new Option('-c, --config <file>', 'config file').default(DEFAULT_CONFIG_FILE))
  .addOption(new Option('-t, --target <target>', 'local or aws').choices(['local', 'aws']).default('local'))
  .option('--json', 'print JSON')
  .action(async (opts: { config: string; target: 'local' | 'aws'; json?: boolean }) => {
    const report = await validateVector(loadConfig(opts.config), { target: opts.target });
    if (opts.json) write(JSON.stringify(report.json, null, 2));
    else for (const line of reportLines(report)) write(line);
    if (!(report.json as { ok: boolean }).ok) process.exitCode = 1;
  });

program.parseAsync().catch((error: Error) => {
  process.stderr.write(`${error.name}: ${error.message}\n`);
  process.exitCode = 2;
});
