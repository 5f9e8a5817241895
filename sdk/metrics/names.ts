/**
 * The names application metrics are published under, apart from the publisher
 * (index.ts) so that the alarms that name them load no Powertools.
 */

/** The `service` dimension of application metrics (Powertools always sets one; alarms name it). */
export const APPLICATION_SERVICE = 'application';
export const APPLICATION_METRICS = { latency: 'Latency', errorRate: 'ErrorRate', throughput: 'Throughput' } as const;
