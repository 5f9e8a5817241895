/**
 * Per-area state outside any one rollout: the circuit breaker's verdict, and the
 * alarm events already handled (so a redelivered event reverts nothing twice).
 */
import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Area } from './change.ts';
import { LEDGER_TABLE } from './ledger-table.ts';

const PK = LEDGER_TABLE.partitionKey;
const SK = LEDGER_TABLE.sortKey;

export interface AreaCircuit {
  readonly area: Area;
  readonly disabled: boolean;
  readonly reason?: string;
  readonly at?: string;
}

export class AreaStateStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async circuit(area: Area): Promise<AreaCircuit> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [PK]: `AREA#${area}`, [SK]: 'STATE' }, ConsistentRead: true }),
    );
    return out.Item ? { area, disabled: Boolean(out.Item.disabled), reason: out.Item.reason, at: out.Item.at } : { area, disabled: false };
  }

  async disable(area: Area, reason: string, now: Date): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { [PK]: `AREA#${area}`, [SK]: 'STATE', area, disabled: true, reason, at: now.toISOString() },
      }),
    );
  }

  async enable(area: Area): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: { [PK]: `AREA#${area}`, [SK]: 'STATE' } }));
  }

  /**
   * Claims an event id; true the first time, false for a redelivery. Claims expire
   * (DynamoDB TTL) after `ttlSeconds`, well past EventBridge's retry window.
   */
  async claimEvent(eventId: string, now: Date, ttlSeconds = 7 * 24 * 3600): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            [PK]: `EVENT#${eventId}`,
            [SK]: 'EVENT',
            at: now.toISOString(),
            [LEDGER_TABLE.ttlAttribute]: Math.floor(now.getTime() / 1000) + ttlSeconds,
          },
          ConditionExpression: `attribute_not_exists(${PK})`,
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  /** Gives a claimed event back, so its redelivery is handled rather than skipped as a duplicate (a rollback that failed). */
  async releaseEvent(eventId: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: { [PK]: `EVENT#${eventId}`, [SK]: 'EVENT' } }));
  }
}
