/**
 * `perfpilot config check`: validates the config (errors name the field) and, for
 * local targets, checks that the services answer and have what Perfpilot needs.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { paint, table } from './format.ts';

export interface ProbeResult {
  readonly target: string;
  readonly ok: boolean;
  readonly detail: string;
}

export async function probeRedis(url: string): Promise<ProbeResult> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    return { target: `cache ${url}`, ok: true, detail: `Redis ${version} answers` };
  } catch (error) {
    return { target: `cache ${url}`, ok: false, detail: `unreachable: ${(error as Error).message} (run \`npm run services\`)` };
  } finally {
    redis.disconnect();
  }
}

const preloadOf = (r: { rows: { setting: string }[] }) => r.rows[0]?.setting ?? '';
const preloadHas = (preload: string, lib: string) => preload.split(',').map((x) => x.trim()).includes(lib);

export async function probePostgres(url: string): Promise<ProbeResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  const where = `database ${url.replace(/\/\/[^@]*@/, '//')}`;
  try {
    await client.connect();
    const { rows } = await client.query<{ name: string; installed: string | null }>(
      `select n.name, e.extversion as installed
         from unnest(array['pg_stat_statements','postgis','hypopg']) as n(name)
         left join pg_extension e on e.extname = n.name`,
    );
    const preload = (await client.query<{ setting: string }>(`select setting from pg_settings where name = 'shared_preload_libraries'`)).rows[0]?.setting ?? '';
    const missing = rows.filter((r) => !r.installed).map((r) => r.name);
    // pg_qualstats is optional (RDS has no such extension): without it the index advisor plans generically.
    const qualstats = (
      await client.query<{ version: string | null; rate: string | null }>(
        `select (select extversion from pg_extension where extname = 'pg_qualstats') as version,
                (select setting from pg_settings where name = 'pg_qualstats.sample_rate') as rate`,
      )
    ).rows[0];
    const qualstatsDetail =
      qualstats?.version && preloadHas(preloadOf(await client.query<{ setting: string }>(`select setting from pg_settings where name = 'shared_preload_libraries'`)), 'pg_qualstats')
        ? `pg_qualstats ${qualstats.version} (sample rate ${qualstats.rate === '-1' ? '1/max_connections' : qualstats.rate})`
        : 'pg_qualstats not loaded (optional: without it the index advisor costs statements with generic plans)';
    const problems = [
      ...(missing.length ? [`extensions not created: ${missing.join(', ')}`] : []),
      ...(preload.includes('pg_stat_statements') ? [] : ['pg_stat_statements is not in shared_preload_libraries']),
    ];
    return problems.length
      ? { target: where, ok: false, detail: `${problems.join('; ')} (run \`npm run services\`)` }
      : { target: where, ok: true, detail: `PostgreSQL answers; ${rows.map((r) => `${r.name} ${r.installed}`).join(', ')}; ${qualstatsDetail}` };
  } catch (error) {
    return { target: where, ok: false, detail: `unreachable: ${(error as Error).message} (run \`npm run services\`)` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function probeTargets(config: PerfpilotConfig): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  if (config.targets.caching.redisUrl) results.push(await probeRedis(config.targets.caching.redisUrl));
  if (config.targets.database.connectionString) results.push(await probePostgres(config.targets.database.connectionString));
  return results;
}

export function renderConfigSummary(config: PerfpilotConfig, source: string): string {
  const t = config.targets;
  const lines = [
    paint.green(`✓ ${source} is valid`),
    '',
    table(
      ['AREA', 'TARGET', 'SCHEDULE'],
      [
        ['caching', t.caching.elasticache ? `ElastiCache ${t.caching.elasticache.replicationGroupId}` : t.caching.redisUrl ?? '-', `${config.areas.caching.enabled ? '' : '(disabled) '}${config.areas.caching.schedule}`],
        ['database', t.database.rds ? `RDS ${t.database.rds.instanceIdentifier}` : (t.database.connectionString ?? '-').replace(/\/\/[^@]*@/, '//'), `${config.areas.database.enabled ? '' : '(disabled) '}${config.areas.database.schedule}`],
        ['realtime', t.realtime.apiGateway ? `API ${t.realtime.apiGateway.apiId}/${t.realtime.apiGateway.stage}` : 'local gateway', `${config.areas.realtime.enabled ? '' : '(disabled) '}${config.areas.realtime.schedule}`],
        ['vector', t.vector.s3Bucket ? `s3://${t.vector.s3Bucket}` : t.vector.snapshotDir, `${config.areas.vector.enabled ? '' : '(disabled) '}${config.areas.vector.schedule}`],
      ],
    ),
    '',
    `rollout: canary ${Math.round(config.rollout.canaryFraction * 100)}% of changes, bake ${config.rollout.bakeSeconds}s per stage, lock TTL ${config.rollout.lockTtlSeconds}s, rollback look-back ${config.rollout.rollbackLookbackMinutes} min`,
    `rollback criteria: latency +${config.rollbackCriteria.latencyIncreasePercentMax}%, throughput −${config.rollbackCriteria.throughputDecreasePercentMax}%, error rate +${config.rollbackCriteria.errorRateIncreasePointsMax} points, cache failures >${config.rollbackCriteria.cacheFailureRatePercentMax}%, connection failures >${config.rollbackCriteria.connectionFailureRatePercentMax}%, circuit opens after >${config.rollbackCriteria.consecutiveFailedRolloutsMax} failed rollouts in a row`,
    `alarms: ${alarmDefinitions(config).length} (${alarmDefinitions(config).filter((d) => d.severity === 'critical').length} critical trigger rollback)`,
    `budgets: at most ${config.budgets.maxIndexes} new indexes, ${(config.budgets.maxIndexBytes / 1024 ** 2).toFixed(0)} MiB of index`,
  ];
  return lines.join('\n');
}
