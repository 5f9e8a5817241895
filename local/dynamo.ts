/**
 * The local ledger: the real DynamoDB protocol, served by dynalite and called with the
 * same AWS SDK client the Lambdas use.
 *
 * - With a data folder (the CLI), the ledger is shared: one detached ledger server per
 *   folder (local/ledger-server.ts) that every Perfpilot process on the machine talks
 *   to, so a rollout, `status` and an emergency `rollback --all` can run at once with the
 *   same conditional writes as in AWS. The first process starts it; the others find it
 *   through `server.json`. A folder deleted while in use is LocalLedgerLostError, and
 *   `verify()` tells a process that its ledger is gone.
 * - Without one (tests), dynalite runs in this process and keeps everything in memory.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, openSync, writeFileSync, closeSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { get, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { processAlive } from '#shared/area-lock';
import { documentClient } from '#shared/ledger';
import { LEDGER_TABLE } from '#shared/ledger-table';
import { IDENTITY_PATH, identityFile, readIdentity, readServerInfo, serverLog, type LedgerIdentity } from './ledger-files.ts';

const require = createRequire(import.meta.url);
type Dynalite = (options: { path?: string; createTableMs?: number }) => Server;

export interface LocalDynamo {
  readonly client: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly endpoint: string;
  /** The ledger folder, for a shared ledger. */
  readonly dataDir?: string;
  /** Throws LocalLedgerLostError if the folder this process opened is gone or replaced. */
  verify(): void;
  close(): Promise<void>;
}

export class LocalLedgerUnavailableError extends Error {
  override readonly name = 'LocalLedgerUnavailableError';
}

/** The ledger folder was deleted (or replaced) while this process used it: its history is lost. */
export class LocalLedgerLostError extends Error {
  override readonly name = 'LocalLedgerLostError';
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
  try {
    await client.send(new CreateTableCommand(ledgerTableDefinition(tableName)));
  } catch (error) {
    // Another process created it a moment ago.
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  for (let i = 0; i < 100; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new LocalLedgerUnavailableError(`local ledger table ${tableName} did not become ACTIVE`);
}

/** How long a ledger server started for a caller without a config waits unused before it exits. */
const DEFAULT_IDLE_SECONDS = 600;

/**
 * Starts dynalite in this process on a free loopback port, in memory, and makes sure the
 * ledger table exists. With `dataDir` it opens the shared ledger of that folder instead.
 */
export async function startLocalDynamo(options: { dataDir?: string; tableName?: string } = {}): Promise<LocalDynamo> {
  // A ledger on disk is shared: whoever holds it, this process goes through its server.
  if (options.dataDir) return openSharedLedger({ dataDir: options.dataDir, tableName: options.tableName, idleSeconds: DEFAULT_IDLE_SECONDS });
  const tableName = options.tableName ?? 'perfpilot-ledger';
  const dynalite = require('dynalite') as Dynalite;
  const server = dynalite({ createTableMs: 0 });
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
    throw new LocalLedgerUnavailableError(`cannot start the in-memory ledger: ${(cause as Error).message}`, { cause });
  }
  return { client, doc: documentClient(client), tableName, endpoint, verify: () => undefined, close };
}

const localClient = (endpoint: string) =>
  new DynamoDBClient({
    endpoint,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 2,
  });

/** Creates the folder and its identity on first use; two processes doing it at once agree on one. */
function ensureIdentity(dataDir: string): LedgerIdentity {
  mkdirSync(dataDir, { recursive: true });
  const existing = readIdentity(dataDir);
  if (existing) return existing;
  const identity: LedgerIdentity = { ledgerId: randomUUID(), createdAt: new Date().toISOString() };
  try {
    writeFileSync(identityFile(dataDir), JSON.stringify(identity), { flag: 'wx' });
    return identity;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  for (let i = 0; i < 50; i++) {
    const written = readIdentity(dataDir);
    if (written) return written;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
  throw new LocalLedgerUnavailableError(`${identityFile(dataDir)} exists but cannot be read`);
}

/**
 * The server answering for this ledger, if it is up and is ours. node:http rather than
 * fetch: every CLI command probes, and loading fetch (undici) cost more than the probe.
 */
function probe(port: number, ledgerId: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get({ host: '127.0.0.1', port, path: IDENTITY_PATH, timeout: 2_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          const body = JSON.parse(text) as { ledgerId?: string; intact?: boolean };
          resolve(res.statusCode === 200 && body.ledgerId === ledgerId && body.intact === true);
        } catch {
          resolve(false);
        }
      });
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

const SERVER_ENTRY = fileURLToPath(new URL('./ledger-server.mjs', import.meta.url));
/** How long a process waits for the ledger server to come up (a cold tsx start on a busy machine). */
const SERVER_START_TIMEOUT_MS = 20_000;

function spawnServer(dataDir: string, idleSeconds: number): void {
  const out = openSync(serverLog(dataDir), 'a');
  try {
    const child = spawn(process.execPath, [SERVER_ENTRY, dataDir, String(idleSeconds)], {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    });
    child.unref();
  } finally {
    closeSync(out);
  }
}

async function findOrStartServer(dataDir: string, identity: LedgerIdentity, idleSeconds: number): Promise<string> {
  const deadline = Date.now() + SERVER_START_TIMEOUT_MS;
  let spawnedAt = 0;
  while (Date.now() < deadline) {
    const info = readServerInfo(dataDir);
    if (info && info.ledgerId === identity.ledgerId && processAlive(info.pid) && (await probe(info.port, identity.ledgerId))) {
      return `http://127.0.0.1:${info.port}`;
    }
    // Several processes may start one at once: LevelDB's lock lets one serve, the rest exit.
    // A server found stopping (idle) is replaced after a while.
    if (Date.now() - spawnedAt > 5_000) {
      spawnServer(dataDir, idleSeconds);
      spawnedAt = Date.now();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new LocalLedgerUnavailableError(
    `the local ledger server for ${dataDir} did not start within ${SERVER_START_TIMEOUT_MS / 1000}s; see ${serverLog(dataDir)}`,
  );
}

export interface SharedLedgerOptions {
  readonly dataDir: string;
  readonly tableName?: string;
  /** The server exits after this long without a request; this process keeps it alive meanwhile. */
  readonly idleSeconds: number;
}

/** Opens the shared ledger in `dataDir`, starting its server if no process has. */
export async function openSharedLedger(options: SharedLedgerOptions): Promise<LocalDynamo> {
  const { dataDir } = options;
  const tableName = options.tableName ?? 'perfpilot-ledger';
  const identity = ensureIdentity(dataDir);
  const endpoint = await findOrStartServer(dataDir, identity, options.idleSeconds);
  const client = localClient(endpoint);
  const verify = () => {
    if (readIdentity(dataDir)?.ledgerId !== identity.ledgerId) {
      throw new LocalLedgerLostError(
        `the local ledger folder ${dataDir} was deleted or replaced while this process used it: the history it held is lost`,
      );
    }
  };
  try {
    await ensureTable(client, tableName);
  } catch (cause) {
    client.destroy();
    throw new LocalLedgerUnavailableError(`cannot open the local ledger in ${dataDir}: ${(cause as Error).message}`, { cause });
  }
  // The heartbeat keeps the server up for as long as this process may need it.
  const heartbeat = setInterval(
    () => void client.send(new DescribeTableCommand({ TableName: tableName })).catch(() => undefined),
    Math.max(1_000, (options.idleSeconds * 1000) / 3),
  );
  heartbeat.unref();
  return {
    client,
    doc: documentClient(client),
    tableName,
    endpoint,
    dataDir,
    verify,
    close: async () => {
      clearInterval(heartbeat);
      client.destroy();
    },
  };
}

/** Stops the ledger server of `dataDir` if one runs (tests, and anyone who wants it gone now). */
export async function stopLedgerServer(dataDir: string, timeoutMs = 10_000): Promise<boolean> {
  const info = readServerInfo(dataDir);
  if (!info || !processAlive(info.pid)) return false;
  process.kill(info.pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (processAlive(info.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return !processAlive(info.pid);
}
