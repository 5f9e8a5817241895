/**
 * The AWS API calls a piece of code makes, declared beside that code, as data: the
 * CDK constructs grant exactly these (see `OptimizerFunction.bindAccess`), so a new
 * call without a grant cannot be written by accident, and the IAM test checks the
 * calls the suite records against the synthesized policies.
 *
 * No aws-cdk-lib here: the declarations are imported by Lambda code too.
 */

/**
 * An ARN with placeholders the stack fills in: `{partition}`, `{region}`, `{account}`.
 * `*` alone only for actions that have no resource-level permissions.
 */
export type ArnTemplate = string;

export interface AwsAccess {
  /** IAM actions, `service:Action`. */
  readonly actions: readonly string[];
  readonly resources: readonly ArnTemplate[];
  /**
   * Why a resource has a wildcard (`*` or a `*` inside an ARN); required then, and
   * shown to reviewers as the cdk-nag acknowledgement.
   */
  readonly wildcardReason?: string;
}

/** `arn:{partition}:<service>:{region}:{account}:<resource>` */
export function arnTemplate(service: string, resource: string): ArnTemplate {
  return `arn:{partition}:${service}:{region}:{account}:${resource}`;
}

export function hasWildcard(resource: ArnTemplate): boolean {
  return resource.includes('*');
}

/** Fails loudly on a declaration that grants a wildcard without saying why. */
export function assertAccessDeclared(access: readonly AwsAccess[], owner: string): void {
  for (const a of access) {
    if (a.actions.length === 0 || a.resources.length === 0) throw new Error(`${owner}: an access declaration needs actions and resources`);
    if (a.resources.some(hasWildcard) && !a.wildcardReason) {
      throw new Error(`${owner}: ${a.actions.join(', ')} on ${a.resources.join(', ')} has a wildcard but no wildcardReason`);
    }
  }
}
