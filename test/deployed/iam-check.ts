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
  private readonly answers = new Map<string, Promise<{ overallResult?: string; errors?: unknown }>>();

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
    let allowed = true;
    for (const resource of resources.length ? resources : ['*']) {
      const r = await this.simulate(roleId, action, resource, resourcePolicy);
      const ok = r.overallResult === 'Allowed';
      this.calls.push({ caller, action, resource, allowed: ok, ...(ok ? {} : { detail: JSON.stringify(r.errors ?? r.overallResult).slice(0, 300) }) });
      allowed &&= ok;
    }
    return allowed;
  }

  /**
   * Whether the role may, without recording a call: what a service asks itself, e.g. S3
   * answering a missing key with 404 only to a caller that may list the bucket (else 403).
   */
  async allows(roleId: string, action: string, resource: string): Promise<boolean> {
    return (await this.simulate(roleId, action, resource)).overallResult === 'Allowed';
  }

  /**
   * The policies are the template's and never change, so an answer holds for every later
   * identical request: remembered, so that a busy caller (a dispatcher posting to each
   * connection) is not slowed by the simulator more than by the service it stands in for.
   */
  private simulate(roleId: string, action: string, resource: string, resourcePolicy?: PolicyDocument): Promise<{ overallResult?: string; errors?: unknown }> {
    const key = JSON.stringify([roleId, action, resource, resourcePolicy ?? null]);
    let answer = this.answers.get(key);
    if (!answer) {
      answer = this.runSimulation(roleId, action, resource, resourcePolicy);
      this.answers.set(key, answer);
    }
    return answer;
  }

  private async runSimulation(roleId: string, action: string, resource: string, resourcePolicy?: PolicyDocument): Promise<{ overallResult?: string; errors?: unknown }> {
    const documents = this.policies.get(roleId) ?? [];
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
    return result as { overallResult?: string; errors?: unknown };
  }

  violations(): CallRecord[] {
    return this.calls.filter((c) => !c.allowed);
  }
}
