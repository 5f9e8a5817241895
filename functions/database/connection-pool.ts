/**
 * Connection-pool sizing. Observes max_connections and the peak of connections in
 * pg_stat_activity (and, in AWS, the RDS Proxy target group's pool settings), plans a
 * pool size per application instance and, behind an RDS Proxy, a `set-proxy-connections`
 * change of MaxConnectionsPercent / MaxIdleConnectionsPercent, applied and reverted
 * through the RDS API. Locally there is no proxy: the plan reports the pool size.
 */
import {
  DescribeDBProxyTargetGroupsCommand,
  ModifyDBProxyTargetGroupCommand,
  type ConnectionPoolConfigurationInfo,
  type RDSClient,
} from '@aws-sdk/client-rds';
import type pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import type { Change, ProposedChange } from '#shared/change';
import { ChangeApplyError, ChangeRevertError, TargetUnavailableError } from '#shared/errors';
import type { ReportSection } from '#shared/report';

export const SET_PROXY_CONNECTIONS = 'set-proxy-connections';

export interface ProxySettings {
  readonly maxConnectionsPercent: number;
  readonly maxIdleConnectionsPercent: number;
}

export interface ProxyTarget {
  readonly proxyName: string;
  readonly targetGroupName: string;
}

export interface ConnectionPoolObservation {
  readonly maxConnections: number;
  readonly superuserReservedConnections: number;
  /** pg_stat_activity samples behind the peaks. */
  readonly samples: number;
  /** Client backends, instance-wide (max_connections is instance-wide too). */
  readonly peakConnections: number;
  /** Client backends running a statement (not idle), excluding the observer. */
  readonly peakActiveConnections: number;
  readonly meanActiveConnections: number;
  readonly peakIdleInTransactionConnections: number;
  /** From the config: the application's peak concurrency (Lambda concurrency); 0 = unknown. */
  readonly applicationConcurrencyMax: number;
  readonly proxy?: ProxyTarget & ProxySettings;
}

export interface RdsProxyDeps {
  readonly client: RDSClient;
  readonly proxyName: string;
  readonly targetGroupName?: string;
}

type Queryable = Pick<pg.ClientBase, 'query'> | Pick<pg.Pool, 'query'>;

function awsError(target: string, error: unknown): Error {
  const e = error as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  const transient = e.$retryable !== undefined || (e.$metadata?.httpStatusCode ?? 0) >= 500 || /Throttl|Timeout|Unavailable/i.test(e.name ?? '');
  return transient ? new TargetUnavailableError(target, (error as Error).message, { cause: error }) : (error as Error);
}

async function describeProxy(rds: RDSClient, target: ProxyTarget): Promise<ProxySettings> {
  let out;
  try {
    out = await rds.send(new DescribeDBProxyTargetGroupsCommand({ DBProxyName: target.proxyName, TargetGroupName: target.targetGroupName }));
  } catch (error) {
    throw awsError(`rds-proxy ${target.proxyName}`, error);
  }
  const pool: ConnectionPoolConfigurationInfo | undefined = out.TargetGroups?.[0]?.ConnectionPoolConfig;
  if (pool?.MaxConnectionsPercent === undefined) throw new TargetUnavailableError(`rds-proxy ${target.proxyName}`, `target group ${target.targetGroupName} has no connection pool configuration`);
  // RDS documents the idle default as 50% of MaxConnectionsPercent when it is not set.
  return { maxConnectionsPercent: pool.MaxConnectionsPercent, maxIdleConnectionsPercent: pool.MaxIdleConnectionsPercent ?? Math.floor(pool.MaxConnectionsPercent / 2) };
}

export async function observeConnectionPool(
  client: Queryable,
  rds: RdsProxyDeps | undefined,
  config: PerfpilotConfig,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<ConnectionPoolObservation> {
  const cfg = config.connectionPool;
  const settings = await client.query<{ max_connections: string; reserved: string }>(
    `select current_setting('max_connections') as max_connections, current_setting('superuser_reserved_connections') as reserved`,
  );
  let peak = 0;
  let peakActive = 0;
  let peakIdleTx = 0;
  let activeSum = 0;
  for (let i = 0; i < cfg.activitySamples; i++) {
    if (i > 0) await sleep(cfg.activitySampleIntervalMs);
    const { rows } = await client.query<{ total: number; active: number; idle_tx: number }>(
      `select count(*)::int as total,
              count(*) filter (where state = 'active' and pid <> pg_backend_pid())::int as active,
              count(*) filter (where state like 'idle in transaction%')::int as idle_tx
         from pg_stat_activity where backend_type = 'client backend'`,
    );
    const r = rows[0]!;
    peak = Math.max(peak, r.total);
    peakActive = Math.max(peakActive, r.active);
    peakIdleTx = Math.max(peakIdleTx, r.idle_tx);
    activeSum += r.active;
  }
  const targetGroupName = rds?.targetGroupName ?? cfg.proxyTargetGroupName;
  const proxy = rds ? { proxyName: rds.proxyName, targetGroupName, ...(await describeProxy(rds.client, { proxyName: rds.proxyName, targetGroupName })) } : undefined;
  return {
    maxConnections: Number(settings.rows[0]!.max_connections),
    superuserReservedConnections: Number(settings.rows[0]!.reserved),
    samples: cfg.activitySamples,
    peakConnections: peak,
    peakActiveConnections: peakActive,
    meanActiveConnections: activeSum / cfg.activitySamples,
    peakIdleInTransactionConnections: peakIdleTx,
    applicationConcurrencyMax: cfg.applicationConcurrencyMax,
    ...(proxy ? { proxy } : {}),
  };
}

export interface ConnectionPoolPlan {
  /** Connections per application instance (per Lambda instance when the concurrency is known). */
  readonly recommendedPoolSize: number;
  /** Connections the application may use in total: what is left after reservations, at the utilization target. */
  readonly connectionBudget: number;
  /** Connections the observed load needs: peak active × headroom. */
  readonly demand: number;
  readonly recommendedProxy?: ProxySettings;
  readonly reasoning: readonly string[];
  readonly proxyChange?: ProposedChange;
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/** Pure: from what was observed and the config to a pool size and, behind a proxy, a proxy change. */
export function planConnectionPool(observation: ConnectionPoolObservation, config: PerfpilotConfig): ConnectionPoolPlan {
  const cfg = config.connectionPool;
  const o = observation;
  const reasoning: string[] = [];
  const usable = Math.max(1, o.maxConnections - o.superuserReservedConnections - cfg.reservedConnections);
  const budget = Math.max(1, Math.floor((usable * config.kpis.connectionUtilizationPercentMax) / 100));
  reasoning.push(
    `max_connections ${o.maxConnections} − ${o.superuserReservedConnections} superuser-reserved − ${cfg.reservedConnections} kept for maintenance = ${usable} usable; ` +
      `at the ${config.kpis.connectionUtilizationPercentMax}% utilization target the application may use ${budget}`,
  );
  const demand = Math.max(1, Math.ceil(o.peakActiveConnections * cfg.headroomFactor));
  reasoning.push(
    `observed peak: ${o.peakConnections} connections, ${o.peakActiveConnections} active (mean ${o.meanActiveConnections.toFixed(1)}) over ${o.samples} samples; ×${cfg.headroomFactor} headroom → ${demand} needed`,
  );
  if (o.peakIdleInTransactionConnections > 0) {
    reasoning.push(`${o.peakIdleInTransactionConnections} connections were idle in transaction: they hold a connection without using it`);
  }
  const instances = o.applicationConcurrencyMax > 0 ? o.applicationConcurrencyMax : 1;
  if (o.applicationConcurrencyMax === 0) reasoning.push('application concurrency unknown (connectionPool.applicationConcurrencyMax = 0): sized as one instance');
  const perInstanceBudget = Math.floor(budget / instances);
  const recommendedPoolSize = clamp(Math.ceil(Math.min(demand, budget) / instances), 1, Math.max(1, perInstanceBudget));
  reasoning.push(`pool size per instance: ${recommendedPoolSize} (${instances} instance${instances === 1 ? '' : 's'} sharing ${Math.min(demand, budget)})`);
  if (!o.proxy && instances > budget) {
    reasoning.push(`${instances} concurrent instances with one connection each exceed the budget of ${budget}: put RDS Proxy in front of the database`);
  }
  if (!o.proxy) return { recommendedPoolSize, connectionBudget: budget, demand, reasoning };

  // Behind the proxy the application's connections are multiplexed; the proxy opens at
  // most MaxConnectionsPercent of max_connections. It needs what the load uses, capped by
  // the budget and by the number of callers that can borrow at once.
  const needed = clamp(Math.min(demand, o.applicationConcurrencyMax > 0 ? o.applicationConcurrencyMax : demand), 1, budget);
  const maxPercentCap = Math.max(1, Math.floor((100 * budget) / o.maxConnections));
  const maxConnectionsPercent = clamp(Math.ceil((100 * needed) / o.maxConnections), 1, maxPercentCap);
  const idleNeeded = Math.ceil(o.meanActiveConnections * cfg.headroomFactor);
  const maxIdleConnectionsPercent = clamp(Math.ceil((100 * idleNeeded) / o.maxConnections), 0, maxConnectionsPercent);
  const recommendedProxy = { maxConnectionsPercent, maxIdleConnectionsPercent };
  reasoning.push(
    `RDS Proxy ${o.proxy.proxyName}: MaxConnectionsPercent ${o.proxy.maxConnectionsPercent} → ${maxConnectionsPercent} (${needed} of ${o.maxConnections}), ` +
      `MaxIdleConnectionsPercent ${o.proxy.maxIdleConnectionsPercent} → ${maxIdleConnectionsPercent} (mean active ×${cfg.headroomFactor})`,
  );
  const moved =
    Math.abs(maxConnectionsPercent - o.proxy.maxConnectionsPercent) >= cfg.proxyChangeMinPoints ||
    Math.abs(maxIdleConnectionsPercent - o.proxy.maxIdleConnectionsPercent) >= cfg.proxyChangeMinPoints;
  if (!moved) {
    reasoning.push(`the proxy is within ${cfg.proxyChangeMinPoints} points of the recommendation: no change`);
    return { recommendedPoolSize, connectionBudget: budget, demand, recommendedProxy, reasoning };
  }
  const proxyChange: ProposedChange = {
    kind: SET_PROXY_CONNECTIONS,
    target: `rds-proxy:${o.proxy.proxyName}/${o.proxy.targetGroupName}`,
    params: { proxyName: o.proxy.proxyName, targetGroupName: o.proxy.targetGroupName, ...recommendedProxy },
    reason: `peak ${o.peakActiveConnections} active connections need ${needed} of ${o.maxConnections} (budget ${budget}); the proxy allows ${o.proxy.maxConnectionsPercent}%`,
    expected: { maxConnectionsPercent, maxIdleConnectionsPercent },
  };
  return { recommendedPoolSize, connectionBudget: budget, demand, recommendedProxy, reasoning, proxyChange };
}

interface ProxyChangeParams extends ProxyTarget, ProxySettings {}

function paramsOf(change: ProposedChange): ProxyChangeParams {
  const p = change.params as Partial<ProxyChangeParams>;
  if (change.kind !== SET_PROXY_CONNECTIONS || !p.proxyName || !p.targetGroupName || p.maxConnectionsPercent === undefined || p.maxIdleConnectionsPercent === undefined) {
    throw new ChangeApplyError(`not a ${SET_PROXY_CONNECTIONS} change: ${change.kind} ${change.target}`);
  }
  return p as ProxyChangeParams;
}

const same = (a: ProxySettings, b: ProxySettings) => a.maxConnectionsPercent === b.maxConnectionsPercent && a.maxIdleConnectionsPercent === b.maxIdleConnectionsPercent;

async function modifyProxy(rds: RDSClient, target: ProxyTarget, settings: ProxySettings): Promise<ProxySettings> {
  let out;
  try {
    out = await rds.send(
      new ModifyDBProxyTargetGroupCommand({
        DBProxyName: target.proxyName,
        TargetGroupName: target.targetGroupName,
        ConnectionPoolConfig: { MaxConnectionsPercent: settings.maxConnectionsPercent, MaxIdleConnectionsPercent: settings.maxIdleConnectionsPercent },
      }),
    );
  } catch (error) {
    throw awsError(`rds-proxy ${target.proxyName}`, error);
  }
  const pool = out.DBProxyTargetGroup?.ConnectionPoolConfig;
  return {
    maxConnectionsPercent: pool?.MaxConnectionsPercent ?? settings.maxConnectionsPercent,
    maxIdleConnectionsPercent: pool?.MaxIdleConnectionsPercent ?? settings.maxIdleConnectionsPercent,
  };
}

/** The proxy's settings before the change touches them; the ledger keeps them as `before`. */
export async function captureProxySettings(rds: RDSClient, change: ProposedChange): Promise<ProxySettings> {
  return describeProxy(rds, paramsOf(change));
}

/** Idempotent: a proxy already at the target settings is not modified again. */
export async function applyProxySettings(rds: RDSClient, change: ProposedChange): Promise<ProxySettings> {
  const p = paramsOf(change);
  const current = await describeProxy(rds, p);
  if (same(current, p)) return current;
  try {
    return await modifyProxy(rds, p, p);
  } catch (error) {
    if (error instanceof TargetUnavailableError) throw error;
    throw new ChangeApplyError(`cannot set ${change.target}: ${(error as Error).message}`, { cause: error });
  }
}

/** Idempotent: restores `before`; a proxy already back at it is not modified. */
export async function revertProxySettings(rds: RDSClient, change: Change): Promise<void> {
  const p = paramsOf(change);
  const before = change.before as Partial<ProxySettings> | undefined;
  if (before?.maxConnectionsPercent === undefined || before.maxIdleConnectionsPercent === undefined) {
    throw new ChangeRevertError(`change ${change.changeId} has no captured proxy settings to restore`);
  }
  const restore = { maxConnectionsPercent: before.maxConnectionsPercent, maxIdleConnectionsPercent: before.maxIdleConnectionsPercent };
  const current = await describeProxy(rds, p);
  if (same(current, restore)) return;
  try {
    await modifyProxy(rds, p, restore);
  } catch (error) {
    if (error instanceof TargetUnavailableError) throw error;
    throw new ChangeRevertError(`cannot restore ${change.target}: ${(error as Error).message}`, { cause: error });
  }
}

export function connectionPoolReportSection(observation: ConnectionPoolObservation, plan: ConnectionPoolPlan): ReportSection {
  const o = observation;
  const rows: (readonly [string, string | number])[] = [
    ['max_connections', o.maxConnections],
    ['peak connections (observed)', o.peakConnections],
    ['peak active connections (observed)', o.peakActiveConnections],
    ['application concurrency', o.applicationConcurrencyMax || 'unknown'],
    ['connection budget', plan.connectionBudget],
    ['connections needed', plan.demand],
    ['recommended pool size per instance', plan.recommendedPoolSize],
  ];
  if (o.proxy && plan.recommendedProxy) {
    rows.push(['RDS Proxy MaxConnectionsPercent', `${o.proxy.maxConnectionsPercent} → ${plan.recommendedProxy.maxConnectionsPercent}`]);
    rows.push(['RDS Proxy MaxIdleConnectionsPercent', `${o.proxy.maxIdleConnectionsPercent} → ${plan.recommendedProxy.maxIdleConnectionsPercent}`]);
    rows.push(['proxy change', plan.proxyChange ? 'proposed' : 'none (within tolerance)']);
  }
  return { title: 'Connection pool', columns: ['measure', 'value'], rows: [...rows, ...plan.reasoning.map((r) => ['why', r] as const)] };
}
