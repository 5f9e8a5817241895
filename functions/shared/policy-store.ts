/**
 * Versioned policies: what the application-side runtime reads (TTL policy, batching
 * parameters, active vector index version). Versions are immutable; an ACTIVE pointer
 * names the one in force, moved with compare-and-set so a policy change is a Change
 * like any other: apply publishes and activates, revert re-activates `before`.
 */
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Area } from './change.ts';
import { LedgerConflictError } from './errors.ts';
import { LEDGER_TABLE } from './ledger-table.ts';

const PK = LEDGER_TABLE.partitionKey;
const SK = LEDGER_TABLE.sortKey;
const versionSk = (v: number) => `V#${String(v).padStart(8, '0')}`;

export interface PolicyVersion<T = unknown> {
  readonly area: Area;
  readonly version: number;
  readonly document: T;
  readonly createdAt: string;
  readonly note?: string;
}

export class PolicyStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Stores a new immutable version (not yet active) and returns its number. */
  async publish<T>(area: Area, document: T, now: Date, note?: string): Promise<PolicyVersion<T>> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const latest = await this.latestVersion(area);
      const version = latest + 1;
      const item: PolicyVersion<T> = { area, version, document, createdAt: now.toISOString(), note };
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: { [PK]: `POLICY#${area}`, [SK]: versionSk(version), ...item },
            ConditionExpression: `attribute_not_exists(${PK})`,
          }),
        );
        return item;
      } catch (error) {
        if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      }
    }
    throw new LedgerConflictError(`could not publish a policy version for ${area}: too much contention`);
  }

  /**
   * Makes `version` active if the active version is still `expectedActive` (0 for
   * none). Idempotent: activating the version already active is a no-op.
   */
  async activate(area: Area, version: number, expectedActive: number, now: Date): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [PK]: `POLICY#${area}`, [SK]: 'ACTIVE' },
          UpdateExpression: 'SET version = :v, activatedAt = :t',
          ConditionExpression:
            expectedActive === 0
              ? 'attribute_not_exists(version) OR version = :zero OR version = :v'
              : 'version = :expected OR version = :v',
          ExpressionAttributeValues:
            expectedActive === 0
              ? { ':v': version, ':t': now.toISOString(), ':zero': 0 }
              : { ':v': version, ':t': now.toISOString(), ':expected': expectedActive },
        }),
      );
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      const active = await this.activeVersion(area);
      throw new LedgerConflictError(
        `policy of ${area} is at version ${active}, expected ${expectedActive} before activating ${version}`,
        { cause: error },
      );
    }
  }

  /** 0 when no policy was ever activated. */
  async activeVersion(area: Area): Promise<number> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [PK]: `POLICY#${area}`, [SK]: 'ACTIVE' }, ConsistentRead: true }),
    );
    return (out.Item?.version as number | undefined) ?? 0;
  }

  async get<T>(area: Area, version: number): Promise<PolicyVersion<T> | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [PK]: `POLICY#${area}`, [SK]: versionSk(version) }, ConsistentRead: true }),
    );
    if (!out.Item) return undefined;
    const { [PK]: _p, [SK]: _s, ...rest } = out.Item;
    return rest as PolicyVersion<T>;
  }

  async active<T>(area: Area): Promise<PolicyVersion<T> | undefined> {
    const version = await this.activeVersion(area);
    return version === 0 ? undefined : this.get<T>(area, version);
  }

  private async latestVersion(area: Area): Promise<number> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: `${PK} = :p AND begins_with(${SK}, :v)`,
        ExpressionAttributeValues: { ':p': `POLICY#${area}`, ':v': 'V#' },
        ScanIndexForward: false,
        Limit: 1,
        ConsistentRead: true,
      }),
    );
    return (out.Items?.[0]?.version as number | undefined) ?? 0;
  }
}
