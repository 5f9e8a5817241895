/**
 * The realtime delivery path on this machine, wired as the Lambdas wire it in AWS:
 * the local gateway invokes the route cores (functions/realtime/routes.ts) for
 * `$connect`/`$disconnect`/`$default`; the dispatcher posts through the real
 * `@aws-sdk/client-apigatewaymanagementapi` client to the gateway's `@connections`
 * API; publishers start the dispatcher in this process instead of invoking a Lambda.
 */
import { Redis } from 'ioredis';
import type { PerfpilotConfig } from '#lib/config';
import { ConnectionRegistry } from '#functions/realtime/registry';
import { ManagementApiPoster, managementClient } from '#functions/realtime/connection-poster';
import { Dispatcher, type DispatchRunSummary, type FlushSummary } from '#functions/realtime/dispatcher';
import { PolicyMirror } from '#functions/realtime/policy-mirror';
import { realtimeRedisUrl } from '#functions/realtime/redis';
import { handleConnect, handleDefault, handleDisconnect, type RouteDeps } from '#functions/realtime/routes';
import { createDeliveryMetrics, flushDeliveryMetrics, recordDeliveryLatency, recordDispatchRun } from '#functions/realtime/delivery-metrics';
import { RealtimePublisher, type DispatchTrigger } from '#sdk/realtime/publisher';
import { DeliveryStatsRecorder } from '#sdk/realtime/stats';
import { LocalGateway, type LocalGatewayOptions } from './gateway.ts';

export interface LocalRealtimeOptions {
  /** Overrides `targets.realtime.redisUrl` / `targets.caching.redisUrl`. */
  readonly redisUrl?: string;
  readonly gateway?: Partial<Omit<LocalGatewayOptions, 'routes'>>;
  readonly onError?: (error: Error) => void;
  /** Each dispatcher run's summary. */
  readonly onRun?: (summary: DispatchRunSummary) => void;
  /** Publish the delivery metrics (the realtime alarms' signals) as EMF lines, as the Lambdas do. */
  readonly emf?: { readonly namespace: string; readonly sink: (line: string) => void };
}

/** Starts dispatchers in this process: at most one run at a time per trigger, as the lease allows one anyway. */
export class InProcessDispatchTrigger implements DispatchTrigger {
  readonly runs: Promise<DispatchRunSummary | undefined>[] = [];
  private active: Dispatcher | undefined;
  private closed = false;
  starts = 0;

  constructor(
    private readonly create: () => Dispatcher,
    private readonly onError?: (error: Error) => void,
  ) {}

  async start(): Promise<void> {
    if (this.closed) return;
    this.starts++;
    const dispatcher = this.create();
    this.active = dispatcher;
    // Asynchronous, like an `Event` invocation: the publisher does not wait for the run.
    const run = new Promise<void>((r) => setImmediate(r))
      .then(() => dispatcher.run())
      .catch((error: Error) => {
        this.onError?.(error);
        return undefined;
      });
    this.runs.push(run);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.active?.stop();
    await Promise.all(this.runs);
  }
}

export class LocalRealtime {
  readonly registry: ConnectionRegistry;
  readonly stats: DeliveryStatsRecorder;
  readonly policy: PolicyMirror;
  readonly trigger: InProcessDispatchTrigger;
  readonly routeDeps: RouteDeps;
  /** What every flush of this process's dispatchers did, added up. */
  readonly totals: FlushSummary = { events: 0, flushes: 0, deliveries: 0, posts: 0, bytes: 0, units: 0, gone: 0, throttled: 0, failed: 0, conflicts: 0 };
  private readonly publishers: RealtimePublisher[] = [];

  private constructor(
    readonly config: PerfpilotConfig,
    readonly redis: Redis,
    readonly gateway: LocalGateway,
    routeDeps: RouteDeps & { emf?: { metrics: ReturnType<typeof createDeliveryMetrics>; sink: (line: string) => void } },
    private readonly options: LocalRealtimeOptions,
  ) {
    const t = config.realtimeTuner;
    const emf = routeDeps.emf;
    this.routeDeps = routeDeps;
    this.registry = routeDeps.registry;
    this.stats = routeDeps.stats;
    this.policy = new PolicyMirror(redis, t, Date.now, t.coalesceRules, options.onError);
    this.trigger = new InProcessDispatchTrigger(
      () =>
        new Dispatcher({
          redis,
          poster: routeDeps.poster,
          registry: this.registry,
          tuning: t,
          policy: this.policy,
          stats: new DeliveryStatsRecorder(redis, { keyPrefix: t.keyPrefix, bucketSeconds: t.statsBucketSeconds, retentionSeconds: t.statsRetentionSeconds }),
          trigger: this.trigger,
          onRun: (run) => {
            options.onRun?.(run);
            if (emf) {
              recordDispatchRun(emf.metrics, run);
              flushDeliveryMetrics(emf.metrics, emf.sink);
            }
          },
          onFlush: (s) => {
            for (const k of Object.keys(this.totals) as (keyof FlushSummary)[]) this.totals[k] += s[k];
          },
          onError: options.onError,
        }),
      options.onError,
    );
  }

  static async start(config: PerfpilotConfig, options: LocalRealtimeOptions = {}): Promise<LocalRealtime> {
    const t = config.realtimeTuner;
    const redis = new Redis(options.redisUrl ?? realtimeRedisUrl(config), { maxRetriesPerRequest: 1, commandTimeout: t.commandTimeoutMs });
    redis.on('error', (error) => options.onError?.(error));
    const stats = new DeliveryStatsRecorder(redis, { keyPrefix: t.keyPrefix, bucketSeconds: t.statsBucketSeconds, retentionSeconds: t.statsRetentionSeconds });
    const registry = new ConnectionRegistry(redis, t.keyPrefix, t.connectionTtlSeconds);
    // The poster needs the gateway's endpoint, the gateway needs the routes: bind late.
    let poster: ManagementApiPoster | undefined;
    const emf = options.emf ? { metrics: createDeliveryMetrics(options.emf.namespace), sink: options.emf.sink } : undefined;
    const routeDeps: RouteDeps & { emf?: typeof emf } = {
      redis,
      registry,
      stats,
      tuning: t,
      poster: { post: (id, data) => poster!.post(id, data) },
      ...(emf
        ? {
            emf,
            onLatency: (sample) => {
              recordDeliveryLatency(emf.metrics, sample);
              flushDeliveryMetrics(emf.metrics, emf.sink);
            },
          }
        : {}),
    };
    const gateway = await LocalGateway.start({
      port: config.targets.realtime.localPort,
      postsPerSecondMax: config.targets.realtime.localPostsPerSecondMax,
      ...options.gateway,
      routes: {
        $connect: (e) => handleConnect(routeDeps, e),
        $disconnect: (e) => handleDisconnect(routeDeps, e),
        $default: (e) => handleDefault(routeDeps, e),
      },
      onRouteError: (route, error) => options.onError?.(new Error(`${route}: ${error.message}`, { cause: error })),
    });
    poster = new ManagementApiPoster(managementClient(gateway.managementEndpoint, true));
    return new LocalRealtime(config, redis, gateway, routeDeps, options);
  }

  /** A publisher for application code in this process. */
  publisher(onError?: (error: Error) => void): RealtimePublisher {
    const t = this.config.realtimeTuner;
    const p = new RealtimePublisher({
      redis: this.redis,
      keyPrefix: t.keyPrefix,
      trigger: this.trigger,
      dispatcherLeaseSeconds: t.dispatcherLeaseSeconds,
      onError: onError ?? this.options.onError,
    });
    this.publishers.push(p);
    return p;
  }

  async close(): Promise<void> {
    for (const p of this.publishers) await p.flush();
    await this.trigger.close();
    await this.gateway.close();
    await this.stats.flush().catch(() => undefined);
    this.redis.disconnect();
  }
}
