/**
 * One lock per area: a conditional put with an expiry, so two runs never race on the
 * same system and a crashed holder's lock is taken over once it expires.
 *
 * Locally the lock also names the holding process (pid and host): a process on the same
 * host that finds the holder gone (kill -9, a closed laptop lid that ended it) takes the
 * lock over at once, so what the crashed run left (a half-applied change, an INVALID
 * index) is cleaned by the next run, not an hour later. In AWS there is no process to
 * ask, and the expiry alone frees a crashed holder's lock.
 */
import { hostname } from 'node:os';
import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Area } from './change.ts';
import { LockHeldError } from './errors.ts';
import { LEDGER_TABLE } from './ledger-table.ts';

const key = (area: Area) => ({ [LEDGER_TABLE.partitionKey]: `LOCK#${area}`, [LEDGER_TABLE.sortKey]: 'LOCK' });

export interface LockHolderProcess {
  readonly pid: number;
  readonly host: string;
}

export interface LockInfo {
  readonly area: Area;
  readonly owner: string;
  readonly acquiredAt: string;
  readonly expiresAt: string;
  /** The holding process, for locks taken locally. */
  readonly pid?: number;
  readonly host?: string;
  /** The owner whose lock this one took over because its process was gone. */
  readonly tookOverFrom?: string;
}

export interface AreaLockOptions {
  /** The process taking locks (local runtime); absent in Lambda. */
  readonly process?: LockHolderProcess;
  /** Whether a process of this host is still running; default: signal 0. */
  readonly isAlive?: (pid: number) => boolean;
}

/** The current process, as a lock holder on this host. */
export function thisProcess(): LockHolderProcess {
  return { pid: process.pid, host: hostname() };
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class AreaLock {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly options: AreaLockOptions = {},
  ) {}

  /** The process this lock is taken for, when local. */
  get holderProcess(): LockHolderProcess | undefined {
    return this.options.process;
  }

  /** The holder of `lock` is a process of this host that is no longer running. */
  holderGone(lock: Pick<LockInfo, 'pid' | 'host'>): boolean {
    const self = this.options.process;
    if (!self || lock.pid === undefined || lock.host !== self.host || lock.pid === self.pid) return false;
    return !(this.options.isAlive ?? processAlive)(lock.pid);
  }

  /**
   * Takes the lock for `owner`, or throws LockHeldError. Re-acquiring a lock one
   * already holds extends it (a retried Lambda must not lock itself out); a lock whose
   * holding process is gone is taken over.
   */
  async acquire(area: Area, owner: string, ttlSeconds: number, now: Date): Promise<LockInfo> {
    const nowEpoch = Math.floor(now.getTime() / 1000);
    const expiresEpoch = nowEpoch + ttlSeconds;
    const info: LockInfo = {
      area,
      owner,
      acquiredAt: now.toISOString(),
      expiresAt: new Date(expiresEpoch * 1000).toISOString(),
      ...(this.options.process ?? {}),
    };
    const put = (condition: string, values: Record<string, unknown>) =>
      this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...key(area), ...info, expiresAtEpoch: expiresEpoch },
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#pk': LEDGER_TABLE.partitionKey, '#owner': 'owner' },
          ExpressionAttributeValues: values,
        }),
      );
    try {
      await put('attribute_not_exists(#pk) OR expiresAtEpoch <= :now OR #owner = :owner', { ':now': nowEpoch, ':owner': owner });
      return info;
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    }
    const held = await this.current(area);
    if (held && this.holderGone(held)) {
      try {
        // Only if that same dead holder still has it: two processes finding it gone at once take it once.
        await put('attribute_not_exists(#pk) OR #owner = :dead', { ':dead': held.owner });
        return { ...info, tookOverFrom: held.owner };
      } catch (error) {
        if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
      }
      const now2 = await this.current(area);
      throw new LockHeldError(area, now2?.owner ?? 'unknown', now2?.acquiredAt ?? 'unknown', now2?.expiresAt ?? 'unknown');
    }
    throw new LockHeldError(area, held?.owner ?? 'unknown', held?.acquiredAt ?? 'unknown', held?.expiresAt ?? 'unknown');
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
    const { area: a, owner, acquiredAt, expiresAt, pid, host } = out.Item as LockInfo;
    return { area: a, owner, acquiredAt, expiresAt, ...(typeof pid === 'number' ? { pid } : {}), ...(typeof host === 'string' ? { host } : {}) };
  }
}
