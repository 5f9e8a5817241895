/**
 * The IAM check of every recorded call: the synthesized role policies of the caller
 * (every AWS::IAM::Policy attached to the role, and the role's inline policies),
 * resolved to this account and region, evaluated by an IAM policy simulator
 * (@cloud-copilot/iam-simulate). An implicit or explicit deny is a violation.
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { ACCOUNT, type StackView } from './assembly.ts';

export interface CallRecord {
  /** Who called: a function's logical id, a state machine, a rule. */
  readonly caller: string;
  readonly action: string;
  readonly resource: string;
  readonly allowed: boolean;
  readonly detail?: string;
}

type PolicyDocument = { Version?: string; Statement: unknown[] };

export class IamCheck {
  readonly calls: CallRecord[] = [];
  private readonly policies = new Map<string, PolicyDocument[]>();

  constructor(private readonly stack: StackView) {
    for (const [, policy] of stack.resources('AWS::IAM::Policy')) {
      const p = policy.Properties as { PolicyDocument: unknown; Roles?: unknown[] };
      const doc = stack.resolve<PolicyDocument>(p.PolicyDocument);
      for (const role of (p.Roles ?? []) as { Ref: string }[]) {
        const list = this.policies.get(role.Ref) ?? [];
        list.push(doc);
        this.policies.set(role.Ref, list);
      }
    }
    for (const [id, role] of stack.resources('AWS::IAM::Role')) {
      for (const inline of ((role.Properties as { Policies?: { PolicyDocument: unknown }[] }).Policies ?? [])) {
        const list = this.policies.get(id) ?? [];
        list.push(stack.resolve<PolicyDocument>(inline.PolicyDocument));
        this.policies.set(id, list);
      }
    }
  }

  /** Evaluates one call of `roleId` (a logical id) and records it; returns whether it is allowed. */
  async check(caller: string, roleId: string, action: string, resources: readonly string[], resourcePolicy?: PolicyDocument): Promise<boolean> {
    const documents = this.policies.get(roleId) ?? [];
    let allowed = true;
    for (const resource of resources.length ? resources : ['*']) {
      const result = await runSimulation(
        {
          identityPolicies: documents.map((policy, i) => ({ name: `${roleId}-${i}`, policy })),
          serviceControlPolicies: [],
          resourceControlPolicies: [],
          // KMS needs its key policy to allow too (ours delegates to IAM through the account root).
          resourcePolicy,
          request: {
            action,
            principal: `arn:aws:iam::${ACCOUNT}:role/${roleId}`,
            resource: { resource, accountId: ACCOUNT },
            contextVariables: {},
          },
        } as never,
        {},
      );
      const r = result as { overallResult?: string; errors?: unknown };
      const ok = r.overallResult === 'Allowed';
      this.calls.push({ caller, action, resource, allowed: ok, ...(ok ? {} : { detail: JSON.stringify(r.errors ?? r.overallResult).slice(0, 300) }) });
      allowed &&= ok;
    }
    return allowed;
  }

  violations(): CallRecord[] {
    return this.calls.filter((c) => !c.allowed);
  }
}
