/**
 * Runs the demo workload (fleet-workload.ts) on a worker thread of this process and
 * follows its request counts. stop() returns once the thread has closed every
 * connection and exited, so nothing is left open.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Percentiles } from '#local/load/latency-histogram';
import type { FleetWorkloadOptions, WorkloadCounts } from './fleet-workload.ts';
import type { LiveMapOptions } from './live-positions.ts';

type ThreadMessage =
  | { readonly type: 'dispatch' }
  | { readonly type: 'counts'; readonly counts: WorkloadCounts }
  | { readonly type: 'phase'; readonly counts: WorkloadCounts; readonly latency: Percentiles | null }
  | { readonly type: 'stopped'; readonly counts: WorkloadCounts; readonly warnings: readonly string[] };

export class BackgroundWorkload {
  private readonly worker: Worker;
  private latest: WorkloadCounts = { requests: 0, errors: 0 };
  private warnings: readonly string[] = [];
  private readonly exited: Promise<unknown>;
  private failure: Error | undefined;
  private stopping: Promise<WorkloadCounts> | undefined;
  private phaseWaiters: ((latency: Percentiles | null) => void)[] = [];
  /** Resolves when the thread has started its request loops (loading TypeScript in a thread takes a few seconds). */
  readonly started: Promise<void>;

  /** `liveMap`: the thread publishes GPS fixes to it and calls `onDispatch` when a dispatcher must start. */
  constructor(options: FleetWorkloadOptions & { readonly liveMap?: LiveMapOptions }, onDispatch?: () => void) {
    this.worker = new Worker(new URL('./workload-thread.mjs', import.meta.url), { workerData: options });
    let markStarted: () => void = () => undefined;
    this.started = new Promise((resolve) => {
      markStarted = resolve;
    });
    this.worker.on('message', (message: ThreadMessage) => {
      if (message.type === 'dispatch') {
        onDispatch?.();
        return;
      }
      markStarted();
      this.latest = message.counts;
      if (message.type === 'stopped') this.warnings = message.warnings;
      if (message.type === 'phase') this.phaseWaiters.shift()?.(message.latency);
    });
    this.worker.on('error', (error) => {
      this.failure = error;
    });
    this.exited = once(this.worker, 'exit');
    void this.exited.then(() => markStarted());
  }

  get counts(): WorkloadCounts {
    return this.failure ? { ...this.latest, lastError: `workload thread failed: ${this.failure.message}` } : this.latest;
  }

  get cacheWarnings(): readonly string[] {
    return this.warnings;
  }

  /** Request latency percentiles since the previous call (or the start); null when none finished. */
  phase(): Promise<Percentiles | null> {
    return new Promise((resolve) => {
      this.phaseWaiters.push(resolve);
      this.worker.postMessage({ type: 'phase' });
      // A thread that has exited answers nothing.
      void this.exited.then(() => resolve(null));
    });
  }

  /** Asks the thread to stop, waits for it to exit (at most `timeoutMs`, then terminates it). Idempotent. */
  stop(timeoutMs = 30_000): Promise<WorkloadCounts> {
    this.stopping ??= (async () => {
      this.worker.postMessage({ type: 'stop' });
      const timer = setTimeout(() => void this.worker.terminate(), timeoutMs);
      try {
        await this.exited;
      } finally {
        clearTimeout(timer);
      }
      return this.counts;
    })();
    return this.stopping;
  }
}
