/**
 * The client half of realtime delivery, for browsers and Node: decodes the
 * dispatcher's messages, applies JSON Patch deltas to each topic's state, detects
 * gaps by sequence number and asks for a resync (full state) when one does not fill
 * within `reorderWaitMs`. Transport-agnostic: give it `send`, feed it `receive(text)`,
 * or use `attachRealtimeClient(socket)` with a browser WebSocket or a `ws` socket.
 *
 * Recovery follows centrifuge's stream positions: an update older than what the
 * client has is ignored, the next one is applied, a later one waits briefly for the
 * ones before it (reordering), then the client resyncs. The state a client holds is
 * therefore always one the server sent at some sequence number.
 */
import jsonpatch from 'fast-json-patch';
import { decodeMessage, type ChunkUpdate, type ClientMessage, type FullUpdate, type PatchUpdate, type Update } from './protocol.ts';

export interface UpdateInfo {
  readonly seq: number;
  readonly kind: 'patch' | 'full';
  /** Publish time of the oldest event in the update (server clock, epoch ms). */
  readonly publishedAt?: number;
  readonly flushedAt: number;
  readonly receivedAt: number;
}

export interface RealtimeClientOptions {
  readonly send: (text: string) => void;
  /** How long an update that arrived early waits for the ones before it before the client resyncs. @default 250 */
  readonly reorderWaitMs?: number;
  /** A resync that got no full state within this long is asked again. @default 2000 */
  readonly resyncRetryMs?: number;
  /**
   * A subscription that got no full state within this long is asked again (the route
   * that answers it may have failed: a cold start, a Redis timeout), the wait doubling
   * up to 30 s, until the topic's first full state arrives. @default 3000
   */
  readonly subscribeRetryMs?: number;
  readonly now?: () => number;
  /** After each applied update; `state` is the client's live state of the topic (do not mutate it). */
  readonly onUpdate?: (topic: string, state: unknown, info: UpdateInfo) => void;
  readonly onError?: (error: Error) => void;
}

export interface RealtimeClientStats {
  messages: number;
  bytes: number;
  patches: number;
  fulls: number;
  duplicates: number;
  gaps: number;
  resyncRequests: number;
  subscribeRetries: number;
  acks: number;
}

interface TopicView {
  seq: number | undefined;
  state: unknown;
  readonly held: Map<number, PatchUpdate | FullUpdate>;
  readonly chunks: Map<number, string[]>;
  gapTimer: ReturnType<typeof setTimeout> | undefined;
  resyncAskedAt: number | undefined;
  subscribeTimer: ReturnType<typeof setTimeout> | undefined;
}

export class RealtimeClient {
  readonly stats: RealtimeClientStats = { messages: 0, bytes: 0, patches: 0, fulls: 0, duplicates: 0, gaps: 0, resyncRequests: 0, subscribeRetries: 0, acks: 0 };
  private readonly topics = new Map<string, TopicView>();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly reorderWaitMs: number;
  private readonly resyncRetryMs: number;
  private readonly subscribeRetryMs: number;
  private readonly now: () => number;

  constructor(private readonly options: RealtimeClientOptions) {
    this.reorderWaitMs = options.reorderWaitMs ?? 250;
    this.resyncRetryMs = options.resyncRetryMs ?? 2_000;
    this.subscribeRetryMs = options.subscribeRetryMs ?? 3_000;
    this.now = options.now ?? Date.now;
  }

  subscribe(topics: readonly string[]): void {
    for (const t of topics) this.awaitFirstState(t, this.view(t), this.subscribeRetryMs);
    this.send({ action: 'subscribe', topics });
  }

  /** Asks again for a topic whose subscription brought no full state yet. */
  private awaitFirstState(topic: string, v: TopicView, waitMs: number): void {
    if (v.subscribeTimer) clearTimeout(v.subscribeTimer);
    v.subscribeTimer = setTimeout(() => {
      v.subscribeTimer = undefined;
      if (this.closed || v.seq !== undefined || this.topics.get(topic) !== v) return;
      this.stats.subscribeRetries++;
      this.awaitFirstState(topic, v, Math.min(waitMs * 2, 30_000));
      this.send({ action: 'subscribe', topics: [topic] });
    }, waitMs);
    v.subscribeTimer.unref?.();
  }

  unsubscribe(topics: readonly string[]): void {
    this.send({ action: 'unsubscribe', topics });
    for (const t of topics) {
      const v = this.topics.get(t);
      if (v?.gapTimer) clearTimeout(v.gapTimer);
      if (v?.subscribeTimer) clearTimeout(v.subscribeTimer);
      this.topics.delete(t);
    }
  }

  /** The topic's state as last applied (undefined before the first full state). */
  state<T = unknown>(topic: string): T | undefined {
    return this.topics.get(topic)?.state as T | undefined;
  }

  seq(topic: string): number | undefined {
    return this.topics.get(topic)?.seq;
  }

  /** Feeds one message; messages are processed in the order given. Resolves when this one is applied. */
  receive(text: string): Promise<void> {
    const receivedAt = this.now();
    this.chain = this.chain.then(() => this.process(text, receivedAt)).catch((error: Error) => this.options.onError?.(error));
    return this.chain;
  }

  /** Resolves when every message received so far is processed. */
  idle(): Promise<void> {
    return this.chain;
  }

  close(): void {
    this.closed = true;
    for (const v of this.topics.values()) {
      if (v.gapTimer) clearTimeout(v.gapTimer);
      if (v.subscribeTimer) clearTimeout(v.subscribeTimer);
    }
  }

  private send(message: ClientMessage): void {
    if (!this.closed) this.options.send(JSON.stringify(message));
  }

  private view(topic: string): TopicView {
    let v = this.topics.get(topic);
    if (!v) {
      v = { seq: undefined, state: undefined, held: new Map(), chunks: new Map(), gapTimer: undefined, resyncAskedAt: undefined, subscribeTimer: undefined };
      this.topics.set(topic, v);
    }
    return v;
  }

  private async process(text: string, receivedAt: number): Promise<void> {
    this.stats.messages++;
    this.stats.bytes += text.length;
    const envelope = await decodeMessage(text);
    for (const update of envelope.u) this.handle(update, receivedAt);
  }

  private handle(update: Update, receivedAt: number): void {
    const v = this.topics.get(update.t);
    if (!v) return; // not (or no longer) subscribed
    if (update.k === 'c') {
      this.collectChunk(v, update, receivedAt);
      return;
    }
    if (update.a === 1) {
      this.stats.acks++;
      this.send({ action: 'ack', t: update.t, s: update.s, ...(update.p !== undefined ? { p: update.p } : {}), f: update.f });
    }
    if (v.seq !== undefined && update.s <= v.seq && !(update.k === 'f' && update.s === v.seq && v.resyncAskedAt !== undefined)) {
      this.stats.duplicates++;
      return;
    }
    if (update.k === 'f' || (v.seq !== undefined && update.s === v.seq + 1)) {
      this.apply(update.t, v, update, receivedAt);
      this.drain(update.t, v, receivedAt);
      return;
    }
    // Early (a gap before it), or a patch before any full state: hold it briefly.
    v.held.set(update.s, update);
    this.stats.gaps++;
    if (!v.gapTimer) {
      v.gapTimer = setTimeout(() => {
        v.gapTimer = undefined;
        if (v.held.size > 0) this.requestResync(update.t, v);
      }, this.reorderWaitMs);
    }
  }

  private apply(topic: string, v: TopicView, update: PatchUpdate | FullUpdate, receivedAt: number): void {
    if (update.k === 'f') {
      v.state = update.d;
      v.seq = update.s;
      v.resyncAskedAt = undefined;
      if (v.subscribeTimer) {
        clearTimeout(v.subscribeTimer);
        v.subscribeTimer = undefined;
      }
      this.stats.fulls++;
    } else {
      try {
        v.state = jsonpatch.applyPatch(v.state as object, update.d, false, true).newDocument;
      } catch (error) {
        // The patch does not fit the state held: the state cannot be trusted.
        this.options.onError?.(new Error(`topic ${topic}: patch ${update.s} does not apply: ${(error as Error).message}`));
        v.seq = undefined;
        this.requestResync(topic, v);
        return;
      }
      v.seq = update.s;
      this.stats.patches++;
    }
    this.options.onUpdate?.(topic, v.state, {
      seq: update.s,
      kind: update.k === 'f' ? 'full' : 'patch',
      ...(update.p !== undefined ? { publishedAt: update.p } : {}),
      flushedAt: update.f,
      receivedAt,
    });
  }

  private drain(topic: string, v: TopicView, receivedAt: number): void {
    for (const s of [...v.held.keys()]) if (v.seq !== undefined && s <= v.seq) v.held.delete(s);
    while (v.seq !== undefined && v.held.has(v.seq + 1)) {
      const next = v.held.get(v.seq + 1)!;
      v.held.delete(v.seq + 1);
      this.apply(topic, v, next, receivedAt);
    }
    if (v.held.size === 0 && v.gapTimer) {
      clearTimeout(v.gapTimer);
      v.gapTimer = undefined;
    }
  }

  private requestResync(topic: string, v: TopicView): void {
    const now = this.now();
    if (v.resyncAskedAt !== undefined && now - v.resyncAskedAt < this.resyncRetryMs) return;
    v.resyncAskedAt = now;
    this.stats.resyncRequests++;
    this.send({ action: 'resync', topic });
  }

  private collectChunk(v: TopicView, chunk: ChunkUpdate, receivedAt: number): void {
    const pieces = v.chunks.get(chunk.s) ?? new Array<string>(chunk.n);
    pieces[chunk.i] = chunk.d;
    v.chunks.set(chunk.s, pieces);
    if (pieces.filter((p) => p !== undefined).length < chunk.n) return;
    v.chunks.delete(chunk.s);
    for (const s of v.chunks.keys()) if (s < chunk.s) v.chunks.delete(s);
    this.handle(JSON.parse(pieces.join('')) as Update, receivedAt);
  }
}

/** What `attachRealtimeClient` needs of a socket: a browser WebSocket or a `ws` WebSocket. */
export interface MessageSocket {
  send(data: string): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

/** Wires a client to an open socket: messages in, subscribe/resync/ack out. */
export function attachRealtimeClient(socket: MessageSocket, options: Omit<RealtimeClientOptions, 'send'> = {}): RealtimeClient {
  const client = new RealtimeClient({ ...options, send: (text) => socket.send(text) });
  socket.addEventListener('message', (event) => {
    const data = event.data;
    void client.receive(typeof data === 'string' ? data : new TextDecoder().decode(data as ArrayBuffer));
  });
  return client;
}
