/**
 * Builds our app's stacks from a config the way bin/app.ts does (same context as
 * cdk.json, same construct code path, real esbuild bundling of the real handlers).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type Environment } from 'aws-cdk-lib';
import { parseConfig, type PerfpilotConfig } from '#lib/config';
import { addPerfpilotStacks, type PerfpilotStacks } from '#lib/stacks/perfpilot-app';

const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: Record<string, unknown> };

export const LOCAL_CONFIG_FILE = new URL('../../perfpilot.config.json', import.meta.url);
export const AWS_CONFIG_FILE = new URL('./fixtures/aws.config.json', import.meta.url);

export function rawConfig(file: URL): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/**
 * One cloud assembly folder for every app of a test file: CDK caches a bundled asset
 * per (source, bundling options, outdir), so the handlers are bundled once per file,
 * not once per app. Read each app's templates right after building it, before the
 * next app's synth writes the same stack names.
 */
let sharedOutdir: string | undefined;

/** An App with cdk.json's context, writing to this file's shared assembly folder. */
export function newApp(): App {
  sharedOutdir ??= mkdtempSync(join(tmpdir(), 'perfpilot-stacks-'));
  return new App({ context: cdkJson.context, outdir: sharedOutdir });
}

export function buildApp(config: PerfpilotConfig | Record<string, unknown>, env?: Environment): PerfpilotStacks & { app: App; config: PerfpilotConfig } {
  // A parsed config parses to itself; a raw file (which may name some sections, such as alerts) gets its defaults.
  const parsed = parseConfig(config);
  const app = newApp();
  return { app, config: parsed, ...addPerfpilotStacks(app, parsed, env) };
}

type Cfn = unknown;

/** A CloudFormation value as text, intrinsics shown as `<Ref>` / `<Id.Attr>`, for wildcard checks. */
export function render(value: Cfn): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if ('Ref' in v) return `<${String(v.Ref)}>`;
    if ('Fn::GetAtt' in v) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
    if ('Fn::ImportValue' in v) return `<import:${render(v['Fn::ImportValue'])}>`;
    if ('Fn::Join' in v) {
      const [sep, parts] = v['Fn::Join'] as [string, Cfn[]];
      return parts.map(render).join(sep);
    }
  }
  return JSON.stringify(value);
}
