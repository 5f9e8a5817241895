/**
 * The one config schema, read by the CDK app, the Lambdas and the CLI.
 *
 * Numbers that steer behaviour live here with their unit in the name. Defaults are
 * the seed plan's KPI targets, alert thresholds and rollback criteria; what has no
 * sensible default (which database, which cache) must be given.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import * as z from 'zod';
import { DEFAULT_CONFIG_FILE } from './names.ts';
import { scheduleExpressionProblem } from './schedule-expression.ts';

export { AREAS, DEFAULT_CONFIG_FILE, type AreaName } from './names.ts';

const percent = z.number().min(0).max(100);
const positiveInt = z.number().int().positive();

/** An EventBridge schedule expression, held to EventBridge's rules (lib/schedule-expression.ts). */
const scheduleExpression = z.string().superRefine((value, ctx) => {
  const problem = scheduleExpressionProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)}: ${problem}` });
});

const areaScheduleSchema = z
  .object({
    enabled: z.boolean().default(true),
    schedule: scheduleExpression.default('rate(1 hour)'),
  })
  .strict();

const cachingTargetSchema = z
  .object({
    /** Local or self-managed Redis/Valkey; `rediss://` for TLS. */
    redisUrl: z.string().regex(/^rediss?:\/\//, { message: 'expected a redis:// or rediss:// URL' }).optional(),
    elasticache: z
      .object({
        /**
         * The replication group (one shard, cluster mode off). Its primary endpoint,
         * port and whether it speaks TLS are read with DescribeReplicationGroups when
         * the function starts, so a failover needs no redeploy.
         */
        replicationGroupId: z.string().min(1),
        parameterGroupName: z.string().min(1),
        /** Secrets Manager secret with the AUTH token or RBAC user: { "password" } or { "username", "password" }. */
        authSecretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, { message: 'expected a Secrets Manager secret ARN' }).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((t) => t.redisUrl !== undefined || t.elasticache !== undefined, {
    message: 'give either redisUrl (local) or elasticache (AWS)',
  });

const databaseTargetSchema = z
  .object({
    /** Local PostgreSQL; never used in AWS, where credentials come from Secrets Manager only. */
    connectionString: z.string().regex(/^postgres(ql)?:\/\//, { message: 'expected a postgres:// URL' }).optional(),
    rds: z
      .object({
        instanceIdentifier: z.string().min(1),
        host: z.string().min(1),
        port: positiveInt.default(5432),
        database: z.string().min(1),
        /** Secrets Manager secret holding { username, password }. */
        secretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, { message: 'expected a Secrets Manager secret ARN' }),
        proxyName: z.string().min(1).optional(),
        /** max_connections of the instance, for the connection-utilization alarm. */
        maxConnections: positiveInt.default(100),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((t) => t.connectionString !== undefined || t.rds !== undefined, {
    message: 'give either connectionString (local) or rds (AWS)',
  });

const realtimeTargetSchema = z
  .object({
    /** The local gateway (ws server + @connections API); 0 picks a free port. */
    localPort: z.number().int().min(0).max(65535).default(0),
    /**
     * The local gateway answers 429 above this many @connections posts per second (0: no limit),
     * as API Gateway throttles an account's request rate.
     */
    localPostsPerSecondMax: z.number().int().min(0).default(0),
    /**
     * Redis holding the delivery buffers (one stream per topic) and the connection registry,
     * locally; `targets.caching.redisUrl` when not given.
     */
    redisUrl: z.string().regex(/^rediss?:\/\//, { message: 'expected a redis:// or rediss:// URL' }).optional(),
    /** The same in AWS: an ElastiCache (Redis/Valkey) endpoint the delivery functions reach from the VPC. */
    elasticache: z
      .object({
        endpoint: z.string().min(1),
        port: positiveInt.default(6379),
        /** In-transit encryption (TLS) on the endpoint; off only for a cache created without it. */
        tls: z.boolean().default(true),
        /** Secrets Manager secret with the AUTH token or RBAC user: { "password" } or { "username", "password" }. */
        authSecretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:/, { message: 'expected a Secrets Manager secret ARN' }).optional(),
      })
      .strict()
      .optional(),
    apiGateway: z
      .object({
        apiId: z.string().min(1),
        stage: z.string().min(1),
      })
      .strict()
      .optional(),
  })
  .strict();

const vectorTargetSchema = z
  .object({
    /** Local folder for index snapshots and the dataset (locally, and in tests). */
    snapshotDir: z.string().min(1).default('.perfpilot/vector'),
    /** An existing bucket for snapshots; by default the stack creates one (see lib/constructs/vector-search.ts). */
    s3Bucket: z.string().min(3).optional(),
    dimensions: positiveInt.default(128),
    /** The distance the application searches by (hnswlib's definitions: squared L2, 1 − dot, 1 − cosine). */
    space: z.enum(['l2', 'ip', 'cosine']).default('cosine'),
    /** The dataset the index is built from, a key in the snapshot store (written by the application, see sdk/vector/dataset.ts). */
    datasetKey: z.string().min(1).default('datasets/default.ppvd'),
    /** Prefix of every Redis key of the vector runtime (result and embedding caches, stats, query sample). */
    redisKeyPrefix: z.string().min(1).default('perfpilot:vector:'),
  })
  .strict();

/** What a rollout's task states may take besides bakes and pending applies (seconds each, normally; a step that hangs to its function timeout is an exception the lock expiry then covers). */
export const ROLLOUT_STEPS_SECONDS = 300;
/** The stages of a rollout: the canary and the rest. */
export const ROLLOUT_STAGES_MAX = 2;

/** The longest a rollout may run: every stage pending and baking to its limit, plus its steps. */
export function rolloutSecondsMax(r: { bakeSeconds: number; pendingMaxSeconds: number }): number {
  return ROLLOUT_STAGES_MAX * (r.bakeSeconds + r.pendingMaxSeconds) + ROLLOUT_STEPS_SECONDS;
}

const rolloutSchema = z
  .object({
    /** Fraction of a rollout's changes applied in the canary stage (at least one change). */
    canaryFraction: z.number().gt(0).max(1).default(0.25),
    /** How long each stage bakes before its guardrails are checked. */
    bakeSeconds: z.number().int().min(0).max(86_400).default(300),
    /**
     * A change whose apply is still running (an index build) is polled this often by
     * the state machine (a Wait state, no Lambda running in between)...
     */
    pollSeconds: z.number().int().min(1).max(3_600).default(30),
    /** ...for at most this long per stage; then it is cancelled and the rollout reverts. */
    pendingMaxSeconds: positiveInt.max(86_400).default(3_600),
    /**
     * A crashed holder's area lock expires after this. It is also the rollout state
     * machine's execution timeout, so every stage's bake and pending time must fit in it.
     */
    lockTtlSeconds: positiveInt.max(7 * 86_400).default(10_800),
    /** The alarm-driven rollback reverts changes applied within this window. */
    rollbackLookbackMinutes: positiveInt.default(120),
  })
  .strict()
  .refine((r) => r.lockTtlSeconds >= rolloutSecondsMax(r), {
    // A rollout holds the lock through both stages' pending time and bakes; a lock that
    // expires mid-rollout would let a second run in beside it, and the execution times
    // out at lockTtlSeconds.
    message: `lockTtlSeconds must be at least 2 × (bakeSeconds + pendingMaxSeconds) + ${ROLLOUT_STEPS_SECONDS} (both stages of a rollout and its steps must fit in the lock and the execution timeout)`,
    path: ['lockTtlSeconds'],
  });



/** Seed KPI targets. */
const kpiSchema = z
  .object({
    cacheHitRatePercentMin: percent.default(85),
    cacheLatencyMsMax: z.number().positive().default(50),
    messageLatencyMsMax: z.number().positive().default(500),
    throughputQpsMin: z.number().positive().default(200),
    queryResponseMsMax: z.number().positive().default(100),
    connectionUtilizationPercentMax: percent.default(70),
    vectorSearchLatencyMsMax: z.number().positive().default(85),
  })
  .strict();

/** Seed alert thresholds: these become CloudWatch alarms (and local alarm evaluations). */
const alertSchema = z
  .object({
    cacheHitRatePercentCritical: percent.default(70),
    latencyMsCritical: z.number().positive().default(500),
    errorRatePercentCritical: percent.default(5),
    throughputDropPercentWarning: percent.default(20),
    memoryUsagePercentWarning: percent.default(80),
    connectionUtilizationPercentWarning: percent.default(75),
    /** Each alarm looks at this many periods of this length... */
    periodSeconds: z.number().int().refine((s) => s === 10 || s === 30 || s % 60 === 0, {
      message: 'expected 10, 30 or a multiple of 60 (CloudWatch alarm periods)',
    }).default(60),
    evaluationPeriods: positiveInt.default(3),
    /** ...and fires when this many of them breach. */
    datapointsToAlarm: positiveInt.default(2),
  })
  .strict()
  .refine((a) => a.datapointsToAlarm <= a.evaluationPeriods, {
    message: 'datapointsToAlarm must not exceed evaluationPeriods',
    path: ['datapointsToAlarm'],
  });

/** Seed rollback criteria: a stage whose metrics move past these against the baseline is reverted. */
const rollbackCriteriaSchema = z
  .object({
    latencyIncreasePercentMax: z.number().positive().default(20),
    /**
     * A latency rise must also exceed this many milliseconds to trip: +28% of a 6 ms
     * Redis round trip is scheduler noise on a busy host, not a regression.
     */
    latencyIncreaseMsMin: z.number().min(0).default(5),
    throughputDecreasePercentMax: percent.default(15),
    errorRateIncreasePointsMax: percent.default(5),
    cacheFailureRatePercentMax: percent.default(10),
    connectionFailureRatePercentMax: percent.default(5),
    /** More than this many consecutive failed or reverted rollouts of an area disables its schedule. */
    consecutiveFailedRolloutsMax: positiveInt.default(3),
  })
  .strict();

/** N+1 detection (database area): thresholds for traced requests and the pg_stat_statements heuristic. */
const nPlusOneSchema = z
  .object({
    /** Development: the same statement from the same call site this often in one request is a finding. */
    devRepeatsMin: z.number().int().min(2).default(2),
    devTotalMsMin: z.number().min(0).default(0),
    /** Production alerts (Sentry-like): at least this many repeats and this much total time in one request. */
    alertRepeatsMin: z.number().int().min(2).default(5),
    alertTotalMsMin: z.number().min(0).default(50),
    /** pg_stat_statements heuristic: a per-key lookup must be called at least this often... */
    statementsChildCallsMin: positiveInt.default(100),
    /** ...its parent list query must return at least this many rows a call on average... */
    statementsParentRowsPerCallMin: z.number().min(1).default(2),
    /** ...and child calls must match parent rows (one lookup per listed row) within this tolerance. */
    statementsCallRatioTolerancePercent: percent.default(25),
  })
  .strict();

/** PostGIS advisor (database area). */
const spatialAdvisorSchema = z
  .object({
    /** Statements with fewer calls than this are not examined. */
    statementCallsMin: z.number().int().min(0).default(1),
    /** A table is hot when the statements touching it have at least this many calls. */
    hotTableCallsMin: z.number().int().min(0).default(100),
    /** Polygons with more vertices than this in hot tables are worth ST_Subdivide. */
    polygonVerticesMax: positiveInt.default(255),
    /** Rows sampled to decide polygon complexity and geography extent. */
    inspectSampleRows: positiveInt.default(5_000),
    /** Geography whose data spans at most this many degrees (both axes) fits one projected SRID. */
    geographyExtentDegreesMax: z.number().positive().default(6),
    /** The scratch table a GiST index is measured on holds at most this many sampled rows. */
    gistSampleRowsMax: positiveInt.default(50_000),
    /** Probe queries per side (without / with the index) of the measurement. */
    gistProbeQueries: positiveInt.default(20),
    /** A GiST index is recommended only if the measured probes got at least this much faster. */
    gistSpeedupRatioMin: z.number().min(1).default(1.5),
    /** ST_Subdivide is recommended only if point probes on the subdivided sample got at least this much faster. */
    subdivideSpeedupRatioMin: z.number().min(1).default(1.2),
    /** Projected geometry is recommended over geography only if ST_DWithin probes got at least this much faster. */
    projectionSpeedupRatioMin: z.number().min(1).default(1.2),
    /** statement_timeout of each scratch build and probe. */
    scratchStatementTimeoutMs: positiveInt.default(120_000),
  })
  .strict();

/** Connection pool sizing and the RDS Proxy change (database area). */
const connectionPoolSchema = z
  .object({
    /** Connections kept out of the budget for people and maintenance (beyond superuser_reserved_connections). */
    reservedConnections: z.number().int().min(0).default(5),
    /** Headroom over the observed peak of active connections. */
    headroomFactor: z.number().min(1).default(1.5),
    /** The application's peak concurrency (Lambda reserved/peak concurrency, or app instances); 0 = unknown. */
    applicationConcurrencyMax: z.number().int().min(0).default(0),
    /** pg_stat_activity samples taken, this far apart, to find the observed peak. */
    activitySamples: positiveInt.default(5),
    activitySampleIntervalMs: z.number().int().min(0).default(200),
    /** A proxy setting is changed only when it moves by at least this many percentage points. */
    proxyChangeMinPoints: percent.default(5),
    /** RDS Proxy target group Perfpilot tunes. */
    proxyTargetGroupName: z.string().min(1).default('default'),
  })
  .strict();

const budgetSchema = z
  .object({
    maxIndexes: z.number().int().min(0).default(5),
    maxIndexBytes: z.number().int().min(0).default(1_073_741_824),
    /** Perfpilot drops only indexes it created unless this is set. */
    mayDropForeignIndexes: z.boolean().default(false),
  })
  .strict();

/** The database area's index advisor, hygiene and verification (issue 4). */
const indexAdvisorSchema = z
  .object({
    /** Only the statements with the most total time are planned; the rest are too cheap to matter. */
    maxStatementsAnalyzed: positiveInt.default(300),
    /** What-if (HypoPG) plans per run (one per constant set); a run over thousands of statements stays inside the Lambda timeout. */
    maxWhatIfPlans: positiveInt.default(6_000),
    /** Columns per candidate index (equality → range → order). */
    maxIndexColumns: z.number().int().min(1).max(3).default(3),
    /** Statements with fewer calls than this are not planned for. */
    minStatementCalls: z.number().int().min(0).default(5),
    /** A selected index must save at least this much time over the stats window, net of its write cost. */
    minSavedMs: z.number().min(0).default(50),
    /**
     * Cost of maintaining one index for one written row. Unset (the default): measured on
     * this database by timed inserts into a scratch table with and without an index of the
     * candidate's columns. Set it only to override the measurement.
     */
    writeCostMsPerRowPerIndex: z.number().min(0).optional(),
    /** Rows sampled from the table into the scratch table of one maintenance-cost measurement... */
    writeCostSampleRows: positiveInt.default(5_000),
    /** ...and the time all such measurements of one run may take (the rest reuse the nearest measured width). */
    writeCostMeasureBudgetMs: positiveInt.default(10_000),
    /** Constant sets (from pg_qualstats and sampled statement texts) each statement is planned with. */
    constantSetsPerStatementMax: z.number().int().min(1).max(20).default(4),
    /** A parameter is a constant predicate (partial index) when at least this many sampled executions all used one value. */
    partialIndexSamplesMin: positiveInt.default(3),
    /** Covering indexes INCLUDE at most this many non-key columns. */
    includeColumnsMax: z.number().int().min(0).max(8).default(3),
    /** BRIN is a candidate for a range-filtered column whose |pg_stats.correlation| is at least this... */
    brinCorrelationMin: z.number().min(0).max(1).default(0.9),
    /** ...on a table of at least this many rows. */
    brinTableRowsMin: z.number().int().min(0).default(100_000),
    /** Verdict: the weighted time of an index's statements plus the writes on its table may rise at most this much. */
    verdictWorkloadSlowdownPercentMax: percent.default(5),
    /**
     * Timeouts of index DDL. Statements that run inside one Lambda invocation (DROP,
     * COMMENT, waiting for a lock) are also cut to the time the function has left; an
     * index build runs on past the invocation that started it (the state machine polls
     * it) and is bounded by statementTimeoutMs and rollout.pendingMaxSeconds.
     */
    lockTimeoutMs: positiveInt.default(5_000),
    statementTimeoutMs: positiveInt.default(1_800_000),
    /** Hygiene: a non-unique index scanned at most this often since the stats reset is unused. */
    unusedIndexMaxScans: z.number().int().min(0).default(50),
    /** Hygiene: an index is judged unused only after this long (since the stats reset, or since Perfpilot built it). */
    unusedIndexMinAgeDays: z.number().min(0).default(7),
    /** Verdict: the statements an index was for must get at least this much faster (measured mean). */
    minMeasuredImprovementPercent: percent.default(10),
    /** Verdict: fewer calls than this since apply is too little evidence to judge an index. */
    verdictMinCalls: z.number().int().min(0).default(20),
  })
  .strict();

/** The caching area: the cache client's knobs and the tuner's evidence thresholds (issue 5). */
const cachingTunerSchema = z
  .object({
    /** Key prefix the application's cache clients use (their `namespace`); the tuner reads stats under it. */
    keyNamespace: z.string().default(''),
    /** The Redis key the active caching policy is mirrored to, polled by the clients. */
    policyRedisKey: z.string().min(1).default('perfpilot:policy:caching'),
    /** Clients re-read the policy this often: the bound on how long a change takes to reach them. */
    policyRefreshSeconds: positiveInt.default(5),
    /** Bounded cost of one observation: at most this many keys sampled with SCAN... */
    keyspaceSampleKeysMax: positiveInt.default(2_000),
    /** ...in SCAN calls of this COUNT. */
    scanCountPerCall: positiveInt.default(200),
    /** Timeout of each Redis command the tuner sends. */
    commandTimeoutMs: positiveInt.default(2_000),
    /** A parameter group still applying an earlier change is retried for this long before the step gives up (and is retried by the state machine). */
    parameterGroupBusyWaitSeconds: z.number().int().min(0).max(600).default(60),
    ttlMinSeconds: positiveInt.default(5),
    ttlMaxSeconds: positiveInt.default(86_400),
    /** One run moves a TTL by at most this factor, up or down. */
    ttlStepFactorMax: z.number().min(1).default(4),
    /** Bounded staleness: a value may have changed during its TTL with at most this probability. */
    staleProbabilityPercentMax: percent.default(10),
    /** Stale serving after the TTL (while one caller refreshes) is at most this fraction of the TTL... */
    staleFractionOfTtl: z.number().min(0).max(1).default(0.2),
    /** ...and at most this long. */
    staleSecondsMax: z.number().int().min(0).default(300),
    /** Cache clients count per time bucket of this width (their `statsBucketSeconds` option must match). */
    statsBucketSeconds: positiveInt.default(300),
    /** Each bucket expires this long after its last write (the clients' `statsRetentionSeconds`). */
    statsRetentionSeconds: positiveInt.default(172_800),
    /** The tuner plans on the buckets of this recent window (rounded out to whole buckets), not on all history. */
    statsWindowSeconds: positiveInt.default(3_600),
    /** A pattern needs this many reads in the stats window before its TTL or admission is changed. */
    minReadsPerPattern: positiveInt.default(200),
    /** ...and this many refreshes of existing values before its change rate is trusted. */
    minRefreshesPerPattern: positiveInt.default(10),
    /** Compression is turned on for a pattern that saves at least this much of its bytes... */
    compressionSavingPercentMin: percent.default(25),
    /** ...at a CPU cost of at most this many microseconds per KiB compressed. */
    compressionCpuMicrosPerKibMax: z.number().positive().default(150),
    /**
     * The eviction policy or an admission rule changes only when simulation says it gains this many hit-rate
     * points, and the interval of that gain (`confidencePercent`) excludes zero.
     */
    hitRateGainPointsMin: z.number().min(0).default(1),
    /** Sampled reads (SHARDS sample of the stats window) below which nothing is simulated. */
    minTraceRequests: positiveInt.default(1_000),
    /** Only where Redis cannot be measured (no sampled key, MEMORY refused): what a key costs besides its value's allocation. */
    perKeyOverheadBytes: z.number().int().min(0).default(90),
    /** Adaptive sampling: the clients' sample rate is raised until a stats window holds this many sampled reads... */
    traceSampledReadsTarget: positiveInt.default(8_000),
    /** ...and the sampled cache (capacity × rate) holds at least this many keys (a tiny simulated cache is biased)... */
    simulatedCapacityKeysMin: positiveInt.default(200),
    /** ...within these bounds (fractions of keys)... */
    traceSampleRateMin: z.number().positive().max(1).default(0.001),
    traceSampleRateMax: z.number().positive().max(1).default(0.5),
    /** ...and within this many bytes of sampled log in Redis (the clients trim the log to fit)... */
    traceLogBytesMax: positiveInt.default(8 * 1_048_576),
    /** ...and this share of maxmemory: the log's memory is the values' memory. */
    traceLogMaxmemoryPercent: z.number().positive().max(50).default(5),
    /**
     * Once every decision is settled (or what is left unsettled would gain less than the bigger log costs the
     * values), the log keeps watching within this share of maxmemory instead.
     */
    traceLogSettledMaxmemoryPercent: z.number().positive().max(50).default(1),
    /** Confidence of the intervals on simulated hit rates (jackknife over `confidenceGroups` key groups). */
    confidencePercent: z.number().min(50).max(99.9).default(95),
    confidenceGroups: z.number().int().min(4).max(50).default(10),
    /** TinyLFU admission: the sketch ages (halves) after this many reads per key the cache holds (TinyLFU's W / C). */
    admissionAgingReadsPerCachedKey: z.number().positive().default(10),
    /** ...and takes at most this many bytes of Redis per pattern (two windows of 4 rows of 4-bit counters). */
    admissionSketchBytesMax: positiveInt.default(262_144),
    /**
     * Replay the sample on a private redis-server (needs the `redis-server` binary: local runs, not Lambda) and,
     * where it and the simulator disagree by more than `validationTolerancePoints`, trust the replay.
     */
    validationReplayEnabled: z.boolean().default(false),
    validationTolerancePoints: z.number().min(0).default(2),
    /** The replay takes at most this many of the sample's most recent requests (per candidate configuration). */
    validationReplayRequestsMax: positiveInt.default(20_000),
    /** lfu-log-factor is raised when more than this share of sampled keys sit at the counter's cap (255). */
    lfuSaturatedPercentMax: percent.default(10),
    /** Warming: keys predicted to be read within this horizon (and expiring before it) are refreshed ahead. */
    warmHorizonSeconds: positiveInt.default(300),
    /** A key is periodic when its inter-arrival times vary by at most this coefficient of variation. */
    periodicCvMax: z.number().min(0).default(0.25),
    warmKeysMax: z.number().int().min(0).default(200),
    /** Verdict: a policy change is reverted when the hit rate since it fell by more than this many points... */
    verdictHitRateDropPointsMax: z.number().min(0).default(5),
    /** ...measured over at least this many reads. */
    verdictMinReads: positiveInt.default(200),
  })
  .strict();

/** The vector area: recall target, the tuner's search, PQ, caches, canary and the search function's memory (issue 14). */
const vectorTunerSchema = z
  .object({
    /** Recall@k the active index must reach on held-out and recent queries. */
    recallTarget: z.number().gt(0).max(1).default(0.95),
    /** The tuner aims this far above the target, so its choice still meets the target on queries it never saw. */
    recallMargin: z.number().min(0).max(0.5).default(0.02),
    /** The k of recall@k, and of the probe searches. */
    recallK: positiveInt.default(10),
    /** ann-benchmarks style recall counts a result within the k-th true distance × (1 + this). */
    recallDistanceEpsilon: z.number().min(0).default(0.001),
    /** The grid the tuner searches (it evaluates a fraction of it: successive halving, then bisection on efSearch). */
    mValues: z.array(z.number().int().min(2).max(96)).min(1).default([8, 12, 16, 24, 32, 48]),
    efConstructionValues: z.array(z.number().int().min(8)).min(1).default([64, 128, 200, 400]),
    efSearchMin: positiveInt.default(10),
    efSearchMax: positiveInt.default(512),
    /** Successive halving: builds of the first round (sampled from the grid), and the fraction kept each round. */
    initialBuilds: positiveInt.default(6),
    halvingKeepFraction: z.number().gt(0).lt(1).default(0.5),
    /** Vectors of the first round's builds; each round doubles it up to the whole dataset. */
    firstRoundVectors: positiveInt.default(5_000),
    /** Held-out queries for ground truth and recall (recent recorded queries first, then held-out dataset vectors). */
    probeQueries: positiveInt.default(200),
    /** Candidates whose latencies differ by less than this are tied; the one needing less memory, then less build time, wins. */
    latencyTiePercent: percent.default(5),
    /** Each latency is the median of this many passes over the probe queries. */
    latencyPasses: positiveInt.default(3),
    /**
     * One build in one Lambda step: at most this many vectors (a 100k × 384 build at M=48, efC=400 takes minutes
     * on one vCPU; see functions/vector/README.md for what runs where).
     */
    buildVectorsMax: positiveInt.default(200_000),
    /** The tuner's budget in the plan step; in Lambda the step's deadline (its 5-minute timeout) also bounds it, with room for the final builds and upload. */
    tuneSecondsMax: positiveInt.default(600),
    /** The search function's memory (Lambda memorySize), what an index must fit in. */
    searchFunctionMemoryMiB: z.number().int().min(128).max(10_240).default(1_024),
    /** What the search runtime takes before any index (Node, SDK, the wasm module). */
    runtimeBaselineMiB: positiveInt.default(160),
    memoryHeadroomPercent: percent.default(20),
    /** PQ: code bytes per vector are dimensions ÷ this (e.g. 4 → 32 B for 128 dims, 16× smaller than float32). */
    pqDimensionsPerSubspace: positiveInt.default(4),
    pqRerankFactor: positiveInt.default(10),
    pqTrainIterations: positiveInt.default(8),
    pqTrainSampleMax: positiveInt.default(10_000),
    /** Result cache: entries live this long; the index version is part of every key. */
    resultCacheTtlSeconds: positiveInt.default(300),
    embeddingCacheTtlSeconds: positiveInt.default(86_400),
    /** Query coordinates are rounded to this step for the result-cache key (near-identical queries share an entry). */
    queryQuantizationStep: z.number().positive().default(0.0001),
    /** Fraction of live queries recorded (for the drift probe and re-tuning), and how many are kept. */
    querySampleRate: z.number().min(0).max(1).default(0.05),
    querySampleMax: positiveInt.default(2_000),
    /** The canary stage serves this fraction of queries from the new version. */
    canaryTrafficFraction: z.number().gt(0).lt(1).default(0.1),
    /** Search runtimes re-read the policy this often. */
    policyRefreshSeconds: positiveInt.default(10),
    /** Stats buckets the search runtime writes (latency histogram, errors, count), and the window `snapshot` reads. */
    statsBucketSeconds: positiveInt.default(60),
    statsRetentionSeconds: positiveInt.default(86_400),
    /** A re-tuned index replaces one that still meets the target only if it is at least this much faster (mean latency, same probe). */
    latencyImprovementPercentMin: percent.default(10),
    /** The guardrail probe after the canary: this many recent queries against the new version. */
    guardProbeQueries: positiveInt.default(100),
    /** Seed of every random choice (builds, samples). */
    seed: z.number().int().min(0).default(1),
  })
  .strict()
  .refine((t) => t.efSearchMin <= t.efSearchMax, { message: 'efSearchMin must not exceed efSearchMax', path: ['efSearchMin'] });

/** The realtime area: the delivery runtime's knobs and the tuner's evidence thresholds (issue 10). */
const realtimeTunerSchema = z
  .object({
    /** Prefix of every Redis key of the delivery runtime (streams, registry, stats). */
    keyPrefix: z.string().min(1).default('perfpilot:rt:'),
    /** The Redis key the active realtime policy is mirrored to, read by publishers and dispatchers. */
    policyRedisKey: z.string().min(1).default('perfpilot:policy:realtime'),
    /** Runtimes re-read the policy this often: the bound on how long a change takes to reach them. */
    policyRefreshSeconds: positiveInt.default(5),
    /** Timeout of each Redis command the runtime and the tuner send. */
    commandTimeoutMs: positiveInt.default(2_000),
    /**
     * How events of each type fold into a topic's state (event type → latest | merge | sum);
     * a type not named is `latest`. Published with every realtime policy.
     */
    coalesceRules: z.record(z.string().min(1).max(64), z.enum(['latest', 'merge', 'sum'])).default({}),
    /** The batching window of a topic without a policy, and the bounds the tuner keeps to. */
    windowMsDefault: z.number().int().min(0).default(25),
    windowMsMin: z.number().int().min(0).default(10),
    windowMsMax: positiveInt.default(1_000),
    /** A window is changed only when the plan moves it by at least this share (and 5 ms): measurements are noisy. */
    windowChangePercentMin: percent.default(20),
    /** One run moves a window by at most this factor, up or down. */
    windowStepFactorMax: z.number().min(1).default(4),
    /** A flush also happens early once this many events are buffered on a topic (the policy's default). */
    batchMaxEventsDefault: positiveInt.default(1_000),
    batchMaxEventsMin: positiveInt.default(16),
    batchMaxEventsMax: positiveInt.default(10_000),
    /** Part of the latency target kept free for what the tuner cannot see coming (bursts, throttling). */
    latencyHeadroomPercent: percent.default(20),
    /** A window is not widened for less than this many percent fewer posts (a wider window costs latency). */
    postsSlackPercent: percent.default(5),
    /** A topic needs this many acknowledged deliveries in the stats window before its window is changed. */
    minAcksPerTopic: positiveInt.default(30),
    /** Runtimes count per time bucket of this width; each bucket expires after the retention. */
    statsBucketSeconds: positiveInt.default(60),
    statsRetentionSeconds: positiveInt.default(86_400),
    /** The tuner plans on the buckets of this recent window. */
    statsWindowSeconds: positiveInt.default(900),
    /** Messages at least this large are tried compressed (deflate-raw, base64 text)... */
    compressionMinBytes: z.number().int().min(0).default(1_024),
    /** ...and sent compressed only when that saves at least this much of their bytes. */
    compressionSavingPercentMin: percent.default(20),
    /** API Gateway bills and frames messages in units of this size: updates are packed into messages no larger. */
    frameBytesMax: z.number().int().min(1_024).max(32_768).default(32_768),
    /** Concurrent PostToConnection calls of one dispatcher. */
    postConcurrencyMax: positiveInt.default(32),
    /** A throttled post (429) is retried this often, backing off exponentially from the base delay up to the cap. */
    postRetriesMax: z.number().int().min(0).default(8),
    retryBaseDelayMs: positiveInt.default(50),
    retryMaxDelayMs: positiveInt.default(2_000),
    /**
     * The tuner keeps the dispatcher posting at most this share of the time, at the post rate it
     * measured: a window so short that posts queue up makes every delivery late.
     */
    dispatcherUtilizationPercentMax: percent.default(70),
    /** Deliveries of one flush that ask their client for an acknowledgement (the latency samples), at most. */
    ackSamplesPerFlush: z.number().int().min(0).default(4),
    /** A dispatcher holds its lease this long without renewing it before another may take over. */
    dispatcherLeaseSeconds: positiveInt.default(10),
    /** A dispatcher with nothing pending for this long returns. */
    dispatcherIdleMs: positiveInt.default(2_000),
    /** A dispatcher invocation hands over to a fresh one after this long (inside the function timeout). */
    dispatcherRunSecondsMax: positiveInt.default(60),
    /** How often an idle-waiting dispatcher looks for early flushes (batch full). */
    dispatcherTickMs: positiveInt.default(10),
    /** A connection's registry entry expires after API Gateway's maximum connection duration. */
    connectionTtlSeconds: positiveInt.default(7_200),
    /** Verdict: a window change is reverted when p95 delivery since it exceeds the target by more than this... */
    verdictLatencyOverTargetPercentMax: z.number().min(0).default(10),
    /** ...or when posts per event rose by more than this... */
    verdictPostsRisePercentMax: z.number().min(0).default(10),
    /** ...judged over at least this many acknowledged deliveries. */
    verdictMinAcks: positiveInt.default(30),
  })
  .strict()
  .refine((t) => t.windowMsMin <= t.windowMsMax && t.batchMaxEventsMin <= t.batchMaxEventsMax, {
    message: 'windowMsMin must not exceed windowMsMax, nor batchMaxEventsMin batchMaxEventsMax',
  });

/** `npm run test:performance-validation`: a run of the standard mix against a saved baseline (the seed plan's criteria). */
const performanceValidationSchema = z
  .object({
    /** p95 request latency may rise by less than this against the baseline... */
    p95DegradationPercentMax: z.number().min(0).default(10),
    /** ...throughput must stay at or above this share of the baseline's... */
    throughputRatioPercentMin: percent.default(90),
    /** ...and the error rate may rise by less than this many percentage points. */
    errorRateIncreasePointsMax: percent.default(2),
  })
  .strict();

/** How functions in the VPC reach the AWS APIs they call. */
export const AWS_API_ACCESS = ['nat', 'create-endpoints', 'existing-endpoints'] as const;

const vpcSchema = z
  .object({
    vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, { message: 'expected a VPC id such as vpc-0abc123' }),
    privateSubnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/)).min(1),
    securityGroupIds: z.array(z.string().regex(/^sg-[0-9a-f]+$/)).min(1),
    availabilityZones: z.array(z.string().min(1)).min(1),
    /**
     * How the functions in these subnets reach DynamoDB, CloudWatch, Secrets Manager,
     * ElastiCache and RDS: `nat` (the subnets route to a NAT gateway), `create-endpoints`
     * (Perfpilot creates the VPC endpoints they need) or `existing-endpoints` (the VPC
     * has them, with private DNS). There is no default: without a way out the functions
     * time out on their first AWS call.
     */
    awsApiAccess: z.enum(AWS_API_ACCESS, {
      error: () =>
        'say how functions in this VPC reach the AWS APIs: "nat", "create-endpoints" or "existing-endpoints" (a VPC with neither a NAT gateway nor endpoints cannot reach DynamoDB, CloudWatch or Secrets Manager)',
    }),
    /** Route tables of the private subnets, for the DynamoDB gateway endpoint (with create-endpoints). */
    privateRouteTableIds: z.array(z.string().regex(/^rtb-[0-9a-f]+$/)).min(1).optional(),
  })
  .strict()
  .refine((v) => v.awsApiAccess !== 'create-endpoints' || v.privateRouteTableIds !== undefined, {
    message: 'create-endpoints needs privateRouteTableIds (the DynamoDB gateway endpoint is a route in them)',
    path: ['privateRouteTableIds'],
  });

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    $comment: z.string().optional(),
    /** Names the stacks, table and metric namespace. */
    name: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,39}$/).default('perfpilot'),
    targets: z
      .object({
        caching: cachingTargetSchema,
        database: databaseTargetSchema,
        realtime: realtimeTargetSchema.prefault({}),
        vector: vectorTargetSchema.prefault({}),
      })
      .strict(),
    areas: z
      .object({
        caching: areaScheduleSchema.default({ enabled: true, schedule: 'rate(1 hour)' }),
        realtime: areaScheduleSchema.default({ enabled: true, schedule: 'rate(1 hour)' }),
        database: areaScheduleSchema.default({ enabled: true, schedule: 'rate(1 day)' }),
        vector: areaScheduleSchema.default({ enabled: true, schedule: 'rate(1 day)' }),
      })
      .strict()
      .prefault({}),
    rollout: rolloutSchema.prefault({}),
    kpis: kpiSchema.prefault({}),
    alerts: alertSchema.prefault({}),
    rollbackCriteria: rollbackCriteriaSchema.prefault({}),
    budgets: budgetSchema.prefault({}),
    nPlusOne: nPlusOneSchema.prefault({}),
    spatialAdvisor: spatialAdvisorSchema.prefault({}),
    connectionPool: connectionPoolSchema.prefault({}),
    indexAdvisor: indexAdvisorSchema.prefault({}),
    cachingTuner: cachingTunerSchema.prefault({}),
    vectorTuner: vectorTunerSchema.prefault({}),
    realtimeTuner: realtimeTunerSchema.prefault({}),
    performanceValidation: performanceValidationSchema.prefault({}),
    ledger: z
      .object({
        /**
         * Where the local ledger (dynalite) keeps its data between CLI runs. A relative
         * path is resolved against the config file's folder, so every command that reads
         * the same config finds the same ledger, wherever it is run from.
         */
        localDataDir: z.string().min(1).default('.perfpilot/ledger'),
        /**
         * The local ledger server (one per ledger folder, shared by every CLI process) exits
         * after this long without a request; attached processes keep it alive meanwhile.
         */
        localServerIdleSeconds: positiveInt.default(600),
        /**
         * A local rollback waits at most this long for a running rollout (in another
         * process) to stop and say so, before reverting anyway.
         */
        localStopWaitSeconds: positiveInt.default(60),
      })
      .strict()
      .prefault({}),
    vpc: vpcSchema.optional(),
    /** Receives rollback notifications (SNS). */
    notificationEmail: z.email().optional(),
  })
  .strict();

export type PerfpilotConfig = z.infer<typeof configSchema>;
export type RollbackCriteria = PerfpilotConfig['rollbackCriteria'];
export type AlertThresholds = PerfpilotConfig['alerts'];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly issues: readonly string[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? issue.path.map(String).join('.') : '(root)';
  return `${where}: ${issue.message}`;
}

/** Validates an already-parsed config object; `source` names it in errors. */
export function parseConfig(raw: unknown, source = 'config'): PerfpilotConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issues = result.error.issues.map(describeIssue);
    throw new ConfigError(`${source} is invalid:\n  - ${issues.join('\n  - ')}`, issues);
  }
  return result.data;
}

/** Reads and validates a JSON config file. */
export function loadConfig(path = DEFAULT_CONFIG_FILE): PerfpilotConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read config file ${file}: ${(cause as Error).message}`, [], { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(cause as Error).message}`, [], { cause });
  }
  const config = parseConfig(raw, file);
  const { localDataDir } = config.ledger;
  return isAbsolute(localDataDir) ? config : { ...config, ledger: { ...config.ledger, localDataDir: resolve(dirname(file), localDataDir) } };
}

/**
 * In Lambda the config travels as one JSON environment variable, validated at cold
 * start so a bad deployment fails loudly instead of tuning with silent defaults.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): PerfpilotConfig {
  const text = env.PERFPILOT_CONFIG;
  if (!text) throw new ConfigError('environment variable PERFPILOT_CONFIG is not set');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`PERFPILOT_CONFIG is not valid JSON: ${(cause as Error).message}`, [], { cause });
  }
  return parseConfig(raw, 'PERFPILOT_CONFIG');
}
