/**
 * The ledger: rollouts, changes and their status history, in DynamoDB.
 *
 * Every status move is a conditional write. A retried call that finds the change
 * already where it wanted it to be returns it unchanged; a call that finds it
 * somewhere else has lost a race and gets a LedgerConflictError. The rollback path
 * reads only this table, so it works while the tuned system is sick.
 */
import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  CHANGE_TRANSITIONS,
  changeIdOf,
  type Area,
  type Change,
  type ChangeEffect,
  type ChangeStatus,
  type GuardrailVerdictRecord,
  type ProposedChange,
  type Rollout,
  type RolloutStatus,
} from './change.ts';
import { LedgerConflictError } from './errors.ts';
import { LEDGER_TABLE } from './ledger-table.ts';

const { partitionKey: PK, sortKey: SK } = LEDGER_TABLE;
const GSI = LEDGER_TABLE.gsi1;

export function documentClient(client: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true },
  });
}

const rolloutKey = (rolloutId: string) => ({ [PK]: `ROLLOUT#${rolloutId}`, [SK]: 'META' });
const changeKey = (rolloutId: string, seq: number) => ({
  [PK]: `ROLLOUT#${rolloutId}`,
  [SK]: `CHANGE#${String(seq).padStart(4, '0')}`,
});

function isConditionFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException || (error as Error)?.name === 'ConditionalCheckFailedException';
}

type Item = Record<string, unknown>;

function toRollout(item: Item): Rollout {
  const verdicts = (item.verdicts ?? {}) as Record<string, GuardrailVerdictRecord>;
  return {
    rolloutId: item.rolloutId as string,
    area: item.area as Area,
    status: item.status as RolloutStatus,
    startedAt: item.startedAt as string,
    endedAt: item.endedAt as string | undefined,
    reason: item.reason as string | undefined,
    stageCount: (item.stageCount as number | undefined) ?? 0,
    verdicts: Object.values(verdicts).sort((a, b) => a.stage - b.stage),
    trigger: item.trigger as string,
    executionArn: item.executionArn as string | undefined,
    ...(item.holder ? { holder: item.holder as Rollout['holder'] } : {}),
    ...(item.stopRequestedAt ? { stopRequestedAt: item.stopRequestedAt as string, stopReason: item.stopReason as string } : {}),
    ...(item.stopAcknowledgedAt ? { stopAcknowledgedAt: item.stopAcknowledgedAt as string } : {}),
  };
}

function toChange(item: Item): Change {
  const { [PK]: _pk, [SK]: _sk, [GSI.partitionKey]: _g1, [GSI.sortKey]: _g2, ...rest } = item;
  return rest as unknown as Change;
}

export interface StartRolloutInput {
  readonly rolloutId: string;
  readonly area: Area;
  readonly trigger: string;
  readonly now: Date;
  readonly executionArn?: string;
  readonly holder?: { readonly pid: number; readonly host: string };
}

export interface TransitionOptions {
  readonly now: Date;
  readonly note?: string;
  readonly before?: unknown;
  readonly after?: unknown;
}

/** Statuses a change may be in for a move to `to` to be legal. */
function sourcesOf(to: ChangeStatus): ChangeStatus[] {
  return (Object.keys(CHANGE_TRANSITIONS) as ChangeStatus[]).filter((from) => CHANGE_TRANSITIONS[from].includes(to));
}

export class ChangeLedger {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** Creates the rollout record; a retry with the same id returns the existing one. */
  async startRollout(input: StartRolloutInput): Promise<Rollout> {
    const startedAt = input.now.toISOString();
    const item: Item = {
      ...rolloutKey(input.rolloutId),
      [GSI.partitionKey]: `AREA#${input.area}`,
      [GSI.sortKey]: `R#${startedAt}#${input.rolloutId}`,
      rolloutId: input.rolloutId,
      area: input.area,
      status: 'running',
      startedAt,
      stageCount: 0,
      verdicts: {},
      trigger: input.trigger,
      executionArn: input.executionArn,
      holder: input.holder,
    };
    try {
      await this.doc.send(
        new PutCommand({ TableName: this.tableName, Item: item, ConditionExpression: `attribute_not_exists(${PK})` }),
      );
      return toRollout(item);
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const existing = await this.getRollout(input.rolloutId);
      if (!existing || existing.area !== input.area) {
        throw new LedgerConflictError(`rollout ${input.rolloutId} exists for another area`);
      }
      return existing;
    }
  }

  async getRollout(rolloutId: string): Promise<Rollout | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: rolloutKey(rolloutId), ConsistentRead: true }));
    return out.Item ? toRollout(out.Item) : undefined;
  }

  async setStageCount(rolloutId: string, stageCount: number): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: rolloutKey(rolloutId),
        UpdateExpression: 'SET stageCount = :n',
        ConditionExpression: `attribute_exists(${PK})`,
        ExpressionAttributeValues: { ':n': stageCount },
      }),
    );
  }

  /** Records a stage's guardrail verdict (one per stage; a retry overwrites with the same content). */
  async recordVerdict(rolloutId: string, verdict: GuardrailVerdictRecord): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: rolloutKey(rolloutId),
        UpdateExpression: 'SET verdicts.#s = :v',
        ConditionExpression: `attribute_exists(${PK})`,
        ExpressionAttributeNames: { '#s': `s${verdict.stage}` },
        ExpressionAttributeValues: { ':v': verdict },
      }),
    );
  }

  /**
   * Ends a running rollout. Idempotent: ending it again with the same status is a
   * no-op; ending an already-ended rollout with another status keeps the first.
   */
  async endRollout(rolloutId: string, status: Exclude<RolloutStatus, 'running'>, reason: string, now: Date): Promise<Rollout> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: rolloutKey(rolloutId),
          UpdateExpression: 'SET #st = :s, endedAt = :t, reason = :r',
          ConditionExpression: '#st = :running',
          ExpressionAttributeNames: { '#st': 'status' },
          ExpressionAttributeValues: { ':s': status, ':t': now.toISOString(), ':r': reason, ':running': 'running' },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toRollout(out.Attributes as Item);
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const existing = await this.getRollout(rolloutId);
      if (!existing) throw new LedgerConflictError(`rollout ${rolloutId} does not exist`);
      return existing;
    }
  }

  /**
   * Asks a running rollout to stop (a rollback takes over its area): its runner stops
   * and acknowledges, and its steps refuse to do more. Returns false if it is not running.
   */
  async requestStop(rolloutId: string, reason: string, now: Date): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: rolloutKey(rolloutId),
          UpdateExpression: 'SET stopRequestedAt = if_not_exists(stopRequestedAt, :t), stopReason = if_not_exists(stopReason, :r)',
          ConditionExpression: '#st = :running',
          ExpressionAttributeNames: { '#st': 'status' },
          ExpressionAttributeValues: { ':t': now.toISOString(), ':r': reason, ':running': 'running' },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** The runner of a rollout says it stopped: nothing of it runs any more. */
  async acknowledgeStop(rolloutId: string, now: Date): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: rolloutKey(rolloutId),
        UpdateExpression: 'SET stopAcknowledgedAt = :t',
        ConditionExpression: `attribute_exists(${PK})`,
        ExpressionAttributeValues: { ':t': now.toISOString() },
      }),
    );
  }

  /** Newest first. */
  async listRollouts(area: Area, limit = 20): Promise<Rollout[]> {
    const items = await this.queryGsi(`AREA#${area}`, undefined, limit);
    return items.map(toRollout);
  }

  /** Running rollouts of an area (newest first, among the last `scan` rollouts). */
  async runningRollouts(area: Area, scan = 50): Promise<Rollout[]> {
    return (await this.listRollouts(area, scan)).filter((r) => r.status === 'running');
  }

  /**
   * Adds the planned changes of a rollout. Idempotent: a retried Plan that proposes
   * the same list finds the changes already there and returns them as stored.
   */
  async addChanges(
    rolloutId: string,
    area: Area,
    proposals: readonly (ProposedChange & { stage: number })[],
    now: Date,
  ): Promise<Change[]> {
    const createdAt = now.toISOString();
    const stored: Change[] = [];
    for (const [seq, p] of proposals.entries()) {
      const changeId = changeIdOf(rolloutId, seq);
      const change: Change = {
        kind: p.kind,
        target: p.target,
        params: p.params,
        reason: p.reason,
        expected: p.expected,
        stage: p.stage,
        rolloutId,
        seq,
        changeId,
        area,
        status: 'planned',
        history: [{ status: 'planned', at: createdAt }],
        createdAt,
        updatedAt: createdAt,
      };
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: {
              ...changeKey(rolloutId, seq),
              [GSI.partitionKey]: `CHANGES#${area}`,
              [GSI.sortKey]: `${createdAt}#${changeId}`,
              ...change,
            },
            ConditionExpression: `attribute_not_exists(${PK})`,
          }),
        );
        stored.push(change);
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        const existing = await this.getChange(rolloutId, seq);
        if (!existing) throw error;
        stored.push(existing);
      }
    }
    return stored;
  }

  async getChange(rolloutId: string, seq: number): Promise<Change | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: changeKey(rolloutId, seq), ConsistentRead: true }),
    );
    return out.Item ? toChange(out.Item) : undefined;
  }

  async listChanges(rolloutId: string): Promise<Change[]> {
    const items: Item[] = [];
    let ExclusiveStartKey: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: `${PK} = :pk AND begins_with(${SK}, :c)`,
          ExpressionAttributeValues: { ':pk': `ROLLOUT#${rolloutId}`, ':c': 'CHANGE#' },
          ConsistentRead: true,
          ExclusiveStartKey,
        }),
      );
      items.push(...((out.Items ?? []) as Item[]));
      ExclusiveStartKey = out.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return items.map(toChange);
  }

  /** Changes of an area created at or after `since`, newest first. */
  async recentChanges(area: Area, since: Date, limit = 500): Promise<Change[]> {
    const items = await this.queryGsi(`CHANGES#${area}`, since.toISOString(), limit);
    return items.map(toChange);
  }

  /**
   * Moves a change to `to` if its current status allows it. Returns the change as
   * stored. If it is already in `to` (a retry), returns it unchanged.
   */
  async transition(change: Pick<Change, 'rolloutId' | 'seq'>, to: ChangeStatus, options: TransitionOptions): Promise<Change> {
    const at = options.now.toISOString();
    const entry = options.note ? { status: to, at, note: options.note } : { status: to, at };
    const sources = sourcesOf(to);
    const names: Record<string, string> = { '#st': 'status' };
    const values: Record<string, unknown> = { ':to': to, ':at': at, ':h': [entry] };
    sources.forEach((s, i) => (values[`:f${i}`] = s));
    const sets = ['#st = :to', 'updatedAt = :at', 'history = list_append(history, :h)'];
    if (options.before !== undefined) {
      sets.push('#before = :before');
      names['#before'] = 'before';
      values[':before'] = options.before;
    }
    if (options.after !== undefined) {
      sets.push('#after = :after');
      names['#after'] = 'after';
      values[':after'] = options.after;
    }
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: changeKey(change.rolloutId, change.seq),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: `attribute_exists(${PK}) AND #st IN (${sources.map((_, i) => `:f${i}`).join(', ')})`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toChange(out.Attributes as Item);
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const current = await this.getChange(change.rolloutId, change.seq);
      if (current?.status === to) return current;
      throw new LedgerConflictError(
        `change ${changeIdOf(change.rolloutId, change.seq)} is ${current?.status ?? 'missing'}, cannot move to ${to}`,
        { cause: error },
      );
    }
  }

  async recordEffect(change: Pick<Change, 'rolloutId' | 'seq'>, effect: ChangeEffect, now: Date): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: changeKey(change.rolloutId, change.seq),
        UpdateExpression: 'SET effect = :e, updatedAt = :at',
        ConditionExpression: `attribute_exists(${PK})`,
        ExpressionAttributeValues: { ':e': effect, ':at': now.toISOString() },
      }),
    );
  }

  private async queryGsi(partition: string, sinceSortKey: string | undefined, limit: number): Promise<Item[]> {
    const input: QueryCommandInput = {
      TableName: this.tableName,
      IndexName: GSI.indexName,
      KeyConditionExpression: sinceSortKey ? '#p = :p AND #s >= :since' : '#p = :p',
      ExpressionAttributeNames: sinceSortKey
        ? { '#p': GSI.partitionKey, '#s': GSI.sortKey }
        : { '#p': GSI.partitionKey },
      ExpressionAttributeValues: sinceSortKey ? { ':p': partition, ':since': sinceSortKey } : { ':p': partition },
      ScanIndexForward: false,
      Limit: limit,
    };
    const out = await this.doc.send(new QueryCommand(input));
    return (out.Items ?? []) as Item[];
  }
}
