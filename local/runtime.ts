/**
 * The local runtime: everything the Lambdas have in AWS, built on this machine from
 * the config — the ledger on dynalite (kept in `ledger.localDataDir`, served to every
 * Perfpilot process of the machine by one ledger server), the area
 * plugins against the local services, the local signals, the local rollout runner's
 * execution registry — wired into the same cores the Lambdas run.
 */
import type { PerfpilotConfig } from '#lib/config';
import type { AreaPlugin, PluginFactory } from '#shared/area';
import { AreaLock, thisProcess } from '#shared/area-lock';
import { AreaStateStore } from '#shared/area-state';
import type { Area, Change } from '#shared/change';
import { ChangeLedger } from '#shared/ledger';
import { PolicyStore } from '#shared/policy-store';
import type { RolloutDeps } from '#shared/rollout-steps';
import type { RollbackDeps } from '#functions/rollback/rollback';
import { openSharedLedger, startLocalDynamo, type LocalDynamo } from './dynamo.ts';
import { LocalSignals } from './local-signals.ts';
import { LocalExecutions } from './local-executions.ts';
import { loadPluginFactory, REGISTERED_AREAS } from './plugins.ts';

export interface LocalRuntimeOptions {
  /** Keep the ledger in memory instead of `config.ledger.localDataDir` (tests). */
  readonly inMemory?: boolean;
  /** Use this ledger instead of starting one. */
  readonly dynamo?: LocalDynamo;
  /** Extra or replacement plugin factories (the tests' `test` area). */
  readonly factories?: Partial<Record<Area, PluginFactory>>;
  /** Where notifications go (the CLI prints them). */
  readonly notify?: (subject: string, message: string) => void;
  readonly clock?: () => Date;
}

export class LocalRuntime {
  readonly ledger: ChangeLedger;
  readonly lock: AreaLock;
  readonly areaState: AreaStateStore;
  readonly policies: PolicyStore;
  readonly signals: LocalSignals;
  readonly executions: LocalExecutions;
  readonly clock: () => Date;
  private readonly plugins = new Map<Area, Promise<AreaPlugin>>();

  private constructor(
    readonly config: PerfpilotConfig,
    readonly dynamo: LocalDynamo,
    private readonly ownsDynamo: boolean,
    private readonly options: LocalRuntimeOptions,
  ) {
    this.ledger = new ChangeLedger(dynamo.doc, dynamo.tableName);
    this.lock = new AreaLock(dynamo.doc, dynamo.tableName, { process: thisProcess() });
    this.areaState = new AreaStateStore(dynamo.doc, dynamo.tableName);
    this.policies = new PolicyStore(dynamo.doc, dynamo.tableName);
    this.signals = new LocalSignals(config, (area) => this.plugin(area));
    this.executions = new LocalExecutions({ ledger: this.ledger, lock: this.lock, waitMs: config.ledger.localStopWaitSeconds * 1000 });
    this.clock = options.clock ?? (() => new Date());
  }

  static async start(config: PerfpilotConfig, options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
    const dynamo =
      options.dynamo ??
      (options.inMemory
        ? await startLocalDynamo()
        : await openSharedLedger({ dataDir: config.ledger.localDataDir, idleSeconds: config.ledger.localServerIdleSeconds }));
    return new LocalRuntime(config, dynamo, !options.dynamo, options);
  }

  /** Areas this installation can tune (those with a plugin). */
  areas(): Area[] {
    return [...new Set<Area>([...REGISTERED_AREAS, ...(Object.keys(this.options.factories ?? {}) as Area[])])];
  }

  plugin(area: Area): Promise<AreaPlugin> {
    let p = this.plugins.get(area);
    if (!p) {
      const injected = this.options.factories?.[area];
      const load = injected ? Promise.resolve(injected) : loadPluginFactory(area);
      p = load.then((factory) => factory(this.config, { policies: this.policies, target: 'local' }));
      p.catch(() => this.plugins.delete(area));
      this.plugins.set(area, p);
    }
    return p;
  }

  async rolloutDeps(area: Area): Promise<RolloutDeps> {
    return {
      config: this.config,
      ledger: this.ledger,
      lock: this.lock,
      plugin: await this.plugin(area),
      metrics: this.signals,
      alarms: this.signals,
      clock: this.clock,
    };
  }

  rollbackDeps(): RollbackDeps {
    const notify = this.options.notify ?? (() => undefined);
    return {
      config: this.config,
      ledger: this.ledger,
      lock: this.lock,
      areaState: this.areaState,
      executions: this.executions,
      reverter: {
        // Loaded when a rollback runs: `perfpilot status` opens a runtime too.
        revert: async (area: Area, changes: readonly Change[], reason: string) =>
          (await import('#shared/rollout-steps')).revertChanges({ ledger: this.ledger, plugin: await this.plugin(area), clock: this.clock }, changes, reason),
      },
      // Locally nothing is scheduled: the circuit breaker's verdict lives in the ledger,
      // and `perfpilot rollout` refuses a disabled area until `perfpilot enable`.
      schedules: { disable: async () => undefined },
      notifier: { notify: async (subject, message) => notify(subject, message) },
      clock: this.clock,
    };
  }

  async close(): Promise<void> {
    for (const p of this.plugins.values()) {
      const plugin = await p.catch(() => undefined);
      await plugin?.close?.().catch(() => undefined);
    }
    this.plugins.clear();
    if (this.ownsDynamo) await this.dynamo.close();
  }
}
