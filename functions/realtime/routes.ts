/**
 * The WebSocket routes' cores, the same in Lambda (connect/disconnect/default
 * handlers) and behind the local gateway:
 * - `$connect` registers the connection; `$disconnect` removes it from every topic;
 * - `$default` carries the client's messages: `subscribe` (answered with each topic's
 *   full state and sequence number), `unsubscribe`, `resync` (full state again, after a
 *   gap) and `ack` (the delivery latency samples the tuner plans on).
 * A bad message is answered 400 with what was wrong; the connection stays open.
 */
import type { Redis } from 'ioredis';
import { assertTopic, realtimeKeys } from '#sdk/realtime/keys';
import type { ClientMessage, FullUpdate } from '#sdk/realtime/protocol';
import type { DeliveryStatsRecorder } from '#sdk/realtime/stats';
import { classifyPostError, type ConnectionPoster } from './connection-poster.ts';
import type { RealtimeTuning } from './dispatcher.ts';
import { buildMessages, encodeUpdate } from './packing.ts';
import type { ConnectionRegistry } from './registry.ts';

export interface RouteDeps {
  readonly redis: Redis;
  readonly registry: ConnectionRegistry;
  readonly poster: ConnectionPoster;
  readonly stats: DeliveryStatsRecorder;
  readonly tuning: RealtimeTuning;
  readonly now?: () => number;
  /** Each acknowledged delivery's latencies, for the EMF metrics in AWS (delivery-metrics.ts). */
  readonly onLatency?: (sample: { readonly afterFlushMs: number; readonly endToEndMs?: number }) => void;
}

/** The part of an API Gateway WebSocket event the routes read. */
export interface RouteEvent {
  readonly requestContext: { readonly connectionId: string; readonly routeKey: string };
  readonly body?: string | null;
  readonly isBase64Encoded?: boolean;
}

export interface RouteResponse {
  readonly statusCode: number;
  readonly body?: string;
}

/** Topics one `subscribe` may name. */
export const SUBSCRIBE_TOPICS_MAX = 100;

export class BadClientMessageError extends Error {
  override readonly name = 'BadClientMessageError';
}

export async function handleConnect(deps: RouteDeps, event: RouteEvent): Promise<RouteResponse> {
  await deps.registry.connect(event.requestContext.connectionId, (deps.now ?? Date.now)());
  return { statusCode: 200 };
}

export async function handleDisconnect(deps: RouteDeps, event: RouteEvent): Promise<RouteResponse> {
  await deps.registry.remove(event.requestContext.connectionId);
  return { statusCode: 200 };
}

export function parseClientMessage(body: string | null | undefined): ClientMessage {
  let m: Partial<Record<string, unknown>>;
  try {
    m = JSON.parse(body ?? '') as Partial<Record<string, unknown>>;
  } catch {
    throw new BadClientMessageError('message body: expected JSON such as {"action":"subscribe","topics":["fleet:positions"]}');
  }
  if (!m || typeof m !== 'object') throw new BadClientMessageError('message body: expected a JSON object with an action');
  switch (m.action) {
    case 'subscribe':
    case 'unsubscribe': {
      if (!Array.isArray(m.topics) || m.topics.length === 0 || m.topics.length > SUBSCRIBE_TOPICS_MAX) {
        throw new BadClientMessageError(`${m.action}.topics: expected 1 to ${SUBSCRIBE_TOPICS_MAX} topic names`);
      }
      m.topics.forEach((t, i) => {
        try {
          assertTopic(t, `${m.action}.topics[${i}]`);
        } catch (error) {
          throw new BadClientMessageError((error as Error).message);
        }
      });
      return { action: m.action, topics: m.topics as string[] };
    }
    case 'resync':
      try {
        assertTopic(m.topic, 'resync.topic');
      } catch (error) {
        throw new BadClientMessageError((error as Error).message);
      }
      return { action: 'resync', topic: m.topic as string };
    case 'ack':
      if (typeof m.t !== 'string' || typeof m.s !== 'number' || typeof m.f !== 'number' || (m.p !== undefined && typeof m.p !== 'number')) {
        throw new BadClientMessageError('ack: expected { t: topic, s: seq, f: flush time, p?: publish time }');
      }
      return { action: 'ack', t: m.t, s: m.s, f: m.f, ...(typeof m.p === 'number' ? { p: m.p } : {}) };
    default:
      throw new BadClientMessageError(`action: expected subscribe, unsubscribe, resync or ack, got ${JSON.stringify(m.action)?.slice(0, 40)}`);
  }
}

/** Sends the topics' current full states (one packed message or a few) to one connection. */
export async function sendFullStates(deps: RouteDeps, connectionId: string, topics: readonly string[]): Promise<void> {
  const keys = realtimeKeys(deps.tuning.keyPrefix);
  const pipe = deps.redis.pipeline();
  for (const t of topics) pipe.hmget(keys.topic(t), 'seq', 'state');
  const rows = (await pipe.exec()) ?? [];
  const now = (deps.now ?? Date.now)();
  const updates = topics.map((t, i) => {
    const [seq, state] = (rows[i]?.[1] as [string | null, string | null] | undefined) ?? [null, null];
    const full: FullUpdate = { t, s: Number(seq ?? 0), k: 'f', d: state ? JSON.parse(state) : {}, f: now };
    return encodeUpdate(full);
  });
  for (const m of buildMessages(updates, deps.tuning)) {
    try {
      await deps.poster.post(connectionId, m.text);
      deps.stats.count('*', 'posts');
      deps.stats.count('*', 'bytes', m.bytes);
      deps.stats.count('*', 'units', Math.max(1, Math.ceil(m.bytes / deps.tuning.frameBytesMax)));
    } catch (error) {
      const kind = classifyPostError(error);
      if (kind === 'gone') {
        deps.stats.count('*', 'gone');
        await deps.registry.remove(connectionId);
        return;
      }
      // The client sees no full state and asks again; the dispatcher also resyncs it on the next flush.
      deps.stats.count('*', kind === 'throttled' ? 'throttled' : 'failed');
      const m2 = deps.redis.multi();
      for (const t of topics) m2.sadd(keys.resync(t), connectionId);
      await m2.exec();
      return;
    }
  }
}

export async function handleDefault(deps: RouteDeps, event: RouteEvent): Promise<RouteResponse> {
  const connectionId = event.requestContext.connectionId;
  const body = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  let message: ClientMessage;
  try {
    message = parseClientMessage(body);
  } catch (error) {
    if ((error as Error).name !== 'BadClientMessageError') throw error;
    return { statusCode: 400, body: (error as Error).message };
  }
  try {
    switch (message.action) {
      case 'subscribe':
        await deps.registry.subscribe(connectionId, message.topics);
        await sendFullStates(deps, connectionId, message.topics);
        return { statusCode: 200 };
      case 'unsubscribe':
        await deps.registry.unsubscribe(connectionId, message.topics);
        return { statusCode: 200 };
      case 'resync':
        if (!(await deps.registry.isSubscribed(connectionId, message.topic))) return { statusCode: 400, body: `resync.topic: not subscribed to ${message.topic}` };
        for (const t of [message.topic]) deps.stats.count(t, 'resyncs');
        await sendFullStates(deps, connectionId, [message.topic]);
        return { statusCode: 200 };
      case 'ack': {
        const now = (deps.now ?? Date.now)();
        deps.stats.count(message.t, 'acks');
        const afterFlushMs = Math.max(0, now - message.f);
        deps.stats.observe(message.t, 'ovh', afterFlushMs);
        const endToEndMs = message.p !== undefined ? Math.max(0, now - message.p) : undefined;
        if (endToEndMs !== undefined) deps.stats.observe(message.t, 'lat', endToEndMs);
        deps.onLatency?.({ afterFlushMs, ...(endToEndMs !== undefined ? { endToEndMs } : {}) });
        return { statusCode: 200 };
      }
    }
  } finally {
    await deps.stats.flush();
  }
}
