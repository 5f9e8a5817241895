import { DescribeDBProxyTargetGroupsCommand, ModifyDBProxyTargetGroupCommand, RDSClient } from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import type { Change } from '#shared/change';
import {
  applyProxySettings,
  captureProxySettings,
  connectionPoolReportSection,
  observeConnectionPool,
  planConnectionPool,
  revertProxySettings,
  type ConnectionPoolObservation,
} from '#functions/database/connection-pool';

const PG_URL = process.env.PERFPILOT_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const rdsMock = mockClient(RDSClient);
const rds = new RDSClient({ region: 'eu-central-1' });

const configWith = (connectionPool: Record<string, unknown> = {}) =>
  parseConfig({ targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: PG_URL } }, connectionPool });

/** The proxy as RDS describes it, mutable so Modify calls are reflected like the real API. */
let proxyState = { MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50 };

const describeFake = () => ({
  TargetGroups: [{ DBProxyName: 'app-proxy', TargetGroupName: 'default', ConnectionPoolConfig: { ...proxyState, ConnectionBorrowTimeout: 120 } }],
});
const modifyFake = (input: { ConnectionPoolConfig: typeof proxyState }) => {
  proxyState = { ...proxyState, ...input.ConnectionPoolConfig };
  return { DBProxyTargetGroup: { DBProxyName: 'app-proxy', TargetGroupName: 'default', ConnectionPoolConfig: { ...proxyState } } };
};

beforeEach(() => {
  rdsMock.reset();
  proxyState = { MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50 };
  rdsMock.on(DescribeDBProxyTargetGroupsCommand).callsFake(describeFake);
  rdsMock.on(ModifyDBProxyTargetGroupCommand).callsFake(modifyFake);
});

describe('observeConnectionPool against PostgreSQL', () => {
  const held: pg.Client[] = [];
  let observer: pg.Client;
  beforeAll(async () => {
    observer = new pg.Client({ connectionString: PG_URL });
    await observer.connect();
    for (let i = 0; i < 3; i++) {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      held.push(c);
    }
  });
  afterAll(async () => {
    await Promise.all([observer, ...held].map((c) => c.end()));
  });

  it('reads max_connections and the peak of active connections while three sessions run statements, and the proxy settings', async () => {
    const running = held.map((c) => c.query('select pg_sleep(1.2)'));
    const config = configWith({ activitySamples: 4, activitySampleIntervalMs: 100, applicationConcurrencyMax: 40 });
    const observation = await observeConnectionPool(observer, { client: rds, proxyName: 'app-proxy' }, config);
    await Promise.all(running);
    const expectedMax = Number((await observer.query<{ max_connections: string }>('show max_connections')).rows[0]!.max_connections);
    expect(observation.maxConnections).toBe(expectedMax);
    // Other sessions on this shared server may add to the counts, never subtract.
    expect(observation.peakActiveConnections).toBeGreaterThanOrEqual(3);
    expect(observation.peakConnections).toBeGreaterThanOrEqual(4);
    expect(observation.samples).toBe(4);
    expect(observation.applicationConcurrencyMax).toBe(40);
    expect(observation.proxy).toEqual({ proxyName: 'app-proxy', targetGroupName: 'default', maxConnectionsPercent: 100, maxIdleConnectionsPercent: 50 });
    expect(rdsMock.commandCalls(DescribeDBProxyTargetGroupsCommand)[0]!.args[0].input).toEqual({ DBProxyName: 'app-proxy', TargetGroupName: 'default' });
  });
});

describe('planConnectionPool', () => {
  const base: ConnectionPoolObservation = {
    maxConnections: 200,
    superuserReservedConnections: 3,
    samples: 5,
    peakConnections: 60,
    peakActiveConnections: 20,
    meanActiveConnections: 8,
    peakIdleInTransactionConnections: 0,
    applicationConcurrencyMax: 0,
  };

  it('locally (no proxy) recommends a pool size from the observed peak, within the budget', () => {
    const plan = planConnectionPool(base, configWith());
    // usable 200 − 3 − 5 = 192, 70% → 134; demand 20 × 1.5 = 30
    expect(plan).toMatchObject({ connectionBudget: 134, demand: 30, recommendedPoolSize: 30 });
    expect(plan.proxyChange).toBeUndefined();
    expect(plan.reasoning.join('\n')).toContain('application concurrency unknown');
  });

  it('splits the load over the application instances and says when they cannot fit without a proxy', () => {
    expect(planConnectionPool({ ...base, applicationConcurrencyMax: 10 }, configWith()).recommendedPoolSize).toBe(3);
    const crowded = planConnectionPool({ ...base, applicationConcurrencyMax: 500 }, configWith());
    expect(crowded.recommendedPoolSize).toBe(1);
    expect(crowded.reasoning.join('\n')).toContain('put RDS Proxy in front');
  });

  it('behind a proxy at 100% proposes a set-proxy-connections change sized to the load', () => {
    const plan = planConnectionPool(
      { ...base, applicationConcurrencyMax: 100, proxy: { proxyName: 'app-proxy', targetGroupName: 'default', maxConnectionsPercent: 100, maxIdleConnectionsPercent: 50 } },
      configWith(),
    );
    // 30 needed of 200 = 15%; idle: mean 8 × 1.5 = 12 of 200 = 6%
    expect(plan.recommendedProxy).toEqual({ maxConnectionsPercent: 15, maxIdleConnectionsPercent: 6 });
    expect(plan.proxyChange).toEqual({
      kind: 'set-proxy-connections',
      target: 'rds-proxy:app-proxy/default',
      params: { proxyName: 'app-proxy', targetGroupName: 'default', maxConnectionsPercent: 15, maxIdleConnectionsPercent: 6 },
      reason: expect.stringContaining('peak 20 active connections need 30 of 200'),
      expected: { maxConnectionsPercent: 15, maxIdleConnectionsPercent: 6 },
    });
  });

  it('caps the proxy at the utilization budget and leaves a proxy within tolerance alone', () => {
    const busy = planConnectionPool(
      { ...base, peakActiveConnections: 190, meanActiveConnections: 150, applicationConcurrencyMax: 1000, proxy: { proxyName: 'p', targetGroupName: 'default', maxConnectionsPercent: 90, maxIdleConnectionsPercent: 50 } },
      configWith(),
    );
    expect(busy.recommendedProxy).toEqual({ maxConnectionsPercent: 67, maxIdleConnectionsPercent: 67 }); // floor(100 × 134 / 200)
    const settled = planConnectionPool(
      { ...base, applicationConcurrencyMax: 100, proxy: { proxyName: 'p', targetGroupName: 'default', maxConnectionsPercent: 17, maxIdleConnectionsPercent: 8 } },
      configWith(),
    );
    expect(settled.proxyChange).toBeUndefined();
    const section = connectionPoolReportSection({ ...base, proxy: { proxyName: 'p', targetGroupName: 'default', maxConnectionsPercent: 17, maxIdleConnectionsPercent: 8 } }, settled);
    expect(section.rows).toContainEqual(['proxy change', 'none (within tolerance)']);
  });
});

describe('RDS Proxy change: capture, apply, revert through the RDS API', () => {
  const proposed = {
    kind: 'set-proxy-connections',
    target: 'rds-proxy:app-proxy/default',
    params: { proxyName: 'app-proxy', targetGroupName: 'default', maxConnectionsPercent: 15, maxIdleConnectionsPercent: 6 },
    reason: 'test',
  };

  it('captures the settings, applies once (a replay does not modify again) and reverts to what it captured, idempotently', async () => {
    const before = await captureProxySettings(rds, proposed);
    expect(before).toEqual({ maxConnectionsPercent: 100, maxIdleConnectionsPercent: 50 });

    expect(await applyProxySettings(rds, proposed)).toEqual({ maxConnectionsPercent: 15, maxIdleConnectionsPercent: 6 });
    await applyProxySettings(rds, proposed);
    const modifies = rdsMock.commandCalls(ModifyDBProxyTargetGroupCommand);
    expect(modifies).toHaveLength(1);
    expect(modifies[0]!.args[0].input).toEqual({
      DBProxyName: 'app-proxy',
      TargetGroupName: 'default',
      ConnectionPoolConfig: { MaxConnectionsPercent: 15, MaxIdleConnectionsPercent: 6 },
    });

    const change = { ...proposed, rolloutId: 'r1', seq: 0, changeId: 'r1#0000', area: 'database', stage: 0, status: 'applied', before, history: [], createdAt: '', updatedAt: '' } as Change;
    await revertProxySettings(rds, change);
    await revertProxySettings(rds, change);
    const all = rdsMock.commandCalls(ModifyDBProxyTargetGroupCommand);
    expect(all).toHaveLength(2);
    expect(all[1]!.args[0].input.ConnectionPoolConfig).toEqual({ MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50 });
    expect(proxyState).toEqual({ MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50 });
  });

  it('fails typed: throttling is retryable, a rejected modify fails the change, a revert without `before` needs a person', async () => {
    rdsMock
      .on(DescribeDBProxyTargetGroupsCommand)
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $retryable: { throttling: true } }))
      .callsFake(describeFake);
    await expect(applyProxySettings(rds, proposed)).rejects.toMatchObject({ name: 'TargetUnavailableError' });
    rdsMock.on(ModifyDBProxyTargetGroupCommand).rejectsOnce(Object.assign(new Error('bad value'), { name: 'InvalidParameterValue' })).callsFake(modifyFake);
    await expect(applyProxySettings(rds, proposed)).rejects.toMatchObject({ name: 'ChangeApplyError' });
    const noBefore = { ...proposed, rolloutId: 'r1', seq: 0, changeId: 'r1#0000', area: 'database', stage: 0, status: 'applied', history: [], createdAt: '', updatedAt: '' } as Change;
    await expect(revertProxySettings(rds, noBefore)).rejects.toMatchObject({ name: 'ChangeRevertError' });
  });
});
