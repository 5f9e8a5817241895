import { DescribeDBProxyTargetGroupsCommand, ModifyDBProxyTargetGroupCommand, RDSClient } from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '#lib/config';
import type { Change } from '#shared/change';
import { databasePlugin } from '#functions/database/plugin';

const rdsMock = mockClient(RDSClient);
// The plugin's RDS Proxy path never touches PostgreSQL; the pool is real but unused.
const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres', max: 1 });
const config = parseConfig({
  targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://postgres@127.0.0.1/x' } },
});
const change = (before?: unknown) =>
  ({
    kind: 'set-proxy-connections',
    target: 'rds-proxy app-proxy/default',
    changeId: 'r#0000',
    rolloutId: 'r',
    params: { proxyName: 'app-proxy', targetGroupName: 'default', maxConnectionsPercent: 60, maxIdleConnectionsPercent: 20 },
    before,
  }) as unknown as Change;
const describeReturns = (max: number, idle: number) =>
  rdsMock.on(DescribeDBProxyTargetGroupsCommand).resolves({
    TargetGroups: [{ TargetGroupName: 'default', ConnectionPoolConfig: { MaxConnectionsPercent: max, MaxIdleConnectionsPercent: idle } }],
  });

beforeEach(() => {
  rdsMock.reset();
});

afterAll(async () => {
  await pool.end();
});

describe('database plugin: set-proxy-connections dispatch', () => {
  it('captures, applies and reverts through the RDS API with the documented request fields', async () => {
    const plugin = databasePlugin({ pool, config, rds: new RDSClient({ region: 'eu-west-1' }) });
    describeReturns(100, 50);
    rdsMock.on(ModifyDBProxyTargetGroupCommand).resolves({ DBProxyTargetGroup: { ConnectionPoolConfig: { MaxConnectionsPercent: 60, MaxIdleConnectionsPercent: 20 } } });

    const before = await plugin.capture(change());
    expect(before).toEqual({ maxConnectionsPercent: 100, maxIdleConnectionsPercent: 50 });
    expect(rdsMock.commandCalls(DescribeDBProxyTargetGroupsCommand)[0]!.args[0].input).toEqual({ DBProxyName: 'app-proxy', TargetGroupName: 'default' });

    await plugin.apply(change(before));
    expect(rdsMock.commandCalls(ModifyDBProxyTargetGroupCommand).map((c) => c.args[0].input)).toEqual([
      { DBProxyName: 'app-proxy', TargetGroupName: 'default', ConnectionPoolConfig: { MaxConnectionsPercent: 60, MaxIdleConnectionsPercent: 20 } },
    ]);

    rdsMock.reset();
    describeReturns(60, 20);
    rdsMock.on(ModifyDBProxyTargetGroupCommand).resolves({});
    await plugin.revert(change(before));
    expect(rdsMock.commandCalls(ModifyDBProxyTargetGroupCommand).map((c) => c.args[0].input)).toEqual([
      { DBProxyName: 'app-proxy', TargetGroupName: 'default', ConnectionPoolConfig: { MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50 } },
    ]);
  });

  it('refuses a proxy change without the RDS API (local target) and an unknown kind', async () => {
    const plugin = databasePlugin({ pool, config });
    await expect(plugin.apply(change())).rejects.toMatchObject({ name: 'InvalidRequestError', message: expect.stringContaining('aws target') });
    await expect(plugin.apply({ ...change(), kind: 'set-ttl' } as Change)).rejects.toMatchObject({ name: 'InvalidRequestError' });
    expect(rdsMock.calls()).toHaveLength(0);
  });
});
