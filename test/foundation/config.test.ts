import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, loadConfig, parseConfig } from '#lib/config';

const minimal = {
  targets: {
    caching: { redisUrl: 'redis://127.0.0.1:6379/0' },
    database: { connectionString: 'postgres://postgres@127.0.0.1:5432/test' },
  },
};

function errorOf(raw: unknown): ConfigError {
  try {
    parseConfig(raw, 'test.json');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('parses the shipped local config with the seed defaults', () => {
    const config = loadConfig('perfpilot.config.json');
    expect(config.targets.caching.redisUrl).toBe('redis://127.0.0.1:6379/0');
    expect(config.kpis).toMatchObject({
      cacheHitRatePercentMin: 85,
      cacheLatencyMsMax: 50,
      messageLatencyMsMax: 500,
      throughputQpsMin: 200,
      queryResponseMsMax: 100,
      connectionUtilizationPercentMax: 70,
      vectorSearchLatencyMsMax: 85,
    });
    expect(config.alerts).toMatchObject({
      cacheHitRatePercentCritical: 70,
      latencyMsCritical: 500,
      errorRatePercentCritical: 5,
      throughputDropPercentWarning: 20,
      memoryUsagePercentWarning: 80,
      connectionUtilizationPercentWarning: 75,
    });
    expect(config.rollbackCriteria).toMatchObject({
      latencyIncreasePercentMax: 20,
      throughputDecreasePercentMax: 15,
      errorRateIncreasePointsMax: 5,
      cacheFailureRatePercentMax: 10,
      connectionFailureRatePercentMax: 5,
      consecutiveFailedRolloutsMax: 3,
      latencyIncreaseMsMin: 5,
    });
  });

  it('parses an AWS-shaped config', () => {
    const config = parseConfig({
      name: 'shop',
      targets: {
        caching: { elasticache: { replicationGroupId: 'shop-cache', parameterGroupName: 'shop-params' } },
        database: {
          rds: {
            instanceIdentifier: 'shop-db',
            host: 'shop-db.abc.eu-west-1.rds.amazonaws.com',
            database: 'shop',
            secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop-db-AbCdEf',
            proxyName: 'shop-proxy',
          },
        },
      },
      vpc: { vpcId: 'vpc-0abc', privateSubnetIds: ['subnet-0a'], securityGroupIds: ['sg-0a'], availabilityZones: ['eu-west-1a'], awsApiAccess: 'nat' },
    });
    expect(config.targets.database.rds?.port).toBe(5432);
  });

  it.each([
    ['a cache URL that is not redis', { ...minimal, targets: { ...minimal.targets, caching: { redisUrl: 'http://x' } } }, 'targets.caching.redisUrl', 'redis://'],
    ['no database target', { ...minimal, targets: { ...minimal.targets, database: {} } }, 'targets.database', 'connectionString'],
    ['a negative bake', { ...minimal, rollout: { bakeSeconds: -1 } }, 'rollout.bakeSeconds', '>=0'],
    ['a canary fraction of 0', { ...minimal, rollout: { canaryFraction: 0 } }, 'rollout.canaryFraction', '>0'],
    ['a bad schedule', { ...minimal, areas: { caching: { schedule: 'every hour' } } }, 'areas.caching.schedule', 'rate(1 hour)'],
    ['a percentage over 100', { ...minimal, kpis: { cacheHitRatePercentMin: 120 } }, 'kpis.cacheHitRatePercentMin', '<=100'],
    ['more datapoints than periods', { ...minimal, alerts: { evaluationPeriods: 2, datapointsToAlarm: 3 } }, 'alerts.datapointsToAlarm', 'must not exceed'],
    ['an unknown key', { ...minimal, rollot: {} }, '(root)', 'rollot'],
    ['a lock shorter than two bakes', { ...minimal, rollout: { bakeSeconds: 1800, lockTtlSeconds: 3600 } }, 'rollout.lockTtlSeconds', '2 × (bakeSeconds + pendingMaxSeconds)'],
    ['a VPC with no stated way to the AWS APIs', { ...minimal, vpc: { vpcId: 'vpc-0abc', privateSubnetIds: ['subnet-0a'], securityGroupIds: ['sg-0a'], availabilityZones: ['eu-west-1a'] } }, 'vpc.awsApiAccess', 'neither a NAT gateway nor endpoints'],
    ['a secret that is not an ARN', { ...minimal, targets: { ...minimal.targets, database: { rds: { instanceIdentifier: 'x', host: 'h', database: 'd', secretArn: 'password123' } } } }, 'targets.database.rds.secretArn', 'Secrets Manager'],
  ])('rejects %s, naming the field', (_what, raw, field, expected) => {
    const error = errorOf(raw);
    const issue = error.issues.find((i) => i.startsWith(`${field}:`));
    expect(issue, `issues were: ${error.issues.join(' | ')}`).toBeDefined();
    expect(issue).toContain(expected);
    expect(error.message).toContain('test.json');
  });

  it('says which file is unreadable or not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'perfpilot-config-'));
    expect(() => loadConfig(join(dir, 'missing.json'))).toThrow(/cannot read config file .*missing\.json/);
    writeFileSync(join(dir, 'broken.json'), '{ "targets": ');
    expect(() => loadConfig(join(dir, 'broken.json'))).toThrow(/broken\.json is not valid JSON/);
  });

  it('fails at cold start when PERFPILOT_CONFIG is missing or bad', () => {
    expect(() => configFromEnv({})).toThrow(/PERFPILOT_CONFIG is not set/);
    expect(() => configFromEnv({ PERFPILOT_CONFIG: '{' })).toThrow(/not valid JSON/);
    expect(configFromEnv({ PERFPILOT_CONFIG: JSON.stringify(minimal) }).name).toBe('perfpilot');
  });
});
