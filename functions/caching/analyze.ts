/**
 * `perfpilot analyze caching`: observe and plan, read-only, as report sections.
 * The policy in force is read from the Redis mirror the clients read (no ledger needed).
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { ElastiCacheClient } from '@aws-sdk/client-elasticache';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { PerfpilotConfig } from '#lib/config';
import type { AreaAnalyzer } from '#shared/area';
import type { AnalysisReport } from '#shared/report';
import { DEFAULT_CACHE_POLICY, normalizePolicy, type CachePolicy } from '#sdk/cache/policy';
import { CLIENT_STATS_PATTERN } from '#sdk/cache/stats';
import { CloudWatchCacheMetricsSource } from './observe.ts';
import { ElastiCacheParameters, RedisConfigParameters } from './parameters.ts';
import { configStatsLayout, readsOf } from './plan.ts';
import { connectCacheRedis, observeAndPlan, validationReplayFor } from './plugin.ts';

export interface AnalyzeCachingOptions {
  readonly target?: 'local' | 'aws';
  readonly now?: Date;
}

const r1 = (n: number | undefined) => (n === undefined ? null : Math.round(n * 10) / 10);

export async function analyzeCaching(config: PerfpilotConfig, options: AnalyzeCachingOptions = {}): Promise<AnalysisReport> {
  const target = options.target ?? 'local';
  const now = options.now ?? new Date();
  const ec = config.targets.caching.elasticache;
  const aws = target === 'aws' && ec !== undefined;
  const elasticache = aws ? new ElastiCacheClient({}) : undefined;
  const { redis, name, primaryClusterId } = await connectCacheRedis(config, target, elasticache ? { elasticache, secrets: new SecretsManagerClient({}) } : undefined);
  try {
    const parameters = aws ? new ElastiCacheParameters(elasticache!, ec.parameterGroupName) : new RedisConfigParameters(redis, name);
    const cloudwatch = aws ? new CloudWatchCacheMetricsSource(new CloudWatchClient({}), primaryClusterId ?? ec.replicationGroupId) : undefined;
    const mirrored = await redis.get(config.cachingTuner.policyRedisKey);
    const current = mirrored
      ? (() => {
          const p = JSON.parse(mirrored) as { version: number; document: unknown };
          return { version: p.version, document: normalizePolicy(p.document, configStatsLayout(config.cachingTuner)) as CachePolicy };
        })()
      : { version: 0, document: DEFAULT_CACHE_POLICY };
    const { observation: obs, plan } = await observeAndPlan(
      { redis, target: name, parameters, tuning: config.cachingTuner, cloudwatch, validation: await validationReplayFor(config.cachingTuner, target) },
      current,
      now,
    );
    const ev = plan.evidence;
    const mirror = obs.policyMirror;
    const policyMisses = obs.patterns[CLIENT_STATS_PATTERN]?.policyMisses ?? 0;
    const notes = [
      `cache: ${name}; policy in force: ${current.version === 0 ? 'defaults (none published)' : `version ${current.version}`}`,
      `client counters: the last ${obs.statsWindow.seconds} s, summed over ${obs.statsWindow.buckets} buckets of ${current.document.stats?.bucketSeconds ?? config.cachingTuner.statsBucketSeconds} s (the policy's layout) ` +
        `(${obs.statsWindow.from} to ${obs.statsWindow.to}, ${obs.statsWindow.bucketsWithData} with data); ${obs.trace.length} sampled requests at rate ${obs.traceSampleRate}`,
      `keyspace sample: ${obs.sampledKeys} keys (budget ${config.cachingTuner.keyspaceSampleKeysMax})`,
      mirror && (!mirror.present || mirror.republishRequested || policyMisses > 0)
        ? `policy mirror ${config.cachingTuner.policyRedisKey}: ${mirror.present ? `version ${mirror.version}` : 'MISSING'}; clients found it missing ${policyMisses} times in the window${mirror.republishRequested ? ' and asked for a republish' : ''} (the next rollout step republishes it)`
        : `policy mirror ${config.cachingTuner.policyRedisKey}: ${mirror?.present ? `version ${mirror.version}` : 'not found'}`,
      ...plan.notes,
    ];
    return {
      area: 'caching',
      title: 'Caching analysis',
      sections: [
        {
          title: 'Patterns (client statistics and planned policy)',
          columns: ['pattern', 'reads', 'hit %', 'stale serves', 'loads', 'mean load ms', 'TTL s', 'planned TTL s', 'compression', 'planned', 'admission', 'planned', 'why'],
          rows: plan.patterns.map((d) => {
            const s = obs.patterns[d.pattern];
            return [
              d.pattern,
              d.reads,
              d.hitRatePercent,
              s?.staleServes ?? 0,
              s?.loads ?? 0,
              s && s.loads > 0 ? r1(s.loadMsTotal / s.loads) : null,
              d.ttlSecondsBefore,
              d.ttlSecondsAfter,
              d.compressionBefore,
              d.compressionAfter,
              d.admissionBefore,
              d.admissionAfter,
              [d.ttlReason, d.compressionReason, d.admissionReason].join('; '),
            ];
          }),
          empty: 'no client statistics yet: no application uses the Perfpilot cache client on this cache',
        },
        {
          title: 'Server',
          columns: ['metric', 'value'],
          rows: [
            ['keyspace hit %', r1(obs.info.keyspaceHits + obs.info.keyspaceMisses > 0 ? (obs.info.keyspaceHits / (obs.info.keyspaceHits + obs.info.keyspaceMisses)) * 100 : undefined)],
            ['evicted keys', obs.info.evictedKeys],
            ['expired keys', obs.info.expiredKeys],
            ['used memory bytes', obs.info.usedMemoryBytes],
            ['maxmemory bytes', obs.info.maxmemoryBytes],
            ['connected clients', obs.info.connectedClients],
            ...Object.entries(obs.parameters).map(([k, v]) => [k, v] as [string, string]),
            ...Object.entries(obs.cloudwatch ?? {}).map(([k, v]) => [`cloudwatch ${k}`, r1(v as number | undefined)] as [string, number | null]),
          ],
        },
        {
          title: 'Keyspace sample by pattern',
          columns: ['pattern', 'keys', 'mean bytes', 'mean TTL s', 'mean idle s', 'mean LFU freq'],
          rows: Object.entries(obs.samples).map(([p, s]) => [p, s.keys, r1(s.meanBytes), r1(s.meanTtlSeconds), r1(s.meanIdleSeconds), r1(s.meanFreq)]),
          empty: 'no keys under the namespace',
        },
        {
          title: 'Evidence (the clients\' sampled log)',
          columns: ['what', 'value'],
          rows: [
            ['sample rate in the log', ev.sampleRate],
            ['sampled reads used', ev.sampledReads],
            ['sampled requests used (reads, deletes, overwrites, invalidations)', ev.sampledRequests],
            ['span', ev.from ? `${ev.from} to ${ev.to}` : null],
            ['reads the clients counted over the span (SHARDS correction)', ev.clientReads ?? null],
            ['lines left out (older rate, or old format)', ev.linesLeftOut + ev.legacyLines],
            ['bytes the values can use', ev.capacityBytes ?? null],
            ['  from', ev.capacityBasis ?? null],
            ['key cost', ev.costBasis ?? null],
            ['keys the sampled cache holds', ev.simulatedCapacityKeys ?? null],
            ['intervals', `${ev.confidencePercent}%, jackknife over ${ev.groups} key groups`],
            ['next sample rate', ev.nextSampleRate],
            ['  why', ev.sampleRateReason],
          ],
        },
        {
          title: 'Simulated configurations (on the sample, as Redis and the client behave)',
          columns: ['configuration', 'hit %', '± points', 'replay'],
          rows: ev.configs.map((c) => [
            c.label,
            c.hitRatePercent,
            c.halfWidthPoints,
            c.validatedByReplay
              ? `replay ${c.validatedByReplay.measuredPercent}% vs simulated ${c.validatedByReplay.simulatedPercent}% on its clock: ${c.validatedByReplay.trusted ? 'disagree, the replay is trusted' : 'agree'}`
              : null,
          ]),
          empty: 'nothing simulated: see the eviction row for why',
        },
        {
          title: 'Eviction',
          columns: ['current', 'Redis LRU hit %', 'Redis LFU hit %', 'LFU − LRU points', 'tuned hit %', 'decided', 'proposed', 'why'],
          rows: [
            [
              plan.eviction.currentPolicy,
              r1(plan.eviction.lruHitRatePercent),
              r1(plan.eviction.lfuHitRatePercent),
              plan.eviction.lfuMinusLru ? `${r1(plan.eviction.lfuMinusLru.estimate)} ± ${r1(plan.eviction.lfuMinusLru.halfWidth)}` : null,
              plan.eviction.tunedHitRatePercent === undefined ? null : `${r1(plan.eviction.tunedHitRatePercent)} ± ${r1(plan.eviction.tunedHalfWidthPoints)}${plan.eviction.predictionBasis ? ` (${plan.eviction.predictionBasis})` : ''}`,
              plan.eviction.decided ? 'yes' : 'no',
              plan.eviction.proposedPolicy ?? null,
              plan.eviction.reason,
            ],
          ],
        },
        {
          title: 'Proposed changes',
          columns: ['kind', 'target', 'reason'],
          rows: plan.changes.map((c) => [c.kind, c.target, c.reason]),
          empty: 'nothing to change',
        },
      ],
      notes,
      json: {
        target: name,
        policyVersion: current.version,
        patterns: plan.patterns,
        patternReads: Object.fromEntries(Object.entries(obs.patterns).filter(([p]) => p !== CLIENT_STATS_PATTERN).map(([p, s]) => [p, readsOf(s)])),
        info: obs.info,
        parameters: obs.parameters,
        samples: obs.samples,
        cloudwatch: obs.cloudwatch ?? null,
        eviction: plan.eviction,
        evidence: plan.evidence,
        policyMirror: mirror ?? null,
        warmKeys: plan.warmKeys,
        changes: plan.changes,
      },
    };
  } finally {
    redis.disconnect();
  }
}

/** `perfpilot analyze caching` (the name the area loader looks for, functions/areas.ts). */
export const analyze: AreaAnalyzer = (config, options) => analyzeCaching(config, options);
