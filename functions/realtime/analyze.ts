/**
 * `perfpilot analyze realtime`: observe and plan, read-only, as report sections. The
 * policy in force is read from the ledger's policy store when a runtime is given,
 * else from the Redis mirror the dispatchers read.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { AreaAnalyzer } from '#shared/area';
import type { AnalysisReport } from '#shared/report';
import { defaultRealtimePolicy, normalizeRealtimePolicy, topicPolicyOf, type RealtimePolicy } from '#sdk/realtime/policy';
import { observeRealtime } from './observe.ts';
import { planRealtime } from './plan.ts';
import { connectRealtimeRedis } from './redis.ts';

const r1 = (n: number | undefined) => (n === undefined ? null : Math.round(n * 10) / 10);

export async function analyzeRealtime(config: PerfpilotConfig, options: { target?: 'local' | 'aws'; now?: Date } = {}): Promise<AnalysisReport> {
  const t = config.realtimeTuner;
  const now = options.now ?? new Date();
  const { redis, name } = await connectRealtimeRedis(config, options.target ?? 'local');
  try {
    const fallback = defaultRealtimePolicy(t, t.coalesceRules);
    const mirrored = await redis.get(t.policyRedisKey);
    const current: { version: number; document: RealtimePolicy } = mirrored
      ? (() => {
          const p = JSON.parse(mirrored) as { version: number; document: unknown };
          return { version: p.version, document: normalizeRealtimePolicy(p.document, fallback) };
        })()
      : { version: 0, document: fallback };
    const { observation: obs, window } = await observeRealtime(redis, t, now);
    const plan = planRealtime({ observation: obs, current: current.document, tuning: t, targetMs: config.kpis.messageLatencyMsMax });
    const byTopic = new Map(plan.topics.map((d) => [d.topic, d]));
    return {
      area: 'realtime',
      title: 'Realtime delivery analysis',
      sections: [
        {
          title: 'Topics (delivery statistics and planned batching)',
          columns: ['topic', 'events/s', 'events/flush', 'deliveries', 'acks', 'p50 ms', 'p95 ms', 'p95 after flush ms', 'window ms', 'planned', 'batch max', 'planned', 'why'],
          rows: obs.topics.map((o) => {
            const d = byTopic.get(o.topic);
            const cur = topicPolicyOf(current.document, o.topic);
            return [
              o.topic,
              r1(o.eventsPerSecond),
              o.flushes > 0 ? r1(o.events / o.flushes) : null,
              o.deliveries,
              o.acks,
              r1(o.latencyP50Ms),
              r1(o.latencyP95Ms),
              r1(o.overheadP95Ms),
              cur.windowMs,
              d?.after.windowMs ?? cur.windowMs,
              cur.batchMaxEvents,
              d?.after.batchMaxEvents ?? cur.batchMaxEvents,
              d?.reason ?? '',
            ];
          }),
          empty: 'no delivery statistics yet: no application publishes through the realtime runtime on this Redis',
        },
        {
          title: 'Delivery totals',
          columns: ['metric', 'value'],
          rows: [
            ['PostToConnection calls', obs.totals.posts],
            ['bytes posted', obs.totals.bytes],
            ['32 KB billing units', obs.totals.units],
            ['units per post', obs.totals.posts > 0 ? r1(obs.totals.units / obs.totals.posts) : null],
            ['410 gone (connections removed)', obs.totals.gone],
            ['429 throttled (retried)', obs.totals.throttled],
            ['failed deliveries (resynced)', obs.totals.failed],
            ['registered connections', obs.connections],
          ],
        },
        {
          title: 'Proposed changes',
          columns: ['kind', 'target', 'reason'],
          rows: plan.changes.map((c) => [c.kind, c.target, c.reason]),
          empty: 'nothing to change',
        },
      ],
      notes: [
        `runtime Redis: ${name} (keys under ${t.keyPrefix}); policy in force: ${current.version === 0 ? 'defaults (none published)' : `version ${current.version}`}`,
        `statistics: the last ${t.statsWindowSeconds} s in ${window.buckets} buckets of ${t.statsBucketSeconds} s (${window.bucketsWithData} with data, ${r1(obs.seconds)} s of traffic); latency target ${config.kpis.messageLatencyMsMax} ms (kpis.messageLatencyMsMax)`,
        'delivery latency is publish of the oldest event of an update → its acknowledgement reaching the $default route (so it includes the client\'s uplink)',
        ...plan.notes,
      ],
      json: { target: name, policyVersion: current.version, policy: current.document, observation: obs, topics: plan.topics, changes: plan.changes },
    };
  } finally {
    redis.disconnect();
  }
}

/** `perfpilot analyze realtime` (the name the area loader looks for, functions/areas.ts). */
export const analyze: AreaAnalyzer = (config) => analyzeRealtime(config);
