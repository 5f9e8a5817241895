/**
 * The demo's live map: the fleet workload publishes every GPS fix to a realtime topic
 * (from its own thread, through sdk/realtime's publisher), and a few real WebSocket
 * viewers follow it through the local API Gateway — the delivery path the realtime
 * rollout tunes. The demo measures it itself: posts and bytes the gateway carried,
 * events the dispatchers flushed, and each viewer's delivery latency (publish of the
 * oldest event of an update → receipt, same clock).
 */
import { WebSocket } from 'ws';
import type { PerfpilotConfig } from '#lib/config';
import { realtimeRedisUrl } from '#functions/realtime/redis';
import { LocalRealtime } from '#local/realtime/local-realtime';
import { attachRealtimeClient, type RealtimeClient } from '#sdk/realtime/client';

export const LIVE_MAP_TOPIC = 'fleet:live-positions';

/** What the workload thread needs to publish (plain data: it crosses to the thread). */
export interface LiveMapOptions {
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly dispatcherLeaseSeconds: number;
  readonly topic: string;
}

export interface LiveMapReading {
  readonly atMs: number;
  readonly posts: number;
  readonly bytes: number;
  readonly events: number;
  readonly samples: number;
}

export interface LiveMapWindow {
  readonly seconds: number;
  readonly events: number;
  readonly posts: number;
  readonly bytes: number;
  /** What one post per event per viewer would have been. */
  readonly naivePosts: number;
  readonly postsToNaiveRatio: number;
  readonly kibibytes: number;
  readonly latencyP95Ms?: number;
}

export class LiveMap {
  private readonly latencies: number[] = [];
  private constructor(
    readonly realtime: LocalRealtime,
    private readonly sockets: WebSocket[],
    private readonly clients: RealtimeClient[],
    readonly options: LiveMapOptions,
  ) {}

  static async start(config: PerfpilotConfig, viewers: number): Promise<LiveMap> {
    const realtime = await LocalRealtime.start(config);
    const sockets: WebSocket[] = [];
    const clients: RealtimeClient[] = [];
    const map = new LiveMap(realtime, sockets, clients, {
      redisUrl: realtimeRedisUrl(config),
      keyPrefix: config.realtimeTuner.keyPrefix,
      dispatcherLeaseSeconds: config.realtimeTuner.dispatcherLeaseSeconds,
      topic: LIVE_MAP_TOPIC,
    });
    try {
      for (let i = 0; i < viewers; i++) {
        const socket = new WebSocket(realtime.gateway.url);
        await new Promise<void>((resolve, reject) => {
          socket.once('open', () => resolve());
          socket.once('error', reject);
        });
        socket.on('error', () => undefined);
        const client = attachRealtimeClient(socket, {
          onUpdate: (_topic, _state, info) => {
            if (info.publishedAt !== undefined) map.latencies.push(info.receivedAt - info.publishedAt);
          },
        });
        client.subscribe([LIVE_MAP_TOPIC]);
        sockets.push(socket);
        clients.push(client);
      }
    } catch (error) {
      await map.close();
      throw error;
    }
    return map;
  }

  get viewers(): number {
    return this.clients.length;
  }

  /** Starts a dispatcher for the workload thread's publisher. */
  readonly onDispatch = (): void => {
    void this.realtime.trigger.start();
  };

  /** Vehicles a viewer sees on its map now. */
  vehiclesOnMap(): number {
    const state = this.clients[0]?.state<{ position?: Record<string, unknown> }>(LIVE_MAP_TOPIC);
    return Object.keys(state?.position ?? {}).length;
  }

  read(): LiveMapReading {
    return { atMs: Date.now(), posts: this.realtime.gateway.stats.posts, bytes: this.realtime.gateway.stats.postBytes, events: this.realtime.totals.events, samples: this.latencies.length };
  }

  window(a: LiveMapReading, b: LiveMapReading): LiveMapWindow {
    const lat = this.latencies.slice(a.samples, b.samples).sort((x, y) => x - y);
    const events = b.events - a.events;
    return {
      seconds: (b.atMs - a.atMs) / 1_000,
      events,
      posts: b.posts - a.posts,
      bytes: b.bytes - a.bytes,
      naivePosts: events * this.viewers,
      postsToNaiveRatio: events === 0 ? 0 : Math.round(((b.posts - a.posts) / (events * this.viewers)) * 100) / 100,
      kibibytes: Math.round(((b.bytes - a.bytes) / 1024) * 10) / 10,
      ...(lat.length > 0 ? { latencyP95Ms: lat[Math.min(lat.length - 1, Math.ceil(0.95 * lat.length) - 1)] } : {}),
    };
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const s of this.sockets) s.close();
    await this.realtime.close();
  }
}
