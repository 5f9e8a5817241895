/**
 * The AWS API calls a piece of code makes, declared beside that code, as data: the
 * CDK constructs grant exactly these (see `OptimizerFunction.bindAccess`), so a new
 * call without a grant cannot be written by accident, and the IAM test checks the
 * calls the suite records against the synthesized policies.
 *
 * No aws-cdk-lib here: the declarations are imported by Lambda code too.
 */

/**
 * An ARN with placeholders the stack fills in: `{partition}`, `{region}`, `{account}`,
 * and the resources the construct wires the code to (`{ledgerTableArn}`,
 * `{topicArn}`, ...: see `renderArnTemplates`). `*` alone only for actions that have
 * no resource-level permissions.
 */
export type ArnTemplate = string;

/** Values for the placeholders of ArnTemplates: one value, or several (one ARN each). */
export type ArnBindings = Readonly<Record<string, string | readonly string[]>>;

/**
 * The ARNs a template stands for. A placeholder bound to a list yields one ARN per
 * value; an unbound placeholder is an error (a declaration the construct cannot wire).
 */
export function renderArnTemplates(template: ArnTemplate, bindings: ArnBindings): string[] {
  const match = /\{([A-Za-z]+)\}/.exec(template);
  if (!match) return [template];
  const name = match[1]!;
  const value = bindings[name];
  if (value === undefined) throw new Error(`access declaration ${template}: nothing is bound to {${name}}`);
  const values = typeof value === 'string' ? [value] : value;
  return values.flatMap((v) => renderArnTemplates(template.replaceAll(`{${name}}`, v), bindings));
}

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
