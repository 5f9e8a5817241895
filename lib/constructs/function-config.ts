/**
 * What of the config travels to a Lambda (as the JSON env var PERFPILOT_CONFIG).
 *
 * Never a secret: in AWS, database credentials come only from the Secrets Manager
 * secret `targets.database.rds.secretArn`. When the AWS targets are set, the local
 * `redisUrl` / `connectionString` are dropped; a URL that would still carry a
 * password into the environment fails the synth.
 *
 * Lambda allows 4 KB of environment in all, so the variable carries only what
 * differs from the schema's defaults; `configFromEnv` fills the defaults back in.
 */
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, parseConfig, type PerfpilotConfig } from '#lib/config';

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    // Not parseable as a URL: do not guess, refuse it.
    return true;
  }
}

export function lambdaConfig(config: PerfpilotConfig): PerfpilotConfig {
  const { $schema: _schema, $comment: _comment, ...rest } = config;
  const { caching, database, realtime } = config.targets;
  const { redisUrl, ...cachingWithoutUrl } = caching;
  const { redisUrl: realtimeRedisUrl, ...realtimeWithoutUrl } = realtime;
  const { connectionString, ...databaseWithoutUrl } = database;
  const out: PerfpilotConfig = {
    ...rest,
    targets: {
      ...config.targets,
      caching: caching.elasticache ? cachingWithoutUrl : caching,
      database: database.rds ? databaseWithoutUrl : database,
      realtime: realtime.elasticache ? realtimeWithoutUrl : realtime,
    },
  };
  const leaks = [
    out.targets.caching.redisUrl !== undefined && redisUrl !== undefined && hasPassword(redisUrl) ? 'targets.caching.redisUrl' : undefined,
    out.targets.realtime.redisUrl !== undefined && realtimeRedisUrl !== undefined && hasPassword(realtimeRedisUrl) ? 'targets.realtime.redisUrl' : undefined,
    out.targets.database.connectionString !== undefined && connectionString !== undefined && hasPassword(connectionString)
      ? 'targets.database.connectionString'
      : undefined,
  ].filter((f): f is string => f !== undefined);
  if (leaks.length > 0) {
    throw new ConfigError(
      `refusing to put a password into the Lambda environment (${leaks.join(', ')}): ` +
        'set targets.caching.elasticache / targets.database.rds (credentials from Secrets Manager) for AWS',
      leaks,
    );
  }
  return out;
}

type Json = unknown;

/** The parts of `value` that differ from `defaults`, recursively; undefined when none. */
function overrides(value: Json, defaults: Json): Json {
  if (isDeepStrictEqual(value, defaults)) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  if (defaults === null || typeof defaults !== 'object' || Array.isArray(defaults)) return value;
  const out: Record<string, Json> = {};
  for (const [key, v] of Object.entries(value)) {
    const d = overrides(v, (defaults as Record<string, Json>)[key]);
    if (d !== undefined) out[key] = d;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** PERFPILOT_CONFIG: the Lambda's config as compact JSON of what differs from the defaults. */
export function lambdaConfigJson(config: PerfpilotConfig): string {
  const full = lambdaConfig(config);
  // The targets have no complete defaults (a cache and a database must be named), so
  // they stay whole; everything else is compared with what the schema fills in.
  const defaults = parseConfig({ targets: { caching: full.targets.caching, database: full.targets.database } });
  const minimal = { ...(overrides(full, defaults) as object), targets: { ...(overrides(full.targets, defaults.targets) as object), caching: full.targets.caching, database: full.targets.database } };
  if (!isDeepStrictEqual(parseConfig(minimal, 'PERFPILOT_CONFIG'), full)) {
    throw new ConfigError('internal: PERFPILOT_CONFIG would not parse back to the deployed config');
  }
  return JSON.stringify(minimal);
}
