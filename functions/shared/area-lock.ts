/**
 * One lock per area: a conditional put with an expiry, so two runs never race on the
 * same system and a crashed holder's lock is taken over once it expires.
 */
import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Area } from './change.ts';
import { LockHeldError } from './errors.ts';
import { LEDGER_TABLE } from './ledger-table.ts';

const key = (area: Area) => ({ [LEDGER_TABLE.partitionKey]: `LOCK#${area}`, [LEDGER_TABLE.sortKey]: 'LOCK' });

export interface LockInfo {
  readonly area: Area;
  readonly owner: string;
  readonly acquiredAt: string;
  readonly expiresAt: string;
}

export class AreaLock {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /**
   * Takes the lock for `owner`, or throws LockHeldError. Re-acquiring a lock one
   * already holds extends it (a retried Lambda must not lock itself out).
   */
  async acquire(area: Area, owner: string, ttlSeconds: number, now: Date): Promise<LockInfo> {
    const nowEpoch = Math.floor(now.getTime() / 1000);
    const expiresEpoch = nowEpoch + ttlSeconds;
    const info: LockInfo = {
      area,
      owner,
      acquiredAt: now.toISOString(),
      expiresAt: new Date(expiresEpoch * 1000).toISOString(),
    };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...key(area), ...info, expiresAtEpoch: expiresEpoch },
          ConditionExpression: 'attribute_not_exists(#pk) OR expiresAtEpoch <= :now OR #owner = :owner',
          ExpressionAttributeNames: { '#pk': LEDGER_TABLE.partitionKey, '#owner': 'owner' },
          ExpressionAttributeValues: { ':now': nowEpoch, ':owner': owner },
        }),
      );
      return info;
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      const held = await this.current(area);
      throw new LockHeldError(area, held?.owner ?? 'unknown', held?.expiresAt ?? 'unknown');
    }
  }

  /** Releases the lock if `owner` still holds it; returns whether it did. */
  async release(area: Area, owner: string): Promise<boolean> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: key(area),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner },
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  /** For the rollback path, which stops the holder's execution before it breaks the lock. */
  async forceRelease(area: Area): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: key(area) }));
  }

  async current(area: Area): Promise<LockInfo | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: key(area), ConsistentRead: true }));
    if (!out.Item) return undefined;
    const { area: a, owner, acquiredAt, expiresAt } = out.Item as LockInfo;
    return { area: a, owner, acquiredAt, expiresAt };
  }
}
