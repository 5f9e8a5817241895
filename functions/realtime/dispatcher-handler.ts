/**
 * The dispatcher function: started by a publisher that took the free lease (an `Event`
 * invocation), it flushes topics window by window until idle, or hands over to a fresh
 * invocation after `dispatcherRunSecondsMax` (inside its timeout).
 */
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { Context } from 'aws-lambda';
import { withObservability } from '#shared/lambda';
import { logger } from '#shared/observability';
import { createDeliveryMetrics, recordDispatchRun } from './delivery-metrics.ts';
import { deliveryDeps } from './delivery-deps.ts';
import { Dispatcher, type DispatchRunSummary } from './dispatcher.ts';
import { PolicyMirror } from './policy-mirror.ts';

const metrics = createDeliveryMetrics();
let policy: PolicyMirror | undefined;

export const handler = withObservability(async (event: { reason?: string } | undefined, _context: Context): Promise<DispatchRunSummary> => {
  const d = await deliveryDeps();
  const t = d.config.realtimeTuner;
  policy ??= new PolicyMirror(d.redis, t, Date.now, t.coalesceRules, (error) => logger.warn('realtime policy unreadable; keeping the last one', { error }));
  const dispatcher = new Dispatcher({
    redis: d.redis,
    poster: d.poster,
    registry: d.registry,
    tuning: t,
    policy,
    stats: d.stats,
    trigger: d.trigger,
    onRun: (run) => recordDispatchRun(metrics, run),
    onError: (error) => logger.warn('realtime delivery problem', { error }),
  });
  const summary = await dispatcher.run();
  logger.info('dispatcher run', { reason: event?.reason, ...summary });
  return summary;
}).use(logMetrics(metrics));
