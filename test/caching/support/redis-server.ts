/** The private redis-server the tuner's validation replay uses, for tests and benchmarks. */
export { startPrivateRedis, type PrivateRedis } from '#functions/caching/private-redis';
