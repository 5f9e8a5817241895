/**
 * The application-side metrics publisher: what the alarms that trigger rollback read.
 *
 * Each area's runtime (the cache client, the pg query tracer, the realtime
 * broadcaster, the vector search) reports one operation at a time; the publisher
 * aggregates per area and writes CloudWatch Embedded Metric Format documents, one per
 * area and flush, through Powertools metrics:
 *
 *   namespace `Perfpilot/<name>`, dimensions { service: "application", Area: <area> }
 *   Latency     Milliseconds     every sample (CloudWatch computes p95 from them)
 *   ErrorRate   Percent          failed operations of all, over the interval
 *   Throughput  Count/Second     operations per second over the interval
 *
 *   const metrics = new OperationMetrics({ namespace: 'Perfpilot/perfpilot' });
 *   metrics.recordOperation('caching', 3.2, true);
 *   metrics.flush();    // at the end of a Lambda invocation; otherwise every flushIntervalMs
 *
 * In Lambda the documents go to stdout and CloudWatch Logs turns them into metrics; on
 * ECS/EC2 the CloudWatch agent (or the awslogs driver with EMF) does. Nothing is sent
 * over the network from the request path.
 */
import { MetricUnit, Metrics } from '@aws-lambda-powertools/metrics';
import { APPLICATION_METRICS, APPLICATION_SERVICE } from './names.ts';

/** Anything that can take one operation: the publisher, or a test's recorder. */
export interface OperationRecorder {
  recordOperation(area: string, latencyMs: number, ok: boolean): void;
}

export { APPLICATION_METRICS, APPLICATION_SERVICE } from './names.ts';

export interface OperationMetricsOptions {
  /** `Perfpilot/<config name>`: the namespace the alarms watch. */
  readonly namespace: string;
  /** Flush this often (0: only when `flush()` is called, e.g. per Lambda invocation). @default 60_000 */
  readonly flushIntervalMs?: number;
  /** Where each EMF document (one JSON line) goes. @default stdout */
  readonly sink?: (line: string) => void;
  readonly now?: () => number;
}

interface AreaWindow {
  latencies: number[];
  ok: number;
  failed: number;
}

/** Powertools flushes on its own at 100 values of one metric; we stay under it and flush ourselves. */
const VALUES_PER_DOCUMENT = 99;

export class OperationMetrics implements OperationRecorder {
  private readonly windows = new Map<string, AreaWindow>();
  private readonly metrics: Metrics;
  private readonly sink: (line: string) => void;
  private readonly now: () => number;
  private windowStartMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: OperationMetricsOptions) {
    this.metrics = new Metrics({ namespace: options.namespace, serviceName: APPLICATION_SERVICE });
    this.sink = options.sink ?? ((line) => process.stdout.write(`${line}\n`));
    this.now = options.now ?? Date.now;
    this.windowStartMs = this.now();
    const interval = options.flushIntervalMs ?? 60_000;
    if (interval > 0) {
      this.timer = setInterval(() => this.flush(), interval);
      this.timer.unref();
    }
  }

  recordOperation(area: string, latencyMs: number, ok: boolean): void {
    let w = this.windows.get(area);
    if (!w) this.windows.set(area, (w = { latencies: [], ok: 0, failed: 0 }));
    w.latencies.push(latencyMs);
    if (ok) w.ok++;
    else w.failed++;
  }

  /** Writes what was recorded since the last flush (one document per area and 99 latency samples). */
  flush(): void {
    const nowMs = this.now();
    const seconds = Math.max((nowMs - this.windowStartMs) / 1_000, 0.001);
    this.windowStartMs = nowMs;
    for (const [area, w] of this.windows) {
      const total = w.ok + w.failed;
      if (total === 0) continue;
      for (let i = 0; i < w.latencies.length || i === 0; i += VALUES_PER_DOCUMENT) {
        this.metrics.setTimestamp(nowMs);
        this.metrics.addDimension('Area', area);
        for (const v of w.latencies.slice(i, i + VALUES_PER_DOCUMENT)) this.metrics.addMetric(APPLICATION_METRICS.latency, MetricUnit.Milliseconds, v);
        if (i === 0) {
          this.metrics.addMetric(APPLICATION_METRICS.errorRate, MetricUnit.Percent, (w.failed / total) * 100);
          this.metrics.addMetric(APPLICATION_METRICS.throughput, MetricUnit.CountPerSecond, total / seconds);
        }
        this.sink(JSON.stringify(this.metrics.serializeMetrics()));
        this.metrics.clearMetrics();
        this.metrics.clearDimensions();
      }
    }
    this.windows.clear();
  }

  /** Flushes and stops the timer. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }
}
