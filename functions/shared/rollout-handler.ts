/**
 * The area function's Lambda handler, built from an area's plugin factory. Dependencies
 * are built once per cold start; the config is validated there, so a bad deployment
 * fails loudly at the first invocation.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Context } from 'aws-lambda';
import { configFromEnv } from '#lib/config';
import type { AreaAnalyzer, AreaPlugin, PluginFactory } from './area.ts';
import type { MetricsReader } from './metrics.ts';
import { AreaLock } from './area-lock.ts';
import { CloudWatchSignals } from './cloudwatch-signals.ts';
import { InvalidRequestError } from './errors.ts';
import { requiredEnv, withObservability } from './lambda.ts';
import { ChangeLedger, documentClient } from './ledger.ts';
import { PolicyStore } from './policy-store.ts';
import { runRolloutStep, type RolloutDeps, type StepEvent } from './rollout-steps.ts';
import { logger } from './observability.ts';

/** The area's own snapshot over CloudWatch's: both, the area's value where both have one. */
export function combinedSignals(plugin: Pick<AreaPlugin, 'snapshot'>, cloudwatch: MetricsReader): MetricsReader {
  return {
    async snapshot(area, now) {
      const [own, published] = await Promise.all([plugin.snapshot(now), cloudwatch.snapshot(area, now)]);
      return { ...published, ...own, at: now.toISOString() };
    },
  };
}

/** `{ step: 'analyze', area }`: what `perfpilot analyze <area> --target aws` sends. */
export interface AnalyzeEvent {
  readonly step: 'analyze';
  readonly area: string;
}

export function rolloutStepHandler(factory: PluginFactory, analyzer?: AreaAnalyzer) {
  let deps: Promise<RolloutDeps> | undefined;
  const build = async (): Promise<RolloutDeps> => {
    const config = configFromEnv();
    const tableName = requiredEnv('LEDGER_TABLE_NAME');
    const doc = documentClient(new DynamoDBClient({}));
    const signals = new CloudWatchSignals(new CloudWatchClient({}), config);
    const plugin = await factory(config, { policies: new PolicyStore(doc, tableName), target: 'aws' });
    return {
      config,
      ledger: new ChangeLedger(doc, tableName),
      lock: new AreaLock(doc, tableName),
      plugin,
      // What the area measures itself from inside the VPC (pg_stat_statements, Redis INFO,
      // the clients' counters), completed by what CloudWatch has (AWS metrics, the
      // application's EMF): the guardrails see both, as they do locally.
      metrics: combinedSignals(plugin, signals),
      alarms: signals,
      clock: () => new Date(),
    };
  };

  return withObservability(async (event: StepEvent, _context: Context) => {
    if (!event || typeof event !== 'object' || typeof (event as { step?: unknown }).step !== 'string') {
      throw new InvalidRequestError(`expected a rollout step event, got ${JSON.stringify(event)?.slice(0, 200)}`);
    }
    if ((event as unknown as AnalyzeEvent).step === 'analyze') {
      if (!analyzer) throw new InvalidRequestError('this function has no analysis');
      // Read-only, and independent of the rollout's dependencies (no lock, no ledger).
      return analyzer(configFromEnv(), { target: 'aws' });
    }
    deps ??= build().catch((error) => {
      deps = undefined;
      throw error;
    });
    logger.appendKeys({ area: event.area, step: event.step });
    return runRolloutStep({ ...(await deps), remainingMs: () => _context.getRemainingTimeInMillis() }, event);
  });
}

/**
 * The area function's handler with the area's code loaded on first use: the bundle
 * holds it, but its modules (database driver, SQL parser WASM, Redis client) are
 * evaluated when a step first needs the plugin, not during the function's init.
 */
export function lazyRolloutStepHandler(
  pluginModule: () => Promise<{ readonly createPlugin: PluginFactory }>,
  analyzeModule?: () => Promise<{ readonly analyze: AreaAnalyzer }>,
) {
  return rolloutStepHandler(
    async (config, deps) => (await pluginModule()).createPlugin(config, deps),
    analyzeModule && (async (config, options) => (await analyzeModule()).analyze(config, options)),
  );
}
