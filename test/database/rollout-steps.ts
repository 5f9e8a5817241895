/** Drives database changes through the ledger the way the rollout does, for the database tests. */
import type { AreaPlugin } from '#shared/area';
import type { Change, ProposedChange } from '#shared/change';
import type { ChangeLedger } from '#shared/ledger';

let seq = 0;

/** capture → applying(before) → apply → applied(after), in a rollout of its own. */
export async function applyThroughLedger(ledger: ChangeLedger, plugin: AreaPlugin, proposal: ProposedChange): Promise<Change> {
  const rolloutId = `r-${Date.now()}-${seq++}`;
  const now = new Date();
  await ledger.startRollout({ rolloutId, area: 'database', trigger: 'test', now });
  const [change] = await ledger.addChanges(rolloutId, 'database', [{ ...proposal, stage: 0 }], now);
  const before = await plugin.capture(change!);
  const applying = await ledger.transition(change!, 'applying', { now, before });
  const after = await plugin.apply(applying);
  return ledger.transition(applying, 'applied', { now, after });
}
