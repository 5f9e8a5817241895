/**
 * The local ledger: the real DynamoDB protocol, served in-process by dynalite and
 * called with the same AWS SDK client the Lambdas use. With a data folder, history
 * survives between CLI runs; without one it lives in memory (tests).
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { documentClient } from '#shared/ledger';
import { LEDGER_TABLE } from '#shared/ledger-table';

const require = createRequire(import.meta.url);
type Dynalite = (options: { path?: string; createTableMs?: number }) => Server;

export interface LocalDynamo {
  readonly client: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly endpoint: string;
  close(): Promise<void>;
}

export class LocalLedgerUnavailableError extends Error {
  override readonly name = 'LocalLedgerUnavailableError';
}

/** The ledger table as CDK creates it (keys and the gsi1 index). */
export function ledgerTableDefinition(tableName: string) {
  const { partitionKey, sortKey, gsi1 } = LEDGER_TABLE;
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST' as const,
    AttributeDefinitions: [
      { AttributeName: partitionKey, AttributeType: 'S' as const },
      { AttributeName: sortKey, AttributeType: 'S' as const },
      { AttributeName: gsi1.partitionKey, AttributeType: 'S' as const },
      { AttributeName: gsi1.sortKey, AttributeType: 'S' as const },
    ],
    KeySchema: [
      { AttributeName: partitionKey, KeyType: 'HASH' as const },
      { AttributeName: sortKey, KeyType: 'RANGE' as const },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: gsi1.indexName,
        KeySchema: [
          { AttributeName: gsi1.partitionKey, KeyType: 'HASH' as const },
          { AttributeName: gsi1.sortKey, KeyType: 'RANGE' as const },
        ],
        Projection: { ProjectionType: 'ALL' as const },
      },
    ],
  };
}

async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
  await client.send(new CreateTableCommand(ledgerTableDefinition(tableName)));
  for (let i = 0; i < 100; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new LocalLedgerUnavailableError(`local ledger table ${tableName} did not become ACTIVE`);
}

/**
 * Starts dynalite on a free loopback port and makes sure the ledger table exists.
 * `dataDir` undefined keeps everything in memory.
 */
export async function startLocalDynamo(options: { dataDir?: string; tableName?: string } = {}): Promise<LocalDynamo> {
  const tableName = options.tableName ?? 'perfpilot-ledger';
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
  const dynalite = require('dynalite') as Dynalite;
  const server = dynalite({ path: options.dataDir, createTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 2,
  });
  const close = async () => {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  try {
    await ensureTable(client, tableName);
  } catch (cause) {
    await close().catch(() => undefined);
    const detail = (cause as Error).message;
    const hint = /lock/i.test(detail)
      ? ` (is another perfpilot process using ${options.dataDir}? only one may open the local ledger at a time)`
      : '';
    throw new LocalLedgerUnavailableError(`cannot open the local ledger in ${options.dataDir ?? 'memory'}: ${detail}${hint}`, {
      cause,
    });
  }
  return { client, doc: documentClient(client), tableName, endpoint, close };
}
