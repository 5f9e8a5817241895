import { describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, parseConfig } from '#lib/config';
import { lambdaConfig, lambdaConfigJson } from '#lib/constructs/function-config';
import { AWS_CONFIG_FILE, LOCAL_CONFIG_FILE, rawConfig } from './stack-fixtures.ts';

const aws = rawConfig(AWS_CONFIG_FILE) as { targets: { caching: object; database: { rds: object } } };

function withLocalUrls(redisUrl: string, connectionString: string) {
  return parseConfig({
    ...aws,
    targets: {
      caching: { ...aws.targets.caching, redisUrl },
      database: { ...aws.targets.database, connectionString },
    },
  });
}

describe('what of the config travels to Lambda', () => {
  it('drops the local URLs (and their passwords) when the AWS targets are set', () => {
    const config = withLocalUrls('rediss://:cache-pw@cache.internal:6380', 'postgres://app:db-pw@db.internal:5432/fleet');
    const out = lambdaConfig(config);
    expect(out.targets.caching).toEqual({ elasticache: config.targets.caching.elasticache });
    expect(out.targets.database).toEqual({ rds: config.targets.database.rds });
    const json = lambdaConfigJson(config);
    expect(json).not.toMatch(/cache-pw|db-pw|rediss?:\/\/|postgres:\/\//);
  });

  it('refuses a local URL with a password when no AWS target replaces it', () => {
    const config = parseConfig({
      targets: { caching: { redisUrl: 'redis://127.0.0.1:6379' }, database: { connectionString: 'postgres://app:pw@127.0.0.1/x' } },
    });
    expect(() => lambdaConfig(config)).toThrow(ConfigError);
    expect(() => lambdaConfig(config)).toThrow(/targets\.database\.connectionString/);
  });

  it('keeps password-less local URLs (the shipped local config deploys as it is)', () => {
    const config = parseConfig(rawConfig(LOCAL_CONFIG_FILE));
    expect(lambdaConfig(config).targets.database.connectionString).toBe('postgres://postgres@127.0.0.1:5432/perfpilot_demo');
  });

  it('parses back, through configFromEnv, to exactly the deployed config, in far less than the 4 KB Lambda allows', () => {
    for (const config of [parseConfig(rawConfig(AWS_CONFIG_FILE)), parseConfig(rawConfig(LOCAL_CONFIG_FILE))]) {
      const json = lambdaConfigJson(config);
      expect(configFromEnv({ PERFPILOT_CONFIG: json })).toEqual(lambdaConfig(config));
      expect(JSON.stringify(config).length).toBeGreaterThan(json.length);
      expect(json.length).toBeLessThan(1_500);
    }
  });

  it('carries a changed default (a threshold) and leaves the unchanged ones to the schema', () => {
    const config = parseConfig({ ...rawConfig(AWS_CONFIG_FILE), alerts: { latencyMsCritical: 750 } });
    const sent = JSON.parse(lambdaConfigJson(config)) as { alerts?: Record<string, unknown> };
    expect(sent.alerts).toEqual({ latencyMsCritical: 750 });
    expect(configFromEnv({ PERFPILOT_CONFIG: JSON.stringify(sent) }).alerts.latencyMsCritical).toBe(750);
  });
});
