/**
 * Folding events into a topic's state. A topic's state is `{ [eventType]: { [entityKey]: value } }`;
 * each event type folds by its rule:
 * - `latest`: the last value per entity key wins (`null` removes the key);
 * - `merge`: the event's fields are merged into the entity's object (shallow; `null` removes the key);
 * - `sum`: numeric values per entity key add up.
 * Whatever number of events arrive in a window, clients receive the folded result once.
 */
import type { CoalesceRule } from './policy.ts';

export interface RealtimeEvent {
  /** Selects the coalescing rule, e.g. `position`, `status`, `count`. */
  readonly type: string;
  /** The entity the event is about, e.g. a vehicle id. */
  readonly key: string;
  readonly data: unknown;
}

export type TopicState = Record<string, Record<string, unknown>>;

export class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
}

export function assertEvent(event: unknown, where = 'event'): asserts event is RealtimeEvent {
  const e = event as Partial<RealtimeEvent> | null;
  if (!e || typeof e !== 'object') throw new InvalidEventError(`${where}: expected { type, key, data }`);
  if (typeof e.type !== 'string' || e.type.length === 0 || e.type.length > 64) throw new InvalidEventError(`${where}.type: expected a string of 1 to 64 characters`);
  if (typeof e.key !== 'string' || e.key.length === 0 || e.key.length > 256) throw new InvalidEventError(`${where}.key: expected a string of 1 to 256 characters`);
  if (!('data' in e)) throw new InvalidEventError(`${where}.data: missing (use null to remove the entity)`);
}

/** Folds `events` (oldest first) into a copy of `state`; `state` is not changed. */
export function coalesce(state: TopicState, events: readonly RealtimeEvent[], rules: Readonly<Record<string, CoalesceRule>>): TopicState {
  const next: TopicState = { ...state };
  const copied = new Set<string>();
  for (const event of events) {
    const rule = rules[event.type] ?? 'latest';
    if (!copied.has(event.type)) {
      next[event.type] = { ...(next[event.type] ?? {}) };
      copied.add(event.type);
    }
    const entities = next[event.type]!;
    if (event.data === null && rule !== 'sum') {
      delete entities[event.key];
      continue;
    }
    if (rule === 'latest') {
      entities[event.key] = event.data;
    } else if (rule === 'merge') {
      const previous = entities[event.key];
      const base = previous && typeof previous === 'object' && !Array.isArray(previous) ? previous : {};
      const fields = event.data && typeof event.data === 'object' && !Array.isArray(event.data) ? event.data : { value: event.data };
      const merged: Record<string, unknown> = { ...base };
      for (const [k, v] of Object.entries(fields)) {
        if (v === null) delete merged[k];
        else merged[k] = v;
      }
      entities[event.key] = merged;
    } else {
      const add = Number(event.data);
      if (!Number.isFinite(add)) throw new InvalidEventError(`event ${event.type}/${event.key}: a sum event needs numeric data, got ${JSON.stringify(event.data)?.slice(0, 40)}`);
      entities[event.key] = (typeof entities[event.key] === 'number' ? (entities[event.key] as number) : 0) + add;
    }
  }
  for (const type of copied) if (Object.keys(next[type]!).length === 0) delete next[type];
  return next;
}
