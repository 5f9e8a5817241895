/** Running local executions by area: the local twin of ListExecutions/StopExecution. */
import type { Area } from '#shared/change';

export class LocalExecutions {
  private readonly running = new Map<string, { area: Area; abort: () => void }>();

  register(executionArn: string, area: Area, abort: () => void): void {
    this.running.set(executionArn, { area, abort });
  }

  unregister(executionArn: string): void {
    this.running.delete(executionArn);
  }

  list(area: Area): string[] {
    return [...this.running.entries()].filter(([, e]) => e.area === area).map(([arn]) => arn);
  }

  /** Stops (aborts) every running execution of `area`; returns their ARNs. */
  async stopRunning(area: Area, _reason: string): Promise<string[]> {
    const stopped: string[] = [];
    for (const [arn, e] of this.running) {
      if (e.area !== area) continue;
      e.abort();
      this.running.delete(arn);
      stopped.push(arn);
    }
    return stopped;
  }
}
