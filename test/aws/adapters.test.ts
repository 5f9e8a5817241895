/**
 * The AWS adapters of issue 8 against mocked control planes (the requests asserted):
 * the ElastiCache primary from DescribeReplicationGroups with AUTH from Secrets
 * Manager, busy parameter groups retried as transient, and database credentials
 * re-read after PostgreSQL refuses them (a rotation).
 */
import { DescribeReplicationGroupsCommand, ElastiCacheClient, ModifyCacheParameterGroupCommand, DescribeCacheParametersCommand } from '@aws-sdk/client-elasticache';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import type pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { resolveElastiCacheTarget } from '#functions/caching/elasticache-target';
import { ElastiCacheParameters } from '#functions/caching/parameters';
import { reauthenticating, SecretCredentials } from '#functions/database/database-client';

const elasticache = mockClient(ElastiCacheClient);
const secrets = mockClient(SecretsManagerClient);
const region = { region: 'eu-west-1' };
const AUTH = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:cache-auth-AbCdEf';
beforeEach(() => {
  elasticache.reset();
  secrets.reset();
});

const group = (over: Record<string, unknown> = {}) => ({
  ReplicationGroupId: 'shop',
  Status: 'available',
  ClusterEnabled: false,
  TransitEncryptionEnabled: true,
  AuthTokenEnabled: true,
  MemberClusters: ['shop-001', 'shop-002'],
  NodeGroups: [
    {
      NodeGroupId: '0001',
      PrimaryEndpoint: { Address: 'master.shop.abc.euw1.cache.amazonaws.com', Port: 6379 },
      NodeGroupMembers: [
        { CacheClusterId: 'shop-001', CurrentRole: 'replica' },
        { CacheClusterId: 'shop-002', CurrentRole: 'primary' },
      ],
    },
  ],
  ...over,
});

describe('the ElastiCache target', () => {
  it('connects to the primary endpoint DescribeReplicationGroups gives (after a failover: -002), with the RBAC user of the secret', async () => {
    elasticache.on(DescribeReplicationGroupsCommand).resolves({ ReplicationGroups: [group()] });
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ username: 'perfpilot', password: 's3cret' }) });
    const target = await resolveElastiCacheTarget(
      { replicationGroupId: 'shop', parameterGroupName: 'shop-params', authSecretArn: AUTH },
      { elasticache: new ElastiCacheClient(region), secrets: new SecretsManagerClient(region) },
    );
    expect(target).toEqual({ host: 'master.shop.abc.euw1.cache.amazonaws.com', port: 6379, tls: true, primaryClusterId: 'shop-002', username: 'perfpilot', password: 's3cret' });
    expect(elasticache.commandCalls(DescribeReplicationGroupsCommand)[0]!.args[0].input).toEqual({ ReplicationGroupId: 'shop' });
    expect(secrets.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toEqual({ SecretId: AUTH });
  });

  it('refuses cluster mode and a group that needs AUTH without a secret, naming what to set', async () => {
    const clients = { elasticache: new ElastiCacheClient(region), secrets: new SecretsManagerClient(region) };
    elasticache.on(DescribeReplicationGroupsCommand).resolvesOnce({ ReplicationGroups: [group({ ClusterEnabled: true })] }).resolves({ ReplicationGroups: [group()] });
    await expect(resolveElastiCacheTarget({ replicationGroupId: 'shop', parameterGroupName: 'p', authSecretArn: AUTH }, clients)).rejects.toThrow(/runs in cluster mode/);
    await expect(resolveElastiCacheTarget({ replicationGroupId: 'shop', parameterGroupName: 'p' }, clients)).rejects.toThrow(
      'elasticache replication group shop requires AUTH: set targets.caching.elasticache.authSecretArn',
    );
  });
});

describe('a parameter group busy with an earlier change', () => {
  const describeImmediate = () =>
    elasticache.on(DescribeCacheParametersCommand).resolves({ Parameters: [{ ParameterName: 'maxmemory-policy', ParameterValue: 'allkeys-lru', ChangeType: 'immediate', IsModifiable: true }] });
  const busy = () => Object.assign(new Error('Cache parameter group shop-params is not in available state'), { name: 'InvalidCacheParameterGroupStateFault', $metadata: { httpStatusCode: 400 } });

  it('is retried (a quick revert right after an apply meets it) instead of failing the change', async () => {
    describeImmediate();
    elasticache.on(ModifyCacheParameterGroupCommand).rejectsOnce(busy()).rejectsOnce(busy()).resolves({ CacheParameterGroupName: 'shop-params' });
    const slept: number[] = [];
    const params = new ElastiCacheParameters(new ElastiCacheClient(region), 'shop-params', { busyWaitSeconds: 60, sleep: async (ms) => void slept.push(ms) });
    await params.write({ 'maxmemory-policy': 'allkeys-lfu' });
    expect(elasticache.commandCalls(ModifyCacheParameterGroupCommand)).toHaveLength(3);
    expect(slept).toEqual([1_000, 2_000]);
  });

  it('past its wait becomes TargetUnavailableError (the state machine retries the step), never a permanent failure', async () => {
    describeImmediate();
    elasticache.on(ModifyCacheParameterGroupCommand).rejects(busy());
    const params = new ElastiCacheParameters(new ElastiCacheClient(region), 'shop-params', { busyWaitSeconds: 5, sleep: async () => undefined });
    await expect(params.write({ 'maxmemory-policy': 'allkeys-lfu' })).rejects.toMatchObject({ name: 'TargetUnavailableError' });
  });
});

describe('database credentials after a rotation', () => {
  it('a connection PostgreSQL refuses (28P01) re-reads the secret once and retries with the new user and password', async () => {
    secrets.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: JSON.stringify({ username: 'app_a', password: 'old' }) })
      .resolves({ SecretString: JSON.stringify({ username: 'app_b', password: 'new' }) });
    const credentials = new SecretCredentials(new SecretsManagerClient(region), 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf');
    expect((await credentials.get()).username).toBe('app_a');
    const attempts: string[] = [];
    const client = { release: () => undefined } as unknown as pg.PoolClient;
    const fakePool = {
      options: { user: 'app_a' },
      connect: async () => {
        const { password } = await credentials.get();
        attempts.push(`${fakePool.options.user}:${password}`);
        if (password === 'old') throw Object.assign(new Error('password authentication failed for user "app_a"'), { code: '28P01' });
        return client;
      },
    };
    const pool = reauthenticating(fakePool as unknown as pg.Pool, credentials);
    await expect(pool.connect()).resolves.toBe(client);
    expect(attempts).toEqual(['app_a:old', 'app_b:new']);
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  it('any other connection error is not retried and the secret is not read again', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ username: 'app', password: 'pw' }) });
    const credentials = new SecretCredentials(new SecretsManagerClient(region), 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf');
    await credentials.get();
    const fakePool = { options: {}, connect: async () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) };
    await expect(reauthenticating(fakePool as unknown as pg.Pool, credentials).connect()).rejects.toThrow('ECONNREFUSED');
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  });
});
