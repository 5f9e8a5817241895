/**
 * Running local executions by area: the local twin of ListExecutions/StopExecution.
 *
 * A rollout may run in another CLI process than the rollback that stops it. The stop
 * travels through the ledger: the rollback marks the rollout stop-requested, the
 * rollout's runner (polling its own record) aborts its execution, lets the step in
 * flight finish, and acknowledges. stopRunning waits for that acknowledgement, for as
 * long as the runner's process lives and at most `waitMs`, so the revert that follows
 * never races a stage that is still applying.
 */
import type { AreaLock } from '#shared/area-lock';
import type { Area } from '#shared/change';
import type { ChangeLedger } from '#shared/ledger';

/** How often a waiting rollback re-reads the rollout it asked to stop. */
const ACK_POLL_MS = 100;

export interface LocalExecutionsOptions {
  readonly ledger: ChangeLedger;
  readonly lock: AreaLock;
  /** The longest a rollback waits for a rollout's runner to stop (config ledger.localStopWaitSeconds). */
  readonly waitMs: number;
}

export class LocalExecutions {
  private readonly running = new Map<string, { area: Area; abort: () => void }>();

  constructor(private readonly options?: LocalExecutionsOptions) {}

  register(executionArn: string, area: Area, abort: () => void): void {
    this.running.set(executionArn, { area, abort });
  }

  unregister(executionArn: string): void {
    this.running.delete(executionArn);
  }

  list(area: Area): string[] {
    return [...this.running.entries()].filter(([, e]) => e.area === area).map(([arn]) => arn);
  }

  /**
   * Stops the running executions of `area`: those of this process at once, those of
   * other processes through the ledger's stop request (which the caller has written).
   * Returns the executions that stopped.
   */
  async stopRunning(area: Area, reason: string): Promise<string[]> {
    const stopped = new Set<string>();
    for (const [arn, e] of this.running) {
      if (e.area !== area) continue;
      e.abort();
      this.running.delete(arn);
      stopped.add(arn);
    }
    const options = this.options;
    if (!options) return [...stopped];
    const deadline = Date.now() + options.waitMs;
    for (const rollout of await options.ledger.runningRollouts(area)) {
      if (!rollout.stopRequestedAt) continue;
      for (;;) {
        const current = await options.ledger.getRollout(rollout.rolloutId);
        if (!current || current.status !== 'running' || current.stopAcknowledgedAt) {
          if (current?.stopAcknowledgedAt) stopped.add(current.executionArn ?? current.rolloutId);
          break;
        }
        // A crashed runner (or one from before this protocol) will never answer.
        if (!current.holder || options.lock.holderGone(current.holder)) break;
        if (Date.now() > deadline) {
          // Loaded here, where it is needed: every CLI command opens a runtime.
          const { logger } = await import('#shared/observability');
          logger.warn('a rollout did not stop in time; reverting anyway', { rolloutId: rollout.rolloutId, reason });
          break;
        }
        await new Promise((r) => setTimeout(r, ACK_POLL_MS));
      }
    }
    return [...stopped];
  }
}
