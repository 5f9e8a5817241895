/**
 * Posting packed messages to connections: bounded concurrency across connections, one
 * connection's messages strictly in order. A throttled post (429) backs off
 * exponentially with jitter and is retried before the next message of that connection,
 * so nothing is reordered; a connection that stays throttled past `postRetriesMax`, or
 * fails otherwise, is left for a full-state resync on the next flush (its client also
 * sees the gap), so nothing is lost for good. 410 marks the connection gone.
 */
import { classifyPostError, type ConnectionPoster } from './connection-poster.ts';
import type { PackedMessage } from './packing.ts';

export interface DeliveryItem {
  readonly connectionId: string;
  readonly messages: readonly PackedMessage[];
}

export interface DeliveryOptions {
  readonly postConcurrencyMax: number;
  readonly postRetriesMax: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly frameBytesMax: number;
}

export interface DeliveryOutcome {
  posts: number;
  bytes: number;
  /** 32 KB billing units. */
  units: number;
  /** Throttled attempts (each retried or given up on). */
  throttled: number;
  readonly gone: string[];
  /** Connections not fully served, with the topics of the messages they missed. */
  readonly failed: { readonly connectionId: string; readonly topics: readonly string[]; readonly reason: string }[];
  /** Per topic: bytes sent, shared out by the topics of each message. */
  readonly topicBytes: Map<string, number>;
}

export interface DeliveryDeps {
  readonly poster: ConnectionPoster;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export async function deliver(items: readonly DeliveryItem[], o: DeliveryOptions, deps: DeliveryDeps): Promise<DeliveryOutcome> {
  const out: DeliveryOutcome = { posts: 0, bytes: 0, units: 0, throttled: 0, gone: [], failed: [], topicBytes: new Map() };
  const random = deps.random ?? Math.random;
  let next = 0;

  const serve = async (item: DeliveryItem) => {
    for (const [index, message] of item.messages.entries()) {
      for (let attempt = 0; ; attempt++) {
        try {
          await deps.poster.post(item.connectionId, message.text);
          out.posts++;
          out.bytes += message.bytes;
          out.units += Math.max(1, Math.ceil(message.bytes / o.frameBytesMax));
          for (const t of message.topics) out.topicBytes.set(t, (out.topicBytes.get(t) ?? 0) + message.bytes / message.topics.length);
          break;
        } catch (error) {
          const kind = classifyPostError(error);
          if (kind === 'gone') {
            out.gone.push(item.connectionId);
            return;
          }
          if (kind === 'throttled') out.throttled++;
          if (kind !== 'throttled' || attempt >= o.postRetriesMax) {
            const missed = new Set(item.messages.slice(index).flatMap((m) => m.topics));
            out.failed.push({ connectionId: item.connectionId, topics: [...missed], reason: `${kind}: ${(error as Error).message}` });
            return;
          }
          // Full jitter on an exponential step, capped.
          const step = Math.min(o.retryMaxDelayMs, o.retryBaseDelayMs * 2 ** attempt);
          await deps.sleep(step / 2 + (random() * step) / 2);
        }
      }
    }
  };

  const worker = async () => {
    while (next < items.length) await serve(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(o.postConcurrencyMax, items.length) }, worker));
  return out;
}
