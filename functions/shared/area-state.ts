/**
 * Per-area state outside any one rollout: the circuit breaker's verdict, and the
 * events already handled (so a redelivered alarm reverts nothing twice).
 *
 * Event claims follow Powertools' idempotency: claim (in progress, held for a bounded
 * time), do the work, mark done; when the work fails the claim is released, so the
 * redelivery of a failed rollback does it again instead of answering "duplicate". What
 * was already reverted is not reverted twice: each change's own status in the ledger is
 * the per-change progress.
 */
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Area } from './change.ts';
import { LEDGER_TABLE } from './ledger-table.ts';

const PK = LEDGER_TABLE.partitionKey;
const SK = LEDGER_TABLE.sortKey;
const eventKey = (eventId: string) => ({ [PK]: `EVENT#${eventId}`, [SK]: 'EVENT' });

/** Done events are remembered this long, well past EventBridge's 24 h retry window. */
const DONE_TTL_SECONDS = 7 * 24 * 3600;
/**
 * A claim in progress is honoured this long: Lambda's 15-minute limit, the longest the
 * rollback function can be working on it. A claim older than that was left by a crash.
 */
const CLAIM_HOLD_SECONDS = 15 * 60;

export interface AreaCircuit {
  readonly area: Area;
  readonly disabled: boolean;
  readonly reason?: string;
  readonly at?: string;
}

/** `claimed`: do the work; `done`: it was done before (a redelivery); `in-progress`: another delivery is on it now. */
export type EventClaim = 'claimed' | 'done' | 'in-progress';

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

  /** Claims an event for the work it triggers (see the file comment). */
  async claimEvent(eventId: string, now: Date): Promise<EventClaim> {
    const nowEpoch = Math.floor(now.getTime() / 1000);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...eventKey(eventId),
            state: 'in-progress',
            at: now.toISOString(),
            heldUntilEpoch: nowEpoch + CLAIM_HOLD_SECONDS,
            [LEDGER_TABLE.ttlAttribute]: nowEpoch + DONE_TTL_SECONDS,
          },
          ConditionExpression: `attribute_not_exists(${PK}) OR (#state = :held AND heldUntilEpoch <= :now)`,
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':held': 'in-progress', ':now': nowEpoch },
        }),
      );
      return 'claimed';
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    }
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: eventKey(eventId), ConsistentRead: true }));
    // Claims written before claims could be released have no state: they were done.
    return out.Item?.state === 'in-progress' ? 'in-progress' : 'done';
  }

  /** The event's work is complete: later deliveries are duplicates. */
  async completeEvent(eventId: string, now: Date): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: eventKey(eventId),
        UpdateExpression: 'SET #state = :done, doneAt = :at REMOVE heldUntilEpoch',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':done': 'done', ':at': now.toISOString() },
      }),
    );
  }

  /** The work failed: forget the claim, so a redelivery does it again. */
  async releaseEvent(eventId: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: eventKey(eventId),
          ConditionExpression: '#state = :held',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':held': 'in-progress' },
        }),
      );
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    }
  }
}
