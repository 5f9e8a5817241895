/**
 * Application-side `pg` instrumentation: wraps a Pool or a Client so that every query
 * issued inside `tracer.run(...)` is recorded with its fingerprint and call site, per
 * request (AsyncLocalStorage carries the request across awaits). Outside a request,
 * queries pass through untouched. The traces feed N+1 detection
 * (`detectNPlusOneFromTraces` in functions/database/n-plus-one.ts).
 *
 *   const tracer = new QueryTracer({ onRequestEnd: (t) => ship(t) });
 *   const pool = tracer.instrument(new pg.Pool());
 *   app.use((req, res, next) => tracer.run({ name: req.route }, next));
 */
import type { OperationRecorder } from '../metrics/index.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { captureCallStack } from './call-site.ts';
import { fingerprintOf, paramHashesOf, paramsHashOf, parserReady } from './fingerprint.ts';
import type { QueryEvent, RequestTrace } from './trace.ts';

export interface QueryTracerOptions {
  /** Queries kept per request; the rest are counted as truncated. @default 1000 */
  readonly maxQueriesPerRequest?: number;
  /** Finished traces kept in memory for `traces()`. @default 100 */
  readonly keepTraces?: number;
  /** Called with each finished request's trace (ship it, or detect N+1 in process). */
  readonly onRequestEnd?: (trace: RequestTrace) => void;
  /** Publishes each query as a `database` operation (latency, error, throughput): sdk/metrics' OperationMetrics. */
  readonly metrics?: OperationRecorder;
}

interface PendingEvent extends Omit<QueryEvent, 'fingerprint'> {
  fingerprint: string | undefined;
}

interface RequestState {
  readonly requestId: string;
  readonly name?: string;
  readonly startedAt: Date;
  readonly startedAtMs: number;
  readonly events: PendingEvent[];
  truncated: boolean;
}

const INSTRUMENTED = Symbol.for('perfpilot.pg.instrumented');

type QueryFn = (...args: unknown[]) => unknown;

/** pg-pool's `query` calls `connect(cb)` synchronously; while it does, connect must hand out the raw client. */
let insidePoolQuery = 0;

export class QueryTracer {
  private readonly storage = new AsyncLocalStorage<RequestState>();
  private readonly finished: RequestTrace[] = [];
  private readonly maxQueries: number;
  private readonly keep: number;

  constructor(private readonly options: QueryTracerOptions = {}) {
    this.maxQueries = options.maxQueriesPerRequest ?? 1_000;
    this.keep = options.keepTraces ?? 100;
  }

  /** Runs `fn` as one request; its queries are recorded and the trace is returned with the result. */
  async run<T>(request: { requestId?: string; name?: string }, fn: () => T | Promise<T>): Promise<T> {
    const state: RequestState = {
      requestId: request.requestId ?? randomUUID(),
      ...(request.name !== undefined ? { name: request.name } : {}),
      startedAt: new Date(),
      startedAtMs: performance.now(),
      events: [],
      truncated: false,
    };
    try {
      return await this.storage.run(state, fn);
    } finally {
      await this.finish(state);
    }
  }

  /** The id of the request the caller is in, if any. */
  currentRequestId(): string | undefined {
    return this.storage.getStore()?.requestId;
  }

  traces(): readonly RequestTrace[] {
    return this.finished;
  }

  clear(): void {
    this.finished.length = 0;
  }

  /** Instruments a Pool (its `query` and the clients `connect` hands out) or a Client, in place. */
  instrument<T extends pg.Pool | pg.Client | pg.PoolClient>(target: T): T {
    const marked = target as unknown as Record<symbol, boolean>;
    if (marked[INSTRUMENTED]) return target;
    marked[INSTRUMENTED] = true;
    const originalQuery = (target.query as QueryFn).bind(target);
    if (isPool(target)) {
      const originalConnect = (target.connect as QueryFn).bind(target);
      (target as unknown as { query: QueryFn }).query = (...args: unknown[]) =>
        this.traced(args, (a) => {
          insidePoolQuery++;
          try {
            return originalQuery(...a);
          } finally {
            insidePoolQuery--;
          }
        });
      (target as unknown as { connect: QueryFn }).connect = (...args: unknown[]) => {
        if (insidePoolQuery > 0) return originalConnect(...args);
        const cb = typeof args[0] === 'function' ? (args[0] as (err: unknown, c?: pg.PoolClient, done?: unknown) => void) : undefined;
        if (cb) return originalConnect((err: unknown, client?: pg.PoolClient, done?: unknown) => cb(err, client && this.wrapClient(client), done));
        return (originalConnect() as Promise<pg.PoolClient>).then((client) => this.wrapClient(client));
      };
    } else {
      (target as unknown as { query: QueryFn }).query = (...args: unknown[]) => this.traced(args, (a) => originalQuery(...a));
    }
    return target;
  }

  /** A checked-out client is shared by the pool with its own `query`; the application gets a traced view of it. */
  private wrapClient(client: pg.PoolClient): pg.PoolClient {
    const tracedQuery = (...args: unknown[]) => this.traced(args, (a) => (client.query as QueryFn).apply(client, a));
    return new Proxy(client, {
      get(target, prop) {
        if (prop === 'query') return tracedQuery;
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as QueryFn).bind(target) : value;
      },
    });
  }

  private traced(args: unknown[], call: (args: unknown[]) => unknown): unknown {
    const state = this.storage.getStore();
    const first = args[0];
    const submittable = typeof first === 'object' && first !== null && typeof (first as { submit?: unknown }).submit === 'function';
    if (!state || submittable) {
      if (submittable || !this.options.metrics) return call(args);
      // Outside a traced request: still one database operation for the metrics.
      const t0 = performance.now();
      const out = call(args);
      if (out && typeof (out as Promise<unknown>).then === 'function') {
        (out as Promise<unknown>).then(
          () => this.options.metrics?.recordOperation('database', performance.now() - t0, true),
          () => this.options.metrics?.recordOperation('database', performance.now() - t0, false),
        );
      }
      return out;
    }
    const sql = typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '');
    const values = Array.isArray(args[1]) ? args[1] : (first as { values?: unknown } | null)?.values;
    const { callSite, stack } = captureCallStack();
    const started = performance.now();
    const record = (rows: number | null) => {
      this.options.metrics?.recordOperation('database', performance.now() - started, rows !== null);
      if (state.events.length >= this.maxQueries) {
        state.truncated = true;
        return;
      }
      state.events.push({
        sql,
        fingerprint: fingerprintOf(sql),
        callSite,
        stack,
        durationMs: performance.now() - started,
        rows,
        paramsHash: paramsHashOf(values),
        paramHashes: paramHashesOf(values),
        startedAtMs: started - state.startedAtMs,
        failed: rows === null,
      });
    };
    const cbIndex = args.findIndex((a) => typeof a === 'function');
    if (cbIndex >= 0) {
      const cb = args[cbIndex] as (err: unknown, res?: pg.QueryResult) => void;
      const wrapped = [...args];
      wrapped[cbIndex] = (err: unknown, res?: pg.QueryResult) => {
        record(err ? null : (res?.rowCount ?? res?.rows?.length ?? 0));
        cb(err, res);
      };
      return call(wrapped);
    }
    return (call(args) as Promise<pg.QueryResult>).then(
      (res) => {
        record(res?.rowCount ?? res?.rows?.length ?? 0);
        return res;
      },
      (err: unknown) => {
        record(null);
        throw err;
      },
    );
  }

  private async finish(state: RequestState): Promise<void> {
    await parserReady();
    const trace: RequestTrace = {
      requestId: state.requestId,
      ...(state.name !== undefined ? { name: state.name } : {}),
      startedAt: state.startedAt.toISOString(),
      durationMs: performance.now() - state.startedAtMs,
      queries: state.events.map((e) => ({ ...e, fingerprint: e.fingerprint ?? fingerprintOf(e.sql) ?? 'unknown' })),
      truncated: state.truncated,
    };
    this.finished.push(trace);
    if (this.finished.length > this.keep) this.finished.shift();
    try {
      this.options.onRequestEnd?.(trace);
    } catch {
      // A failing trace sink must not fail the application's request.
    }
  }
}

function isPool(target: unknown): target is pg.Pool {
  const t = target as { connect?: unknown; totalCount?: unknown };
  return typeof t.connect === 'function' && typeof t.totalCount === 'number';
}
