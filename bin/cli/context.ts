/**
 * What every command needs: the validated config, and the ledger — the local one
 * (dynalite, in `ledger.localDataDir`) or the deployed DynamoDB table.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { loadConfig, type PerfpilotConfig } from '#lib/config';
import { AreaLock } from '#shared/area-lock';
import { AreaStateStore } from '#shared/area-state';
import { ChangeLedger, documentClient } from '#shared/ledger';
import { LocalRuntime } from '#local/runtime';

export interface GlobalOptions {
  readonly config: string;
  readonly target: 'local' | 'aws';
  readonly table?: string;
}

export interface LedgerAccess {
  readonly ledger: ChangeLedger;
  readonly lock: AreaLock;
  readonly areaState: AreaStateStore;
  /** Said in output so the user knows which ledger they are looking at. */
  readonly where: string;
  readonly runtime?: LocalRuntime;
  close(): Promise<void>;
}

export function readConfig(options: GlobalOptions): PerfpilotConfig {
  return loadConfig(options.config);
}

/** The deployed ledger table's name: `--table`, else the stack's fixed name. */
export function ledgerTableName(config: PerfpilotConfig, options: GlobalOptions): string {
  return options.table ?? `${config.name}-ledger`;
}

export async function openLedger(
  config: PerfpilotConfig,
  options: GlobalOptions,
  notify?: (subject: string, message: string) => void,
): Promise<LedgerAccess> {
  if (options.target === 'aws') {
    const tableName = ledgerTableName(config, options);
    const client = new DynamoDBClient({});
    const doc = documentClient(client);
    return {
      ledger: new ChangeLedger(doc, tableName),
      lock: new AreaLock(doc, tableName),
      areaState: new AreaStateStore(doc, tableName),
      where: `DynamoDB table ${tableName}`,
      close: async () => client.destroy(),
    };
  }
  const runtime = await LocalRuntime.start(config, { notify });
  return {
    ledger: runtime.ledger,
    lock: runtime.lock,
    areaState: runtime.areaState,
    where: `local ledger in ${config.ledger.localDataDir}`,
    runtime,
    close: () => runtime.close(),
  };
}
