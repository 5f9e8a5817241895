/** The EventBridge event CloudWatch sends when a Perfpilot critical alarm goes to ALARM. */
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { alarmName } from '#shared/alarms';
import type { AlarmStateChangeEvent } from '#functions/rollback/events';

/** The name of the alarm with this definition id (e.g. `cache-hit-rate`). */
export function alarmNamed(config: PerfpilotConfig, id: string): string {
  const def = alarmDefinitions(config).find((d) => d.id === id);
  if (!def) throw new Error(`no alarm definition ${id}`);
  return alarmName(config, def);
}

export function alarmEventFor(config: PerfpilotConfig, id: string, definitionId = 'cache-hit-rate'): AlarmStateChangeEvent {
  return {
    id,
    source: 'aws.cloudwatch',
    'detail-type': 'CloudWatch Alarm State Change',
    detail: { alarmName: alarmNamed(config, definitionId), state: { value: 'ALARM', reason: 'Threshold Crossed' } },
  };
}
