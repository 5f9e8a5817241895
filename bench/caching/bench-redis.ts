/**
 * The arguments every private redis-server of the caching bench starts with, baselines
 * and tuned run alike (and the test that holds the simulator to a real Redis).
 *
 * `latency-tracking no`: Redis 7 allocates ~25 KB of latency histograms the first time
 * each command type runs. The tuner's observer and the client's admission send a dozen
 * types the baselines never do, after the budget is set, so at the bench's MB-scale
 * `maxmemory` the tuned run's values had 9–16% less memory (issue 11). Production caches
 * are GB-scale and do not feel this fixed cost; off everywhere, every server is equal.
 */
export const BENCH_REDIS_ARGS: readonly string[] = ['--latency-tracking', 'no'];

/** What the bench's header says about it. */
export const BENCH_REDIS_NOTE =
  'every private redis-server with latency-tracking no (Redis 7 allocates ~25 KB per command type on first use: a fixed cost only an MB-scale budget feels, and the tuner sends types the baselines do not)';
