/**
 * The eviction parameters the tuner may change, behind one small port:
 * locally CONFIG GET/SET on the Redis itself; in AWS the cache's parameter group
 * (ElastiCache disables CONFIG), changed only where `DescribeCacheParameters` says
 * the change is `immediate`: a `requires-reboot` parameter is refused, never applied.
 */
import {
  DescribeCacheParametersCommand,
  ModifyCacheParameterGroupCommand,
  type ElastiCacheClient,
  type Parameter,
} from '@aws-sdk/client-elasticache';
import type { Redis } from 'ioredis';
import { ChangeApplyError, TargetUnavailableError } from '#shared/errors';

export const TUNABLE_PARAMETERS = ['maxmemory-policy', 'lfu-log-factor', 'lfu-decay-time'] as const;

export interface CacheParameters {
  /** Where the values live, for messages and the ledger: `redis://…` or the parameter group. */
  readonly target: string;
  read(names: readonly string[]): Promise<Record<string, string>>;
  /** Sets the values; throws ChangeApplyError for a parameter that cannot change immediately. */
  write(values: Readonly<Record<string, string>>): Promise<void>;
}

export class RedisConfigParameters implements CacheParameters {
  constructor(
    private readonly redis: Redis,
    readonly target: string,
  ) {}

  async read(names: readonly string[]): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    try {
      for (const name of names) {
        const pair = (await this.redis.config('GET', name)) as string[];
        if (pair.length >= 2) out[pair[0]!] = pair[1]!;
      }
    } catch (cause) {
      throw new TargetUnavailableError(this.target, `CONFIG GET failed: ${(cause as Error).message}`, { cause });
    }
    return out;
  }

  async write(values: Readonly<Record<string, string>>): Promise<void> {
    for (const [name, value] of Object.entries(values)) {
      try {
        await this.redis.config('SET', name, value);
      } catch (cause) {
        throw new ChangeApplyError(`CONFIG SET ${name} ${value} on ${this.target} failed: ${(cause as Error).message}`, { cause });
      }
    }
  }
}


/**
 * Faults that say "not now" rather than "never": the group is still applying an
 * earlier change (a revert right after an apply meets this), or the API throttles.
 */
const BUSY_FAULTS = new Set(['InvalidCacheParameterGroupStateFault', 'InvalidCacheClusterStateFault', 'InvalidReplicationGroupStateFault', 'ThrottlingException', 'Throttling']);

export function isBusyFault(error: unknown): boolean {
  const e = error as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  return BUSY_FAULTS.has(e.name ?? '') || e.$retryable !== undefined || (e.$metadata?.httpStatusCode ?? 0) >= 500;
}

export interface ElastiCacheParametersOptions {
  /** How long a write waits, retrying, for a group busy with an earlier change (then TargetUnavailableError). @default 60 */
  readonly busyWaitSeconds?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export class ElastiCacheParameters implements CacheParameters {
  readonly target: string;
  private readonly busyWaitMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(
    private readonly client: ElastiCacheClient,
    private readonly parameterGroupName: string,
    options: ElastiCacheParametersOptions = {},
  ) {
    this.target = `elasticache parameter group ${parameterGroupName}`;
    this.busyWaitMs = (options.busyWaitSeconds ?? 60) * 1_000;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  private async describe(): Promise<Map<string, Parameter>> {
    const out = new Map<string, Parameter>();
    let marker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new DescribeCacheParametersCommand({ CacheParameterGroupName: this.parameterGroupName, Marker: marker, MaxRecords: 100 }),
        );
        for (const p of page.Parameters ?? []) if (p.ParameterName) out.set(p.ParameterName, p);
        marker = page.Marker;
      } while (marker);
    } catch (cause) {
      throw new TargetUnavailableError(this.target, `DescribeCacheParameters failed: ${(cause as Error).message}`, { cause });
    }
    return out;
  }

  async read(names: readonly string[]): Promise<Record<string, string>> {
    const all = await this.describe();
    const out: Record<string, string> = {};
    for (const name of names) {
      const value = all.get(name)?.ParameterValue;
      if (value !== undefined) out[name] = value;
    }
    return out;
  }

  async write(values: Readonly<Record<string, string>>): Promise<void> {
    const all = await this.describe();
    for (const name of Object.keys(values)) {
      const p = all.get(name);
      if (!p) throw new ChangeApplyError(`${this.target} has no parameter ${name}`);
      if (p.ChangeType !== 'immediate') {
        throw new ChangeApplyError(`${name} on ${this.target} has ChangeType ${p.ChangeType ?? 'unknown'}; only immediate changes are applied`);
      }
      if (p.IsModifiable === false) throw new ChangeApplyError(`${name} on ${this.target} is not modifiable`);
    }
    const command = new ModifyCacheParameterGroupCommand({
      CacheParameterGroupName: this.parameterGroupName,
      ParameterNameValues: Object.entries(values).map(([ParameterName, ParameterValue]) => ({ ParameterName, ParameterValue })),
    });
    let waitedMs = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.send(command);
        return;
      } catch (cause) {
        if (!isBusyFault(cause)) {
          throw new ChangeApplyError(`ModifyCacheParameterGroup on ${this.target} failed: ${(cause as Error).message}`, { cause });
        }
        const delayMs = Math.min(1_000 * 2 ** attempt, 15_000);
        if (waitedMs + delayMs > this.busyWaitMs) {
          // Transient: the state machine retries the step (TargetUnavailableError).
          throw new TargetUnavailableError(this.target, `still busy after ${Math.round(waitedMs / 1_000)} s: ${(cause as Error).message}`, { cause });
        }
        await this.sleep(delayMs);
        waitedMs += delayMs;
      }
    }
  }
}
