/**
 * The functions of a synthesized Perfpilot app as they deploy: each one's bundle folder
 * in the cloud assembly and the environment its template gives it (intrinsics rendered
 * as stand-in strings: a cold start only reads them).
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { parseConfig } from '#lib/config';
import { addPerfpilotStacks } from '#lib/stacks/perfpilot-app';

export interface DeployedFunction {
  /** The function's role in Perfpilot, from its environment: `caching`, `database`, `rollback`, … */
  readonly name: string;
  readonly logicalId: string;
  readonly assetDir: string;
  readonly environment: Readonly<Record<string, string>>;
  /** Bytes of each file in the asset. */
  readonly files: Readonly<Record<string, number>>;
}

type Cfn = unknown;

/** A CloudFormation value as the stand-in text a cold start reads. */
function standIn(value: Cfn): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if ('Ref' in v) return `ref-${String(v.Ref)}`;
    if ('Fn::GetAtt' in v) return `arn:aws:lambda:us-east-1:123456789012:function:${(v['Fn::GetAtt'] as string[])[0]}`;
    if ('Fn::Join' in v) {
      const [sep, parts] = v['Fn::Join'] as [string, Cfn[]];
      return parts.map(standIn).join(sep);
    }
  }
  return JSON.stringify(value);
}

const CDK_CONTEXT = (JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: Record<string, unknown> })
  .context;

/** Synthesizes the app for a config file (JSON) into a fresh folder and lists its functions. */
export function synthesizeFunctions(configFile: URL): DeployedFunction[] {
  const config = parseConfig(JSON.parse(readFileSync(configFile, 'utf8')), configFile.pathname);
  const outdir = mkdtempSync(join(tmpdir(), 'perfpilot-self-'));
  const app = new App({ context: CDK_CONTEXT, outdir });
  const stacks = addPerfpilotStacks(app, config);
  const assembly = app.synth();
  const template = assembly.getStackByName(stacks.autopilot.stackName).template as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const out: DeployedFunction[] = [];
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const code = resource.Properties.Code as { S3Key?: string };
    if (!code.S3Key) continue;
    const assetDir = join(outdir, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
    const variables = (resource.Properties.Environment as { Variables?: Record<string, Cfn> } | undefined)?.Variables ?? {};
    const environment = Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, standIn(v)]));
    const service = environment.POWERTOOLS_SERVICE_NAME ?? logicalId;
    const name = service.startsWith(`${config.name}-`) ? service.slice(config.name.length + 1) : service;
    const files = Object.fromEntries(readdirSync(assetDir).map((f) => [f, statSync(join(assetDir, f)).size]));
    out.push({ name, logicalId, assetDir, environment, files });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
