/**
 * Whether a tuned index should replace the active one, and the two changes that do
 * it. Pure: observation and config in, decision out.
 *
 * A new version is proposed when no version is active, when the dataset changed
 * since the active one was built, when the active version's recall on recent queries
 * drifted below the target, or when the tuned one meets the target and is at least
 * `latencyImprovementPercentMin` faster on the same probe, measured in the same run.
 *
 * The rollout gets two changes on the policy: `canary-vector-index` (stage 0: the new
 * version serves `canaryTrafficFraction` of queries beside the active one) and
 * `promote-vector-index` (stage 1: after the canary's bake and guardrails, and its own
 * recall and latency probe, the new version serves everything). Reverting them
 * re-activates the policy before, i.e. the previous index version.
 */
import type { ProposedChange } from '#shared/change';
import type { IndexVersion } from '#sdk/vector/policy';
import type { Evaluation, TunedChoice, VectorTuning } from './tune.ts';

export const CANARY_INDEX = 'canary-vector-index';
export const PROMOTE_INDEX = 'promote-vector-index';
export const POLICY_TARGET = 'policy:vector';

export interface VectorObservation {
  readonly datasetKey: string;
  readonly datasetCount: number;
  readonly active: IndexVersion | null;
  /** The active version measured now on the probe queries (its own efSearch). */
  readonly activeEvaluation?: Evaluation;
  readonly probeQueries: number;
  /** Where the probe queries came from, e.g. "120 recorded queries + 80 held-out vectors". */
  readonly probeSource: string;
  readonly tuned: TunedChoice;
}

export interface VectorDecision {
  readonly propose: boolean;
  readonly reason: string;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export function decideVector(o: VectorObservation, t: VectorTuning): VectorDecision {
  const tuned = `M=${o.tuned.params.kind === 'hnsw' ? o.tuned.params.m : 'PQ'}, efSearch=${o.tuned.efSearch}: recall@${t.recallK} ${pct(o.tuned.byId)}, ${o.tuned.meanLatencyMs.toFixed(3)} ms mean`;
  if (!o.active) return { propose: true, reason: `no index version is active; tuned ${tuned}` };
  if (o.active.count !== o.datasetCount) {
    return { propose: true, reason: `the dataset changed (${o.active.count} → ${o.datasetCount} vectors); tuned ${tuned}` };
  }
  const current = o.activeEvaluation;
  if (current && current.byId < t.recallTarget) {
    return { propose: true, reason: `recall@${t.recallK} of the active version drifted to ${pct(current.byId)} < ${pct(t.recallTarget)} on ${o.probeSource}; tuned ${tuned}` };
  }
  if (current && o.tuned.byId >= t.recallTarget && o.tuned.meanLatencyMs <= current.meanLatencyMs * (1 - t.latencyImprovementPercentMin / 100)) {
    return {
      propose: true,
      reason: `tuned ${tuned} is ${((1 - o.tuned.meanLatencyMs / current.meanLatencyMs) * 100).toFixed(0)}% faster than the active version (${current.meanLatencyMs.toFixed(3)} ms, recall ${pct(current.byId)}) at the target`,
    };
  }
  return {
    propose: false,
    reason: current
      ? `the active version meets the target (recall@${t.recallK} ${pct(current.byId)}, ${current.meanLatencyMs.toFixed(3)} ms mean) and the tuned one is not ${t.latencyImprovementPercentMin}% faster (${tuned})`
      : 'the active version could not be measured',
  };
}

export function vectorChanges(version: IndexVersion, t: VectorTuning, reason: string): ProposedChange[] {
  const expected = version.measured ? { recall: version.measured.recall, meanLatencyMs: version.measured.p95LatencyMs } : undefined;
  return [
    {
      kind: CANARY_INDEX,
      target: POLICY_TARGET,
      params: { version, fraction: t.canaryTrafficFraction },
      reason: `serve ${pct(t.canaryTrafficFraction)} of queries from ${version.key}: ${reason}`,
      ...(expected ? { expected } : {}),
    },
    {
      kind: PROMOTE_INDEX,
      target: POLICY_TARGET,
      params: { version },
      reason: `serve every query from ${version.key} once the canary held and a fresh probe meets recall@${t.recallK} ≥ ${t.recallTarget}`,
      ...(expected ? { expected } : {}),
    },
  ];
}
