/**
 * The deployed shape, assembled: the synthesized assembly's functions running as
 * Lambda would (lambda-host.ts), the AWS stand-in in front of every API they call
 * (aws-stand-in.ts), the ledger table on dynalite, and the rollout state machines from
 * the template run by aws-local-stepfunctions, their Lambda tasks routed to those
 * functions after the IAM check of the state machine's role; schedules start them with
 * the rule's own input after the check of the rule's role.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { StateMachine } from 'aws-local-stepfunctions';
import { startLocalDynamo, ledgerTableDefinition, type LocalDynamo } from '#local/dynamo';
import { ACCOUNT, REGION, type Assembly, type StackView } from './assembly.ts';
import { AwsStandIn, type CacheGroup } from './aws-stand-in.ts';
import type { MetricId } from './cloudwatch.ts';
import { IamCheck } from './iam-check.ts';
import { LambdaHost, type DeployedFunction } from './lambda-host.ts';

export interface DeploymentOptions {
  readonly assembly: Assembly;
  readonly stackName: string;
  readonly ledgerStackName: string;
  readonly nodeBinary: string;
  readonly caFile: string;
  readonly secrets: Readonly<Record<string, string>>;
  readonly cache: CacheGroup;
  readonly awsPublished: (id: MetricId) => number | undefined;
}

export interface ExecutionResult {
  readonly executionArn: string;
  readonly name: string;
  readonly status: 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  readonly output?: unknown;
  readonly error?: string;
  readonly cause?: string;
  readonly states: readonly string[];
}

export class Deployment {
  readonly stack: StackView;
  readonly iam: IamCheck;
  readonly functions: DeployedFunction[];
  readonly hosts = new Map<string, LambdaHost>();
  readonly logs: { fn: string; line: string }[] = [];
  standIn!: AwsStandIn;
  dynamo!: LocalDynamo;

  constructor(private readonly o: DeploymentOptions) {
    this.stack = o.assembly.stacks[o.stackName]!;
    this.iam = new IamCheck(this.stack);
    this.functions = this.stack.resources('AWS::Lambda::Function').map(([id, r], i) => {
      const p = r.Properties as Record<string, unknown>;
      return {
        logicalId: id,
        name: this.stack.ref(id),
        arn: this.stack.arn(id),
        roleLogicalId: (p.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]!,
        bundleDir: o.assembly.assetDir(p.Code),
        timeoutSeconds: Number(p.Timeout ?? 3),
        memoryMb: Number(p.MemorySize ?? 128),
        environment: this.stack.resolve<Record<string, string>>((p.Environment as { Variables: unknown }).Variables),
        accessKeyId: `ASIASTANDIN${String(i).padStart(9, '0')}`,
      };
    });
  }

  async start(): Promise<void> {
    const ledger = this.o.assembly.stacks[this.o.ledgerStackName]!;
    const [[, table]] = ledger.resources('AWS::DynamoDB::Table') as unknown as [[string, { Properties: Record<string, unknown> }]];
    this.dynamo = await startLocalDynamo({ tableName: `scratch-${randomUUID().slice(0, 8)}` });
    await this.dynamo.client.send(new CreateTableCommand(ledgerTableDefinition(String(table.Properties.TableName))));
    this.standIn = new AwsStandIn({
      stack: this.stack,
      iam: this.iam,
      dynamoEndpoint: this.dynamo.endpoint,
      functions: this.functions,
      invoke: (fn, payload) => this.host(fn).invoke(payload),
      secrets: this.o.secrets,
      cache: this.o.cache,
      awsPublished: this.o.awsPublished,
    });
    const endpoint = await this.standIn.start();
    for (const fn of this.functions) {
      this.hosts.set(
        fn.logicalId,
        new LambdaHost(fn, {
          nodeBinary: this.o.nodeBinary,
          endpoint,
          region: REGION,
          caFile: this.o.caFile,
          onLog: (f, line) => {
            this.logs.push({ fn: f.name, line });
            // The function's log stream: CloudWatch Logs extracts its EMF documents.
            if (line.includes('"_aws"')) this.standIn.ingest(line);
          },
        }),
      );
    }
  }

  host(fn: DeployedFunction): LambdaHost {
    return this.hosts.get(fn.logicalId)!;
  }

  functionWithEnv(key: string, value?: string): DeployedFunction {
    const fn = this.functions.find((f) => key in f.environment && (value === undefined || f.environment[key] === value));
    if (!fn) throw new Error(`no function with ${key}${value ? `=${value}` : ''}`);
    return fn;
  }

  functionNamed(name: string): DeployedFunction {
    const fn = this.functions.find((f) => f.name === name);
    if (!fn) throw new Error(`no function named ${name}`);
    return fn;
  }

  /** The function whose logical id starts with `prefix` (CDK's ids: construct path, then a hash). */
  functionWithId(prefix: string): DeployedFunction {
    const found = this.functions.filter((f) => f.logicalId.startsWith(prefix));
    if (found.length !== 1) throw new Error(`${found.length} functions have a logical id starting with ${prefix}`);
    return found[0]!;
  }

  /**
   * The template's WebSocket API as API Gateway runs it: its id (what Ref gives), its
   * stage and, per route key, the function its integration invokes — each checked
   * against that function's resource policy (a Lambda permission for API Gateway from
   * this API and route), as API Gateway's invocation would be.
   */
  async webSocketApi(): Promise<{ apiId: string; stage: string; routes: Map<string, DeployedFunction> }> {
    const [[apiLogicalId]] = this.stack.resources('AWS::ApiGatewayV2::Api') as [[string, unknown]];
    const apiId = this.stack.ref(apiLogicalId);
    const [[, stageResource]] = this.stack.resources('AWS::ApiGatewayV2::Stage') as unknown as [[string, { Properties: unknown }]];
    const stage = this.stack.resolve<{ StageName: string }>(stageResource.Properties).StageName;
    const permissions = this.stack.resources('AWS::Lambda::Permission').map(([, r]) => this.stack.resolve<Record<string, string>>(r.Properties)).filter((p) => p.Principal === 'apigateway.amazonaws.com');
    const glob = (pattern: string, text: string) => new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`).test(text);
    const routes = new Map<string, DeployedFunction>();
    for (const [, route] of this.stack.resources('AWS::ApiGatewayV2::Route')) {
      const r = this.stack.resolve<{ RouteKey: string; Target: string }>(route.Properties);
      const integration = this.stack.resolve<{ IntegrationUri: string }>(this.stack.template.Resources[r.Target.replace(/^integrations\//, '')]!.Properties);
      const fn = this.functions.find((f) => integration.IntegrationUri.includes(`/functions/${f.arn}/invocations`));
      if (!fn) throw new Error(`route ${r.RouteKey} integrates ${integration.IntegrationUri}, not a function of the stack`);
      const sourceArn = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${apiId}/${stage}/${r.RouteKey}`;
      const permitted = permissions.some((p) => p.Action === 'lambda:InvokeFunction' && p.FunctionName === fn.arn && glob(p.SourceArn ?? '*', sourceArn));
      this.iam.calls.push({ caller: `api ${apiId} route ${r.RouteKey}`, action: 'lambda:InvokeFunction (resource policy)', resource: fn.arn, allowed: permitted });
      if (permitted) routes.set(r.RouteKey, fn);
    }
    return { apiId, stage, routes };
  }

  /** An asynchronous (`Event`) invocation by a caller outside the stack (the application): it runs on its own. */
  invokeEvent(fn: DeployedFunction, payload: unknown): void {
    this.standIn.track(this.host(fn).invoke(payload));
  }

  /** The schedule rule `name` fires: its target (a state machine) starts with the rule's input, if the rule's role may. */
  async fireSchedule(ruleName: string): Promise<ExecutionResult> {
    const [id, rule] = this.stack.resources('AWS::Events::Rule').find(([, r]) => (r.Properties as { Name?: string }).Name === ruleName) ?? [];
    if (!rule) throw new Error(`no rule ${ruleName}`);
    const p = this.stack.resolve<{ ScheduleExpression?: string; State: string; Targets: { Arn: string; Input?: string; RoleArn?: string }[] }>(rule.Properties);
    if (!p.ScheduleExpression) throw new Error(`${ruleName} is not a schedule`);
    const [target] = p.Targets;
    const roleId = (rule.Properties as { Targets: { RoleArn: { 'Fn::GetAtt': string[] } }[] }).Targets[0]!.RoleArn['Fn::GetAtt'][0]!;
    if (!(await this.iam.check(`rule ${ruleName}`, roleId, 'states:StartExecution', [target!.Arn]))) throw new Error(`${ruleName}'s role may not start ${target!.Arn}`);
    void id;
    return this.runStateMachine(target!.Arn, JSON.parse(target!.Input ?? '{}'));
  }

  /** Runs the state machine of the template with this ARN, as Step Functions would. */
  async runStateMachine(stateMachineArn: string, input: unknown): Promise<ExecutionResult> {
    const [id, sm] = this.stack.resources('AWS::StepFunctions::StateMachine').find(([smId]) => this.stack.ref(smId) === stateMachineArn)!;
    const p = sm.Properties as { DefinitionString: unknown; RoleArn: { 'Fn::GetAtt': string[] } };
    const definition = JSON.parse(this.stack.resolve<string>(p.DefinitionString)) as { States: Record<string, { Type: string; Resource?: string }> };
    const roleId = p.RoleArn['Fn::GetAtt'][0]!;
    const handlers: Record<string, (event: unknown) => Promise<unknown>> = {};
    for (const [stateName, state] of Object.entries(definition.States)) {
      if (state.Type !== 'Task' || !state.Resource) continue;
      const fn = this.functions.find((f) => f.arn === state.Resource);
      if (!fn) throw new Error(`task ${stateName} calls ${state.Resource}, which is not a function of the stack`);
      handlers[stateName] = async (event) => {
        if (!(await this.iam.check(`state machine ${id}`, roleId, 'lambda:InvokeFunction', [fn.arn]))) {
          throw Object.assign(new Error(JSON.stringify({ errorMessage: 'AccessDenied: lambda:InvokeFunction' })), { name: 'Lambda.AWSLambdaException' });
        }
        try {
          return await this.host(fn).invoke(event);
        } catch (error) {
          const e = error as Error & { errorType?: string };
          // Step Functions: Error is the function's errorType, Cause its error document.
          throw Object.assign(new Error(JSON.stringify({ errorType: e.errorType ?? e.name, errorMessage: e.message })), { name: e.errorType ?? e.name });
        }
      };
    }
    const name = `sched-${randomUUID().slice(0, 8)}`;
    const executionArn = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
    const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } as never });
    const execution = machine.run(input as never, {
      overrides: { taskResourceLocalHandlers: handlers as never },
      context: { Execution: { Id: executionArn, Name: name, StartTime: new Date().toISOString(), Input: input }, StateMachine: { Id: stateMachineArn, Name: stateMachineArn.split(':').at(-1) } } as never,
    });
    const states: string[] = [];
    const running = { executionArn, stateMachineArn, name, status: 'RUNNING' as ExecutionResult['status'] | 'RUNNING', stop: () => execution.abort() };
    this.standIn.executions.set(executionArn, running);
    const drain = (async () => {
      for await (const ev of execution.eventLogs) {
        const e = ev as { type: string; state?: { name: string } };
        if (e.type === 'StateEntered' && e.state) states.push(e.state.name);
      }
    })();
    let result: ExecutionResult;
    try {
      const output = await execution.result;
      result = { executionArn, name, status: 'SUCCEEDED', output, states };
    } catch (error) {
      const aborted = (error as Error).name === 'ExecutionAbortedError';
      const cause = (error as Error & { cause?: Error }).cause;
      result = { executionArn, name, status: aborted ? 'ABORTED' : 'FAILED', error: cause?.name ?? (error as Error).name, cause: cause?.message ?? (error as Error).message, states };
    }
    await drain.catch(() => undefined);
    running.status = result.status;
    if (result.status !== 'SUCCEEDED') {
      // Step Functions' status-change event, which the rollout-ended-badly rule matches.
      this.standIn.emit({
        version: '0',
        id: randomUUID(),
        'detail-type': 'Step Functions Execution Status Change',
        source: 'aws.states',
        account: ACCOUNT,
        region: REGION,
        time: new Date().toISOString(),
        resources: [executionArn],
        detail: { executionArn, stateMachineArn, name, status: result.status },
      });
    }
    return result;
  }

  async stop(): Promise<void> {
    await this.standIn?.idle();
    await Promise.allSettled([...this.hosts.values()].map((h) => h.stop()));
    await this.standIn?.stop();
    await this.dynamo?.close();
  }
}
