/**
 * What CloudWatch does between rollouts, locally: every alarm period it takes one
 * snapshot of each watched area (LocalSignals, so the datapoint is the one the alarms
 * and the guardrails read), evaluates the same alarm definitions "M out of N", and on
 * every state change emits the EventBridge event CloudWatch would send ("CloudWatch
 * Alarm State Change"). The caller routes it — to the rollback function's core
 * (handleRollbackEvent) in the demo, exactly as the deployed rule does.
 */
import type { PerfpilotConfig } from '#lib/config';
import { alarmName, type AlarmDefinition, type AlarmState } from '#shared/alarms';
import type { Area } from '#shared/change';
import type { AlarmStateChangeEvent } from '#functions/rollback/events';
import type { AlarmEvaluation, LocalSignals } from './local-signals.ts';

const LOCAL_ACCOUNT = '000000000000';
const LOCAL_REGION = 'local-1';

/** The EventBridge event as CloudWatch sends it (the fields the rollback reads, and the rest of its shape). */
export interface CloudWatchAlarmEvent extends AlarmStateChangeEvent {
  readonly version: '0';
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: readonly string[];
  readonly detail: AlarmStateChangeEvent['detail'] & {
    readonly state: { readonly value: AlarmState; readonly reason: string; readonly timestamp: string };
    readonly previousState: { readonly value: AlarmState; readonly timestamp: string };
    readonly configuration: { readonly description: string };
  };
}

export interface AlarmDatapoint {
  readonly at: string;
  readonly area: Area;
  readonly alarm: string;
  readonly signal: string;
  /** The period's value; absent when the snapshot had none (missing data). */
  readonly value?: number;
  readonly threshold: number;
  readonly state: AlarmState;
}

let eventCounter = 0;

export function alarmStateChangeEvent(
  config: Pick<PerfpilotConfig, 'name'>,
  def: AlarmDefinition,
  state: AlarmState,
  previous: AlarmState,
  datapoints: readonly (number | undefined)[],
  now: Date,
): CloudWatchAlarmEvent {
  const name = alarmName(config, def);
  const shown = datapoints.map((v) => (v === undefined ? 'missing' : Number(v.toFixed(2)))).join(', ');
  const timestamp = now.toISOString();
  return {
    version: '0',
    id: `local-${now.getTime()}-${++eventCounter}`,
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: LOCAL_ACCOUNT,
    time: timestamp,
    region: LOCAL_REGION,
    resources: [`arn:aws:cloudwatch:${LOCAL_REGION}:${LOCAL_ACCOUNT}:alarm:${name}`],
    detail: {
      alarmName: name,
      state: {
        value: state,
        reason:
          state === 'ALARM'
            ? `Threshold Crossed: at least ${def.datapointsToAlarm} of the last ${def.evaluationPeriods} datapoints [${shown}] breached the threshold ${def.threshold} (${def.comparison})`
            : state === 'OK'
              ? `Threshold not crossed: fewer than ${def.datapointsToAlarm} of the last ${def.evaluationPeriods} datapoints [${shown}] breached the threshold ${def.threshold} (${def.comparison})`
              : `Insufficient data: no datapoint among the last ${def.evaluationPeriods}`,
        timestamp,
      },
      previousState: { value: previous, timestamp },
      configuration: { description: def.description },
    },
  };
}

export interface AlarmWatchDeps {
  readonly config: PerfpilotConfig;
  readonly signals: Pick<LocalSignals, 'snapshot' | 'evaluate'>;
  readonly areas: readonly Area[];
  /** Called, and awaited, for every state change, in order. */
  readonly onStateChange: (event: CloudWatchAlarmEvent, evaluation: AlarmEvaluation) => Promise<void>;
  readonly clock?: () => Date;
  /** Period between evaluations; default: config.alerts.periodSeconds. */
  readonly periodMs?: number;
}

export class AlarmWatch {
  readonly datapoints: AlarmDatapoint[] = [];
  readonly errors: string[] = [];
  private readonly states = new Map<string, AlarmState>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: AlarmWatchDeps) {}

  get periodMs(): number {
    return this.deps.periodMs ?? this.deps.config.alerts.periodSeconds * 1_000;
  }

  /** The state of an alarm after the last evaluation (INSUFFICIENT_DATA before the first). */
  state(name: string): AlarmState {
    return this.states.get(name) ?? 'INSUFFICIENT_DATA';
  }

  /** Evaluates once now, then every period until stop(). */
  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.running.then(() => this.evaluateOnce()).catch((error) => void this.errors.push((error as Error).message));
      this.timer = setTimeout(tick, this.periodMs);
    };
    tick();
  }

  /** One period: a snapshot per area, every alarm evaluated, a state change emitted. */
  async evaluateOnce(): Promise<void> {
    const clock = this.deps.clock ?? (() => new Date());
    for (const area of this.deps.areas) {
      const now = clock();
      await this.deps.signals.snapshot(area, now);
      for (const evaluation of this.deps.signals.evaluate(area)) {
        const def = evaluation.definition;
        const last = evaluation.datapoints.at(-1);
        this.datapoints.push({
          at: now.toISOString(),
          area,
          alarm: evaluation.name,
          signal: def.signal,
          ...(last !== undefined ? { value: last } : {}),
          threshold: def.threshold,
          state: evaluation.state,
        });
        const previous = this.state(evaluation.name);
        this.states.set(evaluation.name, evaluation.state);
        if (previous !== evaluation.state) {
          await this.deps.onStateChange(alarmStateChangeEvent(this.deps.config, def, evaluation.state, previous, evaluation.datapoints, now), evaluation);
        }
      }
    }
  }

  /** Stops after the evaluation in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
