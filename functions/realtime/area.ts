/**
 * The realtime area's registration (listed in `functions/areas.ts`): its alarms and
 * the AWS calls its area function makes on the tuned system. Pure data: Lambda code
 * reads it too. The plugin is `./plugin.ts` (`createPlugin`), the analysis
 * `./analyze.ts`; the WebSocket API and the delivery functions are its CDK part
 * (lib/constructs/realtime-api.ts, listed in lib/constructs/area-infrastructure.ts).
 *
 * Its alarms watch what the delivery runtime itself publishes (EMF, namespace
 * `Perfpilot/<name>`, `Area=realtime`): `Latency` (each acknowledged delivery, flush →
 * acknowledgement: the delivery path after the batching window, from the `$default`
 * function), `ErrorRate` and `Throughput` (each dispatcher run); locally the same
 * signals come from the plugin's snapshot. The window's own wait is a policy choice the
 * tuner holds under `kpis.messageLatencyMsMax` (end-to-end `DeliveryLatency`), checked
 * by its verdict; alarms and guardrails watch what a change must not make worse.
 */
import type { PerfpilotConfig } from '#lib/config';
import { applicationAlarms, type AlarmDefinition } from '#shared/alarms';
import type { AwsAccess } from '#shared/aws-access';
import type { AreaRegistration } from '#shared/area';
import type { AreaWidget } from '#shared/dashboard';

function realtimeAlarms(config: PerfpilotConfig): AlarmDefinition[] {
  return applicationAlarms('realtime', config);
}

/**
 * What connectRealtimeRedis (redis.ts) calls in AWS: the AUTH secret, when the delivery
 * runtime's ElastiCache has one. Every function that opens that Redis is granted it (the
 * area function here; the route and dispatcher functions in lib/constructs/realtime-api.ts).
 */
export function realtimeRedisAccess(config: PerfpilotConfig): AwsAccess[] {
  const arn = config.targets.realtime.elasticache?.authSecretArn;
  return arn ? [{ actions: ['secretsmanager:GetSecretValue'], resources: [arn] }] : [];
}

// Besides its Redis, the area function writes policies through the ledger table, which
// every area function is granted.
function realtimeAccess(config: PerfpilotConfig): AwsAccess[] {
  return realtimeRedisAccess(config);
}

/** The dispatcher function's fixed name (lib/constructs/realtime-api.ts creates it; its metrics are named by it). */
export function dispatcherFunctionName(config: Pick<PerfpilotConfig, 'name'>): string {
  return `${config.name}-realtime-dispatcher`;
}

/** What Lambda publishes about the dispatcher that posts every update: its flush time and failures. */
function realtimeWidgets(config: PerfpilotConfig): AreaWidget[] {
  const dimensions = { FunctionName: dispatcherFunctionName(config) };
  return [
    { id: 'dispatcher-duration', title: 'dispatcher run time (p95, ms)', metric: { kind: 'metric', namespace: 'AWS/Lambda', metricName: 'Duration', statistic: 'p95', dimensions } },
    { id: 'dispatcher-errors', title: 'dispatcher errors (sum)', metric: { kind: 'metric', namespace: 'AWS/Lambda', metricName: 'Errors', statistic: 'Sum', dimensions } },
  ];
}

export const realtimeArea: AreaRegistration = {
  name: 'realtime',
  summary: 'WebSocket delivery: batching window and size per topic against the latency target, coalescing, deltas, compression, dead connections',
  alarms: realtimeAlarms,
  access: realtimeAccess,
  widgets: realtimeWidgets,
};
