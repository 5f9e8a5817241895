/**
 * The demo workload's own thread: the application runs beside Perfpilot, not on its
 * event loop, so the tuner's latency probes measure the services, not the app's
 * request loops (in production they are different processes altogether).
 * Messages: it posts `{ type: 'counts' }` once started and every second after, and
 * `{ type: 'stopped' }` once stopped; it obeys `{ type: 'stop' }`, and answers `{ type: 'phase' }`
 * with the request latency percentiles since the previous phase. With `liveMap`, it
 * publishes each GPS fix to the realtime topic (sdk/realtime's publisher) and posts
 * `{ type: 'dispatch' }` when a dispatcher must be started (in AWS: a Lambda invocation).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LatencyHistogram } from '#local/load/latency-histogram';
import { FleetWorkload, type FleetWorkloadOptions } from './fleet-workload.ts';
import type { LiveMapOptions } from './live-positions.ts';
import { gpsFixPublisher } from './live-publisher.ts';

if (!parentPort) throw new Error('workload-thread runs as a worker thread');
const port = parentPort;
// Request latencies per phase of the demo (warm-up, after the rollouts…): `{ type: 'phase' }` closes one.
let phase = new LatencyHistogram();
const { liveMap, ...options } = workerData as FleetWorkloadOptions & { liveMap?: LiveMapOptions };
const publisher = liveMap ? gpsFixPublisher(liveMap, () => port.postMessage({ type: 'dispatch' })) : undefined;
const workload = new FleetWorkload({
  ...options,
  onRequestEnd: (trace) => phase.record(trace.durationMs),
  ...(publisher ? { onGpsFix: publisher.onGpsFix } : {}),
});
workload.start();
port.postMessage({ type: 'counts', counts: workload.counts });
const ticker = setInterval(() => port.postMessage({ type: 'counts', counts: workload.counts }), 1_000);

port.on('message', (message: { type?: string }) => {
  if (message.type === 'phase') {
    port.postMessage({ type: 'phase', counts: workload.counts, latency: phase.percentiles() });
    phase = new LatencyHistogram();
    return;
  }
  if (message.type !== 'stop') return;
  clearInterval(ticker);
  void workload
    .stop()
    .then(() => publisher?.close())
    .then(
    () => {
      port.postMessage({ type: 'stopped', counts: workload.counts, warnings: workload.cacheWarnings });
      port.close();
    },
    (error: unknown) => {
      port.postMessage({ type: 'stopped', counts: workload.counts, warnings: [...workload.cacheWarnings, `stop failed: ${(error as Error).message}`] });
      port.close();
    },
  );
});
