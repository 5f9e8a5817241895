/**
 * The synthesized cloud assembly, read as CloudFormation would deploy it: the
 * templates of both stacks with every intrinsic (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
 * Fn::ImportValue, Fn::Select/Split) resolved to the physical names and ARNs the
 * resources would have in one account and region.
 */
import { join } from 'node:path';
import type { App } from 'aws-cdk-lib';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const PARTITION = 'aws';

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly DependsOn?: string | string[];
}
export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Outputs?: Record<string, { Value: unknown; Export?: { Name: unknown } }>;
}

export interface StackView {
  readonly name: string;
  readonly template: CfnTemplate;
  resolve<T = unknown>(value: unknown): T;
  resources(type: string): [string, CfnResource][];
  /** Physical id (what Ref gives) of a logical id. */
  ref(logicalId: string): string;
  arn(logicalId: string): string;
}

export interface Assembly {
  readonly outdir: string;
  readonly stacks: Record<string, StackView>;
  assetDir(code: unknown): string;
}

/** A resource's physical name: its name property (resolved: a bucket's carries the account and region), else its logical id. */
function physicalName(type: string, id: string, p: Record<string, unknown>, resolve: (v: unknown) => unknown = (v) => v): string {
  const named: Record<string, string> = {
    'AWS::Lambda::Function': 'FunctionName',
    'AWS::StepFunctions::StateMachine': 'StateMachineName',
    'AWS::Events::Rule': 'Name',
    'AWS::DynamoDB::Table': 'TableName',
    'AWS::SQS::Queue': 'QueueName',
    'AWS::SNS::Topic': 'TopicName',
    'AWS::CloudWatch::Alarm': 'AlarmName',
    'AWS::Logs::LogGroup': 'LogGroupName',
    'AWS::S3::Bucket': 'BucketName',
  };
  const field = named[type];
  if (!field || p[field] === undefined) return id;
  const value = resolve(p[field]);
  return typeof value === 'string' ? value : id;
}

function arnOf(type: string, name: string): string {
  const a = `${ACCOUNT}`;
  switch (type) {
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${REGION}:${a}:function:${name}`;
    case 'AWS::StepFunctions::StateMachine':
      return `arn:aws:states:${REGION}:${a}:stateMachine:${name}`;
    case 'AWS::Events::Rule':
      return `arn:aws:events:${REGION}:${a}:rule/${name}`;
    case 'AWS::IAM::Role':
      return `arn:aws:iam::${a}:role/${name}`;
    case 'AWS::SNS::Topic':
      return `arn:aws:sns:${REGION}:${a}:${name}`;
    case 'AWS::KMS::Key':
      return `arn:aws:kms:${REGION}:${a}:key/${name}`;
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${REGION}:${a}:${name}`;
    case 'AWS::DynamoDB::Table':
      return `arn:aws:dynamodb:${REGION}:${a}:table/${name}`;
    case 'AWS::Logs::LogGroup':
      return `arn:aws:logs:${REGION}:${a}:log-group:${name}:*`;
    case 'AWS::CloudWatch::Alarm':
      return `arn:aws:cloudwatch:${REGION}:${a}:alarm:${name}`;
    case 'AWS::S3::Bucket':
      return `arn:aws:s3:::${name}`;
    default:
      return `arn:aws:unknown:${REGION}:${a}:${name}`;
  }
}

const PSEUDO: Record<string, string> = {
  'AWS::Region': REGION,
  'AWS::AccountId': ACCOUNT,
  'AWS::Partition': PARTITION,
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::NoValue': '',
};

function view(name: string, template: CfnTemplate, imports: Map<string, string>): StackView {
  const stack: StackView = {
    name,
    template,
    ref(id) {
      const r = template.Resources[id];
      if (!r) throw new Error(`${name}: no resource ${id}`);
      const p = (r.Properties ?? {}) as Record<string, unknown>;
      const n = physicalName(r.Type, id, p, (v) => stack.resolve(v));
      if (['AWS::StepFunctions::StateMachine', 'AWS::SNS::Topic'].includes(r.Type)) return arnOf(r.Type, n);
      if (r.Type === 'AWS::SQS::Queue') return `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${n}`;
      return n;
    },
    arn(id) {
      const r = template.Resources[id];
      if (!r) throw new Error(`${name}: no resource ${id}`);
      return arnOf(r.Type, physicalName(r.Type, id, (r.Properties ?? {}) as Record<string, unknown>, (v) => stack.resolve(v)));
    },
    resources(type) {
      return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
    },
    resolve<T>(value: unknown): T {
      const go = (v: unknown): unknown => {
        if (Array.isArray(v)) return v.map(go);
        if (!v || typeof v !== 'object') return v;
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o);
        if (keys.length === 1) {
          const [k] = keys as [string];
          const arg = o[k];
          if (k === 'Ref') return PSEUDO[arg as string] ?? stack.ref(arg as string);
          if (k === 'Fn::GetAtt') {
            const [id, attr] = Array.isArray(arg) ? (arg as string[]) : String(arg).split('.');
            const r = template.Resources[id!];
            if (!r) throw new Error(`${name}: GetAtt of unknown ${id}`);
            if (attr === 'Arn' || attr === 'TopicArn') return stack.arn(id!);
            if (attr === 'QueueName' || attr === 'Name' || attr === 'TableName') return physicalName(r.Type, id!, (r.Properties ?? {}) as Record<string, unknown>, (v) => stack.resolve(v));
            throw new Error(`${name}: GetAtt ${id}.${attr} is not modelled`);
          }
          if (k === 'Fn::Join') {
            const [sep, parts] = arg as [string, unknown[]];
            return (go(parts) as unknown[]).join(sep);
          }
          if (k === 'Fn::Sub') {
            const [text, vars] = (Array.isArray(arg) ? arg : [arg, {}]) as [string, Record<string, unknown>];
            return text.replace(/\$\{([^}]+)\}/g, (_m, ref: string) => {
              if (vars[ref] !== undefined) return String(go(vars[ref]));
              if (PSEUDO[ref] !== undefined) return PSEUDO[ref]!;
              const [id, attr] = ref.split('.');
              return String(go(attr ? { 'Fn::GetAtt': [id, attr] } : { Ref: id }));
            });
          }
          if (k === 'Fn::ImportValue') {
            const exportName = String(go(arg));
            const value = imports.get(exportName);
            if (value === undefined) throw new Error(`${name}: no stack exports ${exportName}`);
            return value;
          }
          if (k === 'Fn::GetStackOutput') {
            // CDK's weak cross-stack references read the other stack's output by name.
            const a = arg as { StackName: string; OutputName: string };
            const value = imports.get(`${String(go(a.StackName))}|${String(go(a.OutputName))}`);
            if (value === undefined) throw new Error(`${name}: stack ${String(a.StackName)} has no output ${String(a.OutputName)}`);
            return value;
          }
          if (k === 'Fn::Select') {
            const [index, list] = arg as [number, unknown];
            return (go(list) as unknown[])[Number(index)];
          }
          if (k === 'Fn::Split') {
            const [sep, text] = arg as [string, unknown];
            return String(go(text)).split(sep);
          }
        }
        return Object.fromEntries(Object.entries(o).map(([key, x]) => [key, go(x)]));
      };
      return go(value) as T;
    },
  };
  return stack;
}

/** Synthesizes the app (bundling every function) and reads its stacks. */
export function readAssembly(app: App): Assembly {
  const cloud = app.synth();
  const imports = new Map<string, string>();
  const stacks: Record<string, StackView> = {};
  // Exporting stacks first: their outputs resolve the importers' Fn::ImportValue.
  const artifacts = [...cloud.stacks].sort((a, b) => a.dependencies.length - b.dependencies.length);
  for (const artifact of artifacts) {
    const s = view(artifact.stackName, artifact.template as CfnTemplate, imports);
    for (const [outputName, output] of Object.entries(s.template.Outputs ?? {})) {
      const value = String(s.resolve(output.Value));
      imports.set(`${artifact.stackName}|${outputName}`, value);
      if (output.Export) imports.set(String(s.resolve(output.Export.Name)), value);
    }
    stacks[artifact.stackName] = s;
  }
  return {
    outdir: cloud.directory,
    stacks,
    assetDir(code) {
      const key = (code as { S3Key?: string }).S3Key;
      if (!key) throw new Error(`function code ${JSON.stringify(code)} is not an S3 asset`);
      return join(cloud.directory, `asset.${key.replace(/\.zip$/, '')}`);
    },
  };
}
