/**
 * The database area's registration (listed in `functions/areas.ts`): its alarms, the
 * AWS calls its function makes on the tuned system and the environment they need.
 * Pure data: Lambda code reads it too. The plugin is `./plugin.ts` (`createPlugin`),
 * the analysis `./analyze.ts`.
 */
import type { PerfpilotConfig } from '#lib/config';
import { alarmTiming, appNamespace, applicationAlarms, type AlarmDefinition } from '#shared/alarms';
import { arnTemplate, type AwsAccess } from '#shared/aws-access';
import { databaseSecretAccess } from './access.ts';
import type { AreaRegistration } from '#shared/area';
import type { AreaWidget } from '#shared/dashboard';

function databaseAlarms(config: PerfpilotConfig): AlarmDefinition[] {
  const a = config.alerts;
  const rds = config.targets.database.rds;
  return [
    ...applicationAlarms('database', config),
    {
      id: 'db-connection-utilization',
      area: 'database',
      severity: 'warning',
      signal: 'connectionUtilizationPercent',
      comparison: 'GreaterThanThreshold',
      threshold: a.connectionUtilizationPercentWarning,
      ...alarmTiming(config),
      description: `database connections above ${a.connectionUtilizationPercentWarning}% of max_connections`,
      cloudwatch: rds
        ? {
            kind: 'math',
            expression: `100 * m1 / ${rds.maxConnections}`,
            namespace: 'AWS/RDS',
            metricName: 'DatabaseConnections',
            statistic: 'Maximum',
            dimensions: { DBInstanceIdentifier: rds.instanceIdentifier },
          }
        : {
            kind: 'metric',
            namespace: appNamespace(config),
            metricName: 'ConnectionUtilization',
            statistic: 'Maximum',
            dimensions: { Area: 'database' },
          },
    },
  ];
}

function databaseAccess(config: PerfpilotConfig): AwsAccess[] {
  const rds = config.targets.database.rds;
  if (!rds) return [];
  // Declared beside the adapters: the credentials secret (database-client.ts), the proxy below (connection-pool.ts).
  const access: AwsAccess[] = [...databaseSecretAccess(rds.secretArn)];
  if (rds.proxyName) {
    access.push({
      actions: ['rds:DescribeDBProxies', 'rds:DescribeDBProxyTargetGroups', 'rds:ModifyDBProxyTargetGroup'],
      resources: [arnTemplate('rds', 'db-proxy:*'), arnTemplate('rds', 'target-group:*')],
      wildcardReason: `RDS Proxy ARNs use generated resource ids (prx-...), not the proxy name "${rds.proxyName}" the config gives; scoped to this account and region, and the handler names the proxy in every call.`,
    });
  }
  return access;
}

/** What RDS publishes about the instance, beside the alarms on the dashboard. */
function databaseWidgets(config: PerfpilotConfig): AreaWidget[] {
  const rds = config.targets.database.rds;
  if (!rds) return [];
  const dimensions = { DBInstanceIdentifier: rds.instanceIdentifier };
  const metric = (metricName: string, statistic: string) => ({ kind: 'metric' as const, namespace: 'AWS/RDS', metricName, statistic, dimensions });
  return [
    { id: 'db-load', title: 'DB load (average active sessions)', metric: metric('DBLoad', 'Average') },
    { id: 'db-read-latency', title: 'read latency (average, s)', metric: metric('ReadLatency', 'Average') },
    { id: 'db-write-latency', title: 'write latency (average, s)', metric: metric('WriteLatency', 'Average') },
    { id: 'db-cpu', title: 'CPU % (average)', metric: metric('CPUUtilization', 'Average') },
  ];
}

export const databaseArea: AreaRegistration = {
  name: 'database',
  widgets: databaseWidgets,
  targetMarkers: true,
  summary: 'btree and GiST indexes (what-if and measured), index hygiene, N+1 patterns, PostGIS anti-patterns, connection pool / RDS Proxy',
  alarms: databaseAlarms,
  access: databaseAccess,
  environment: (config): Record<string, string> => {
    const proxyName = config.targets.database.rds?.proxyName;
    return proxyName ? { PERFPILOT_DB_PROXY_NAME: proxyName } : {};
  },
};
