/**
 * The local stand-ins for CloudWatch: a MetricsReader that reads each area's health
 * straight from its services (through the area plugin's `snapshot`) and keeps the
 * history, and an AlarmStateReader that evaluates the SAME alarm definitions the CDK
 * stack turns into CloudWatch alarms over that history ("M out of N").
 */
import type { PerfpilotConfig } from '#lib/config';
import { alarmDefinitions } from '#functions/areas';
import { alarmName, evaluateAlarm, signalValue, type AlarmDefinition, type AlarmState } from '#shared/alarms';
import type { AreaPlugin } from '#shared/area';
import type { Area } from '#shared/change';
import type { MetricsReader, MetricsSnapshot } from '#shared/metrics';
import type { AlarmStateReader } from '#shared/rollout-steps';

export class LocalSignals implements MetricsReader, AlarmStateReader {
  private readonly history = new Map<Area, MetricsSnapshot[]>();

  constructor(
    private readonly config: PerfpilotConfig,
    private readonly plugins: (area: Area) => Promise<AreaPlugin>,
    private readonly historyLength = 20,
  ) {}

  async snapshot(area: Area, now: Date): Promise<MetricsSnapshot> {
    const plugin = await this.plugins(area);
    const snapshot = await plugin.snapshot(now);
    const list = this.history.get(area) ?? [];
    list.push(snapshot);
    if (list.length > this.historyLength) list.shift();
    this.history.set(area, list);
    return snapshot;
  }

  async firing(area: Area, _now: Date): Promise<string[]> {
    return this.evaluate(area)
      .filter((e) => e.definition.severity === 'critical' && e.state === 'ALARM')
      .map((e) => e.name);
  }

  /** Every alarm of the area over the snapshots so far: its state and the datapoints it judged. */
  evaluate(area: Area): AlarmEvaluation[] {
    const list = this.history.get(area) ?? [];
    return alarmDefinitions(this.config)
      .filter((def) => def.area === area)
      .map((def) => {
        const values = list.map((s) => signalValue(def, s));
        // Locally nothing samples between runs, so the first observations stand for the
        // periods before them (a steady signal): a hit rate already low when the rollout
        // starts shows as an alarm already firing at its baseline, as CloudWatch's would.
        const padded = [...Array(Math.max(0, def.evaluationPeriods - values.length)).fill(values[0]), ...values];
        return { name: alarmName(this.config, def), definition: def, state: evaluateAlarm(def, padded), datapoints: padded.slice(-def.evaluationPeriods) };
      });
  }
}

export interface AlarmEvaluation {
  readonly name: string;
  readonly definition: AlarmDefinition;
  readonly state: AlarmState;
  /** The last `evaluationPeriods` values (oldest first; undefined = missing). */
  readonly datapoints: readonly (number | undefined)[];
}
