/**
 * The ledger table's shape, in one place for the CDK stack and the local runtime.
 *
 * One table, items told apart by key prefix:
 *   ROLLOUT#<id> / META                      a rollout       gsi1: AREA#<area>    / R#<startedAt>#<id>
 *   ROLLOUT#<id> / CHANGE#<seq>              a change        gsi1: CHANGES#<area> / <createdAt>#<changeId>
 *   LOCK#<area>  / LOCK                      the area lock   (owner, expiresAtEpoch)
 *   POLICY#<area> / ACTIVE                   pointer to the active policy version
 *   POLICY#<area> / V#<version, 8 digits>    a policy version (immutable)
 *   AREA#<area>  / STATE                     circuit breaker (consecutive failures, disabled)
 *   EVENT#<id>   / EVENT                     a processed alarm event (idempotency), expires
 * gsi1 answers "recent rollouts of an area" and "recent changes of an area".
 */
export const LEDGER_TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  gsi1: { indexName: 'gsi1', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
  /** DynamoDB TTL attribute (epoch seconds) for items that may vanish: processed events. */
  ttlAttribute: 'ttl',
} as const;

export const AREA_NAMES_WITH_TEST = ['caching', 'realtime', 'database', 'vector', 'test'] as const;
