/**
 * Every AWS API the deployed functions call, answered here as the service would, after
 * the IAM check of the caller's synthesized role (iam-check.ts): DynamoDB is forwarded
 * to dynalite; CloudWatch (GetMetricData, DescribeAlarms) answers from cloudwatch.ts;
 * Step Functions, EventBridge, Lambda, SNS, Secrets Manager and ElastiCache keep just
 * the state those calls need; S3 keeps the template's buckets' objects in memory; API
 * Gateway's `@connections` calls are forwarded to the local WebSocket gateway that
 * serves the template's API (real sockets). The caller is known by its SigV4 access key
 * (each function gets its role's), the service by the SigV4 credential scope.
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { ACCOUNT, REGION, type StackView } from './assembly.ts';
import { alarmsOf, evaluateAlarms, evaluateExpression, MetricStore, type AlarmModel, type MetricId } from './cloudwatch.ts';
import type { IamCheck } from './iam-check.ts';
import type { DeployedFunction } from './lambda-host.ts';

export interface CacheGroup {
  readonly replicationGroupId: string;
  readonly parameterGroupName: string;
  readonly host: string;
  readonly port: number;
  readonly primaryClusterId: string;
  readonly parameters: Map<string, string>;
}

export interface StandInOptions {
  readonly stack: StackView;
  readonly iam: IamCheck;
  readonly dynamoEndpoint: string;
  readonly functions: readonly DeployedFunction[];
  /** Invokes a function (the Lambda service); rejects with the function's error. */
  readonly invoke: (fn: DeployedFunction, payload: unknown) => Promise<unknown>;
  readonly secrets: Readonly<Record<string, string>>;
  readonly cache: CacheGroup;
  readonly awsPublished: (id: MetricId) => number | undefined;
}

export interface RunningExecution {
  readonly executionArn: string;
  readonly stateMachineArn: string;
  readonly name: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  stop(error: string, cause: string): void;
}

interface EventTarget {
  readonly rule: string;
  readonly ruleArn: string;
  readonly pattern: Record<string, unknown>;
  readonly functionArn: string;
  readonly deadLetterArn?: string;
  readonly retryAttempts: number;
}

export interface DeliveredEvent {
  readonly rule: string;
  readonly event: Record<string, unknown>;
  readonly attempts: number;
  readonly outcome: 'succeeded' | 'dead-lettered';
  readonly result?: unknown;
  readonly error?: string;
}

type Reply = { status: number; headers?: Record<string, string>; body: string | Buffer };

/** One S3 request a function made, as S3 answered it. */
export interface S3Request {
  readonly caller: string;
  readonly operation: 'GetObject' | 'PutObject' | 'HeadObject' | 'ListObjectsV2';
  readonly bucket: string;
  readonly key?: string;
  readonly status: number;
}

/** One `@connections` call a function made, as the gateway answered it. */
export interface ConnectionsRequest {
  readonly caller: string;
  readonly method: string;
  readonly apiId: string;
  readonly connectionId: string;
  readonly status: number;
}

const s3Error = (status: number, code: string, message: string): Reply => ({
  status,
  headers: { 'content-type': 'application/xml' },
  body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${esc(message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`,
});

const xml = (action: string, result: string, ns = 'http://elasticache.amazonaws.com/doc/2015-02-02/') =>
  `<?xml version="1.0"?><${action}Response xmlns="${ns}"><${action}Result>${result}</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`;
const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** EventBridge's pattern matching, for the operators our rules use (exact values, prefix). */
export function matchesPattern(pattern: unknown, event: unknown): boolean {
  if (Array.isArray(pattern)) {
    return pattern.some((p) => {
      if (p && typeof p === 'object' && 'prefix' in (p as object)) return typeof event === 'string' && event.startsWith(String((p as { prefix: string }).prefix));
      return p === event;
    });
  }
  if (pattern && typeof pattern === 'object') {
    if (!event || typeof event !== 'object') return false;
    return Object.entries(pattern as Record<string, unknown>).every(([k, p]) => matchesPattern(p, (event as Record<string, unknown>)[k]));
  }
  return pattern === event;
}

export class AwsStandIn {
  readonly metrics: MetricStore;
  readonly alarms: AlarmModel[];
  readonly executions = new Map<string, RunningExecution>();
  readonly delivered: DeliveredEvent[] = [];
  readonly deadLetters: { queueArn: string; body: unknown }[] = [];
  readonly disabledRules = new Set<string>();
  readonly published: { topicArn: string; subject: string; message: string }[] = [];
  /** Fault injection: the next N Lambda invokes (by `throttleCaller`, when set) are throttled (429), as during an incident. */
  throttleNextInvokes = 0;
  throttleCaller: string | undefined;
  readonly throttled: string[] = [];
  /** Asynchronous (`Event`) invocations accepted, by callee name. */
  readonly eventInvokes: string[] = [];
  /** The template's buckets (by physical name) and their objects. */
  readonly buckets = new Map<string, Map<string, Buffer>>();
  readonly s3Requests: S3Request[] = [];
  /** The template's WebSocket APIs (by API id) → the management endpoint of the local gateway serving each (`http://…/<stage>`). */
  readonly connectionApis = new Map<string, string>();
  readonly connectionsRequests: ConnectionsRequest[] = [];
  private readonly byKey = new Map<string, DeployedFunction>();
  private readonly targets: EventTarget[] = [];
  private server: http.Server | undefined;
  /** Everything running on its own: deliveries and asynchronous invocations. */
  private readonly pending = new Set<Promise<unknown>>();
  private readonly deliveries = new Set<Promise<unknown>>();
  endpoint = '';

  constructor(private readonly o: StandInOptions) {
    this.metrics = new MetricStore(o.awsPublished);
    this.alarms = alarmsOf(o.stack);
    for (const fn of o.functions) this.byKey.set(fn.accessKeyId, fn);
    for (const [id] of o.stack.resources('AWS::S3::Bucket')) this.buckets.set(o.stack.ref(id), new Map());
    for (const [id, rule] of o.stack.resources('AWS::Events::Rule')) {
      const p = o.stack.resolve<{ EventPattern?: Record<string, unknown>; Targets?: Record<string, unknown>[]; Name: string }>(rule.Properties);
      if (!p.EventPattern) continue;
      for (const t of p.Targets ?? []) {
        this.targets.push({
          rule: p.Name,
          ruleArn: o.stack.arn(id),
          pattern: p.EventPattern,
          functionArn: String(t.Arn),
          deadLetterArn: (t.DeadLetterConfig as { Arn?: string } | undefined)?.Arn,
          retryAttempts: Number((t.RetryPolicy as { MaximumRetryAttempts?: number } | undefined)?.MaximumRetryAttempts ?? 185),
        });
      }
    }
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.handle(req, Buffer.concat(chunks)).then(
          (reply) => {
            res.writeHead(reply.status, reply.headers ?? {});
            res.end(reply.body);
          },
          (error: Error) => {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ __type: 'InternalFailure', message: error.stack }));
          },
        );
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.endpoint;
  }

  /** Waits for everything running on its own (a dispatcher's handovers end when it runs out of work). */
  async idle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Work that runs on its own (an asynchronous invocation), awaited by settle() and stop(). */
  track(work: Promise<unknown>): void {
    const run = work.catch(() => undefined);
    this.pending.add(run);
    void run.finally(() => this.pending.delete(run));
  }

  /** Waits for every EventBridge delivery (and its retries) started so far. */
  async settle(): Promise<void> {
    while (this.deliveries.size) await Promise.allSettled([...this.deliveries]);
  }

  /** An EMF log line from the application or a function: metrics, then alarm evaluation (as CloudWatch does every period). */
  ingest(line: string): void {
    const touched = this.metrics.ingestEmf(line);
    if (touched.length) this.evaluate(Date.now(), touched);
  }

  evaluate(nowMs = Date.now(), touched?: readonly MetricId[]): void {
    for (const change of evaluateAlarms(this.metrics, this.alarms, nowMs, touched)) {
      this.emit({
        version: '0',
        id: randomUUID(),
        'detail-type': 'CloudWatch Alarm State Change',
        source: 'aws.cloudwatch',
        account: ACCOUNT,
        time: new Date(nowMs).toISOString(),
        region: REGION,
        resources: [change.alarm.arn],
        detail: {
          alarmName: change.alarm.name,
          state: { value: change.alarm.state, reason: change.reason, timestamp: new Date(nowMs).toISOString() },
          previousState: { value: change.previous },
        },
      });
    }
  }

  /** An event on the default bus: every matching rule's Lambda target gets it asynchronously. */
  emit(event: Record<string, unknown>): void {
    for (const target of this.targets.filter((t) => matchesPattern(t.pattern, event))) {
      const delivery = this.deliver(target, event);
      this.deliveries.add(delivery);
      this.track(delivery);
      void delivery.finally(() => this.deliveries.delete(delivery));
    }
  }

  private async deliver(target: EventTarget, event: Record<string, unknown>): Promise<void> {
    const fn = this.o.functions.find((f) => f.arn === target.functionArn);
    if (!fn) throw new Error(`rule ${target.rule} targets unknown function ${target.functionArn}`);
    // EventBridge may invoke it only if the function's resource policy allows this rule.
    const permitted = this.o.stack.resources('AWS::Lambda::Permission').some(([, r]) => {
      const p = this.o.stack.resolve<Record<string, string>>(r.Properties);
      return p.Action === 'lambda:InvokeFunction' && p.Principal === 'events.amazonaws.com' && p.FunctionName === fn.arn && p.SourceArn === target.ruleArn;
    });
    this.o.iam.calls.push({ caller: `rule ${target.rule}`, action: 'lambda:InvokeFunction (resource policy)', resource: fn.arn, allowed: permitted });
    if (!permitted) return;
    // Lambda's asynchronous invocation: the event is retried (EventInvokeConfig), then sent to the on-failure destination.
    const config = this.o.stack.resources('AWS::Lambda::EventInvokeConfig').map(([, r]) => this.o.stack.resolve<Record<string, unknown>>(r.Properties)).find((c) => c.FunctionName === fn.name);
    const attempts = 1 + Number(config?.MaximumRetryAttempts ?? 2);
    let lastError = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const result = await this.o.invoke(fn, event);
        this.delivered.push({ rule: target.rule, event, attempts: attempt, outcome: 'succeeded', result });
        return;
      } catch (error) {
        lastError = `${(error as Error).name}: ${(error as Error).message}`;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const destination = (config?.DestinationConfig as { OnFailure?: { Destination?: string } } | undefined)?.OnFailure?.Destination;
    if (destination) {
      await this.o.iam.check(fn.name, fn.roleLogicalId, 'sqs:SendMessage', [destination]);
      this.deadLetters.push({ queueArn: destination, body: { requestContext: { condition: 'RetriesExhausted' }, requestPayload: event, responsePayload: lastError } });
    }
    this.delivered.push({ rule: target.rule, event, attempts, outcome: 'dead-lettered', error: lastError });
  }

  // ------------------------------------------------------------------ HTTP

  private async handle(req: http.IncomingMessage, body: Buffer): Promise<Reply> {
    const auth = String(req.headers.authorization ?? '');
    const scope = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\//.exec(auth);
    if (!scope) return { status: 403, body: 'unsigned request' };
    const [, key, , service] = scope as unknown as [string, string, string, string];
    const fn = this.byKey.get(key);
    if (!fn) return { status: 403, body: `unknown access key ${key}` };
    const target = String(req.headers['x-amz-target'] ?? '');
    const json = () => JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
    const form = () => Object.fromEntries(new URLSearchParams(body.toString('utf8')));
    const allow = (action: string, resources: string[]) => this.o.iam.check(fn.name, fn.roleLogicalId, action, resources);
    const denyJson = (action: string): Reply => ({
      status: 400,
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-query-error': 'AccessDenied;Sender' },
      body: JSON.stringify({ __type: 'AccessDeniedException', message: `User: ${fn.roleLogicalId} is not authorized to perform: ${action}` }),
    });
    const denyXml = (action: string): Reply => ({
      status: 403,
      headers: { 'content-type': 'text/xml' },
      body: `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: ${fn.roleLogicalId} is not authorized to perform: ${action}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
    });
    const ok = (payload: unknown, contentType = 'application/x-amz-json-1.0'): Reply => ({ status: 200, headers: { 'content-type': contentType }, body: JSON.stringify(payload) });
    const arn = (svc: string, resource: string) => `arn:aws:${svc}:${REGION}:${ACCOUNT}:${resource}`;

    switch (service) {
      case 'dynamodb': {
        const action = `dynamodb:${target.split('.')[1]}`;
        const input = json();
        const table = arn('dynamodb', `table/${String(input.TableName)}`);
        if (!(await allow(action, [input.IndexName ? `${table}/index/${String(input.IndexName)}` : table]))) return denyJson(action);
        return this.forward(req, body);
      }
      case 'monitoring': {
        const op = target.split('.')[1]!;
        const input = json();
        if (op === 'GetMetricData') {
          if (!(await allow('cloudwatch:GetMetricData', ['*']))) return denyJson('cloudwatch:GetMetricData');
          return ok({ MetricDataResults: this.getMetricData(input), Messages: [] });
        }
        if (op === 'DescribeAlarms') {
          const names = (input.AlarmNames as string[] | undefined) ?? [];
          if (!(await allow('cloudwatch:DescribeAlarms', names.length ? names.map((n) => arn('cloudwatch', `alarm:${n}`)) : ['*']))) return denyJson('cloudwatch:DescribeAlarms');
          const chosen = this.alarms.filter((a) => (names.length === 0 || names.includes(a.name)) && (!input.StateValue || a.state === input.StateValue));
          return ok({ MetricAlarms: chosen.map((a) => ({ AlarmName: a.name, AlarmArn: a.arn, StateValue: a.state })), CompositeAlarms: [] });
        }
        return { status: 400, body: `CloudWatch ${op} is not modelled` };
      }
      case 'states': {
        const op = target.split('.')[1]!;
        const input = json();
        if (op === 'ListExecutions') {
          if (!(await allow('states:ListExecutions', [String(input.stateMachineArn)]))) return denyJson('states:ListExecutions');
          const list = [...this.executions.values()].filter((e) => e.stateMachineArn === input.stateMachineArn && (!input.statusFilter || e.status === input.statusFilter));
          return ok({ executions: list.map((e) => ({ executionArn: e.executionArn, stateMachineArn: e.stateMachineArn, name: e.name, status: e.status, startDate: Date.now() / 1000 })) });
        }
        if (op === 'StopExecution') {
          if (!(await allow('states:StopExecution', [String(input.executionArn)]))) return denyJson('states:StopExecution');
          this.executions.get(String(input.executionArn))?.stop(String(input.error ?? ''), String(input.cause ?? ''));
          return ok({ stopDate: Date.now() / 1000 });
        }
        return { status: 400, body: `Step Functions ${op} is not modelled` };
      }
      case 'events': {
        const op = target.split('.')[1]!;
        const input = json();
        if (op === 'DisableRule') {
          const ruleArn = arn('events', `rule/${String(input.Name)}`);
          if (!(await allow('events:DisableRule', [ruleArn]))) return denyJson('events:DisableRule');
          this.disabledRules.add(String(input.Name));
          return ok({}, 'application/x-amz-json-1.1');
        }
        return { status: 400, body: `EventBridge ${op} is not modelled` };
      }
      case 'secretsmanager': {
        const input = json();
        const id = String(input.SecretId);
        if (!(await allow('secretsmanager:GetSecretValue', [id]))) return denyJson('secretsmanager:GetSecretValue');
        const value = this.o.secrets[id];
        if (value === undefined) return { status: 400, headers: { 'content-type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ __type: 'ResourceNotFoundException', message: `no secret ${id}` }) };
        return ok({ ARN: id, Name: id.split(':').at(-1), SecretString: value, VersionId: 'v1', CreatedDate: Date.now() / 1000 }, 'application/x-amz-json-1.1');
      }
      case 'sns': {
        const input = form();
        if (input.Action !== 'Publish') return { status: 400, body: `SNS ${input.Action} is not modelled` };
        const topicArn = String(input.TopicArn);
        if (!(await allow('sns:Publish', [topicArn]))) return denyXml('sns:Publish');
        // An encrypted topic: SNS uses the publisher's permissions on the key.
        const keyArn = this.topicKey(topicArn);
        if (keyArn && !(await this.o.iam.check(fn.name, fn.roleLogicalId, 'kms:GenerateDataKey', [keyArn], this.keyPolicy(keyArn)))) return denyXml('kms:GenerateDataKey');
        this.published.push({ topicArn, subject: String(input.Subject ?? ''), message: String(input.Message ?? '') });
        return { status: 200, headers: { 'content-type': 'text/xml' }, body: xml('Publish', `<MessageId>${randomUUID()}</MessageId>`, 'http://sns.amazonaws.com/doc/2010-03-31/') };
      }
      case 'elasticache':
        return this.elasticache(form(), allow, denyXml);
      case 's3':
        return this.s3(req, body, fn, allow);
      case 'execute-api':
        return this.connections(req, body, fn, allow);
      case 'lambda': {
        const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(req.url ?? '');
        if (!match) return { status: 400, body: `Lambda ${req.url} is not modelled` };
        const name = decodeURIComponent(match[1]!);
        const callee = this.o.functions.find((f) => f.name === name || f.arn === name);
        const calleeArn = callee?.arn ?? arn('lambda', `function:${name}`);
        if (!(await allow('lambda:InvokeFunction', [calleeArn]))) {
          return { status: 403, headers: { 'x-amzn-errortype': 'AccessDeniedException', 'content-type': 'application/json' }, body: JSON.stringify({ Type: 'User', message: 'not authorized to perform: lambda:InvokeFunction' }) };
        }
        if (!callee) return { status: 404, headers: { 'x-amzn-errortype': 'ResourceNotFoundException' }, body: JSON.stringify({ message: `Function not found: ${calleeArn}` }) };
        if (this.throttleNextInvokes > 0 && (this.throttleCaller === undefined || this.throttleCaller === fn.name)) {
          this.throttleNextInvokes--;
          this.throttled.push(callee.name);
          return { status: 429, headers: { 'x-amzn-errortype': 'TooManyRequestsException', 'content-type': 'application/json' }, body: JSON.stringify({ Type: 'User', message: 'Rate Exceeded.', Reason: 'CallerRateLimitExceeded' }) };
        }
        if (String(req.headers['x-amz-invocation-type'] ?? '') === 'Event') {
          // Lambda queues it and answers at once; the function runs (and fails, and is retried) on its own.
          this.eventInvokes.push(callee.name);
          this.track(this.o.invoke(callee, JSON.parse(body.toString('utf8') || 'null')));
          return { status: 202, headers: { 'content-type': 'application/json' }, body: '' };
        }
        try {
          const result = await this.o.invoke(callee, JSON.parse(body.toString('utf8') || 'null'));
          return { status: 200, headers: { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST' }, body: JSON.stringify(result) };
        } catch (error) {
          const e = error as Error & { errorType?: string };
          return { status: 200, headers: { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' }, body: JSON.stringify({ errorType: e.errorType ?? e.name, errorMessage: e.message }) };
        }
      }
      default:
        return { status: 400, body: `service ${service} is not modelled by the stand-in` };
    }
  }

  /** An object an application (not a deployed function) wrote, e.g. the vector dataset. */
  putObject(bucket: string, key: string, bytes: Uint8Array): void {
    const objects = this.buckets.get(bucket);
    if (!objects) throw new Error(`the template has no bucket ${bucket}`);
    objects.set(key, Buffer.from(bytes));
  }

  /**
   * S3, path-style (what the SDK sends to an IP endpoint): GetObject, HeadObject,
   * PutObject (its CRC32 checked when sent), ListObjectsV2. A missing key answers 404
   * NoSuchKey only to a caller that may s3:ListBucket the bucket; to any other, 403
   * AccessDenied, as S3 does (it will not reveal whether the key exists).
   */
  private async s3(req: http.IncomingMessage, body: Buffer, fn: DeployedFunction, allow: (a: string, r: string[]) => Promise<boolean>): Promise<Reply> {
    const url = new URL(req.url ?? '/', 'http://s3');
    const [bucket = '', ...rest] = url.pathname.slice(1).split('/');
    const key = rest.length ? rest.map(decodeURIComponent).join('/') : undefined;
    const objects = this.buckets.get(decodeURIComponent(bucket));
    const bucketArn = `arn:aws:s3:::${bucket}`;
    const record = (operation: S3Request['operation'], reply: Reply): Reply => {
      this.s3Requests.push({ caller: fn.name, operation, bucket, ...(key !== undefined ? { key } : {}), status: reply.status });
      return reply;
    };
    const denied = () => s3Error(403, 'AccessDenied', 'Access Denied');
    if (key === undefined) {
      if (req.method !== 'GET' || url.searchParams.get('list-type') !== '2') return s3Error(400, 'NotImplemented', `S3 ${req.method} ${url.pathname}${url.search} is not modelled`);
      if (!(await allow('s3:ListBucket', [bucketArn]))) return record('ListObjectsV2', denied());
      if (!objects) return record('ListObjectsV2', s3Error(404, 'NoSuchBucket', 'The specified bucket does not exist'));
      const prefix = url.searchParams.get('prefix') ?? '';
      const keys = [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
      const contents = keys.map((k) => `<Contents><Key>${esc(k)}</Key><Size>${objects.get(k)!.length}</Size><ETag>"${createHash('md5').update(objects.get(k)!).digest('hex')}"</ETag><StorageClass>STANDARD</StorageClass></Contents>`);
      return record('ListObjectsV2', {
        status: 200,
        headers: { 'content-type': 'application/xml' },
        body: `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${esc(bucket)}</Name><Prefix>${esc(prefix)}</Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${contents.join('')}</ListBucketResult>`,
      });
    }
    const objectArn = `${bucketArn}/${key}`;
    if (req.method === 'PUT') {
      if (!(await allow('s3:PutObject', [objectArn]))) return record('PutObject', denied());
      if (!objects) return record('PutObject', s3Error(404, 'NoSuchBucket', 'The specified bucket does not exist'));
      if (req.headers['content-encoding']?.includes('aws-chunked')) return record('PutObject', s3Error(400, 'NotImplemented', 'aws-chunked uploads are not modelled'));
      const crc = req.headers['x-amz-checksum-crc32'];
      if (crc !== undefined) {
        const actual = Buffer.alloc(4);
        actual.writeUInt32BE(zlib.crc32(body) >>> 0);
        if (actual.toString('base64') !== crc) return record('PutObject', s3Error(400, 'BadDigest', 'The CRC32 you specified did not match the calculated checksum.'));
      }
      objects.set(key, body);
      return record('PutObject', { status: 200, headers: { etag: `"${createHash('md5').update(body).digest('hex')}"` }, body: '' });
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      const operation = req.method === 'GET' ? 'GetObject' : 'HeadObject';
      if (!(await allow('s3:GetObject', [objectArn]))) return record(operation, denied());
      const object = objects?.get(key);
      if (!object) {
        const mayList = objects !== undefined && (await this.o.iam.allows(fn.roleLogicalId, 's3:ListBucket', bucketArn));
        const reply = mayList ? s3Error(404, 'NoSuchKey', 'The specified key does not exist.') : denied();
        return record(operation, req.method === 'HEAD' ? { ...reply, body: '' } : reply);
      }
      const headers = { 'content-type': 'application/octet-stream', 'content-length': String(object.length), etag: `"${createHash('md5').update(object).digest('hex')}"` };
      return record(operation, { status: 200, headers, body: req.method === 'GET' ? object : '' });
    }
    return s3Error(400, 'NotImplemented', `S3 ${req.method} on an object is not modelled`);
  }

  /**
   * API Gateway's `@connections` API of a WebSocket API stage (`<api>/<stage>/@connections/<id>`:
   * POST sends, GET describes, DELETE disconnects), checked as `execute-api:ManageConnections`
   * on `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/@connections/<id>`,
   * then forwarded to the local gateway serving that API, which answers as API Gateway does
   * (410 for a gone connection, 413, 429).
   */
  private async connections(req: http.IncomingMessage, body: Buffer, fn: DeployedFunction, allow: (a: string, r: string[]) => Promise<boolean>): Promise<Reply> {
    const path = (req.url ?? '').split('?')[0]!;
    const match = /^\/execute-api\/([^/]+)\/([^/]+)\/@connections\/([^/]+)$/.exec(path);
    if (!match) return { status: 404, headers: { 'x-amzn-errortype': 'NotFoundException' }, body: JSON.stringify({ message: `no route for ${path}` }) };
    const [, apiId, stage, encodedId] = match as unknown as [string, string, string, string];
    const connectionId = decodeURIComponent(encodedId);
    const method = req.method ?? 'POST';
    const record = (reply: Reply): Reply => {
      this.connectionsRequests.push({ caller: fn.name, method, apiId, connectionId, status: reply.status });
      return reply;
    };
    const arn = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${apiId}/${stage}/${method}/@connections/${connectionId}`;
    if (!(await allow('execute-api:ManageConnections', [arn]))) {
      return record({ status: 403, headers: { 'content-type': 'application/json', 'x-amzn-errortype': 'AccessDeniedException' }, body: JSON.stringify({ message: `User: ${fn.roleLogicalId} is not authorized to perform: execute-api:ManageConnections on resource: ${arn}` }) });
    }
    const gateway = this.connectionApis.get(apiId);
    if (!gateway) return record({ status: 404, headers: { 'x-amzn-errortype': 'NotFoundException' }, body: JSON.stringify({ message: `no gateway serves API ${apiId}` }) });
    if (!gateway.endsWith(`/${stage}`)) return record({ status: 403, headers: { 'x-amzn-errortype': 'ForbiddenException' }, body: JSON.stringify({ message: `API ${apiId} has no stage ${stage}` }) });
    const reply = await this.forward(req, body, `${gateway}/@connections/${encodedId}`);
    return record(reply);
  }

  private keyPolicy(keyArn: string): { Statement: unknown[] } | undefined {
    const found = this.o.stack.resources('AWS::KMS::Key').find(([id]) => this.o.stack.arn(id) === keyArn);
    return found ? this.o.stack.resolve<{ Statement: unknown[] }>((found[1].Properties as { KeyPolicy: unknown }).KeyPolicy) : undefined;
  }

  private topicKey(topicArn: string): string | undefined {
    for (const [, topic] of this.o.stack.resources('AWS::SNS::Topic')) {
      const p = this.o.stack.resolve<Record<string, unknown>>(topic.Properties);
      const [id] = this.o.stack.resources('AWS::SNS::Topic').find(([, t]) => t === topic)!;
      if (this.o.stack.ref(id) === topicArn && typeof p.KmsMasterKeyId === 'string') return p.KmsMasterKeyId;
    }
    return undefined;
  }

  private async elasticache(input: Record<string, string>, allow: (a: string, r: string[]) => Promise<boolean>, deny: (a: string) => Reply): Promise<Reply> {
    const c = this.o.cache;
    const group = `arn:aws:elasticache:${REGION}:${ACCOUNT}:replicationgroup:${c.replicationGroupId}`;
    const params = `arn:aws:elasticache:${REGION}:${ACCOUNT}:parametergroup:${c.parameterGroupName}`;
    const reply = (action: string, result: string): Reply => ({ status: 200, headers: { 'content-type': 'text/xml' }, body: xml(action, result) });
    switch (input.Action) {
      case 'DescribeReplicationGroups': {
        if (!(await allow('elasticache:DescribeReplicationGroups', [group]))) return deny('elasticache:DescribeReplicationGroups');
        return reply(
          'DescribeReplicationGroups',
          `<ReplicationGroups><ReplicationGroup><ReplicationGroupId>${c.replicationGroupId}</ReplicationGroupId><Status>available</Status>` +
            `<MemberClusters><ClusterId>${c.primaryClusterId}</ClusterId></MemberClusters>` +
            `<NodeGroups><NodeGroup><NodeGroupId>0001</NodeGroupId><Status>available</Status><PrimaryEndpoint><Address>${c.host}</Address><Port>${c.port}</Port></PrimaryEndpoint>` +
            `<NodeGroupMembers><NodeGroupMember><CacheClusterId>${c.primaryClusterId}</CacheClusterId><CurrentRole>primary</CurrentRole></NodeGroupMember></NodeGroupMembers></NodeGroup></NodeGroups>` +
            `<ClusterEnabled>false</ClusterEnabled><TransitEncryptionEnabled>true</TransitEncryptionEnabled><AuthTokenEnabled>true</AuthTokenEnabled></ReplicationGroup></ReplicationGroups>`,
        );
      }
      case 'DescribeCacheParameters': {
        if (!(await allow('elasticache:DescribeCacheParameters', [params]))) return deny('elasticache:DescribeCacheParameters');
        const items = [...c.parameters].map(([n, v]) => `<Parameter><ParameterName>${esc(n)}</ParameterName><ParameterValue>${esc(v)}</ParameterValue><ChangeType>immediate</ChangeType><IsModifiable>true</IsModifiable><DataType>string</DataType><Source>user</Source></Parameter>`);
        return reply('DescribeCacheParameters', `<Parameters>${items.join('')}</Parameters>`);
      }
      case 'ModifyCacheParameterGroup': {
        if (!(await allow('elasticache:ModifyCacheParameterGroup', [params]))) return deny('elasticache:ModifyCacheParameterGroup');
        for (let i = 1; input[`ParameterNameValues.ParameterNameValue.${i}.ParameterName`]; i++) {
          c.parameters.set(input[`ParameterNameValues.ParameterNameValue.${i}.ParameterName`]!, input[`ParameterNameValues.ParameterNameValue.${i}.ParameterValue`] ?? '');
        }
        return reply('ModifyCacheParameterGroup', `<CacheParameterGroupName>${c.parameterGroupName}</CacheParameterGroupName>`);
      }
      default:
        return { status: 400, body: `ElastiCache ${input.Action} is not modelled` };
    }
  }

  private getMetricData(input: Record<string, unknown>): unknown[] {
    const start = Number(input.StartTime) * 1000;
    const end = Number(input.EndTime) * 1000;
    const queries = input.MetricDataQueries as { Id: string; MetricStat?: { Metric: { Namespace: string; MetricName: string; Dimensions?: { Name: string; Value: string }[] }; Period: number; Stat: string }; Expression?: string; ReturnData?: boolean }[];
    const series = new Map<string, { timestamps: number[]; values: number[] }>();
    for (const q of queries.filter((x) => x.MetricStat)) {
      const m = q.MetricStat!;
      series.set(q.Id, this.metrics.query({ namespace: m.Metric.Namespace, metricName: m.Metric.MetricName, dimensions: Object.fromEntries((m.Metric.Dimensions ?? []).map((d) => [d.Name, d.Value])) }, m.Stat, m.Period, start, end));
    }
    for (const q of queries.filter((x) => x.Expression)) {
      const ids = [...series.keys()].filter((id) => q.Expression!.includes(id));
      const timestamps = [...new Set(ids.flatMap((id) => series.get(id)!.timestamps))].sort((a, b) => b - a);
      const out = { timestamps: [] as number[], values: [] as number[] };
      for (const t of timestamps) {
        const at: Record<string, number> = {};
        for (const id of ids) {
          const s = series.get(id)!;
          const i = s.timestamps.indexOf(t);
          if (i >= 0) at[id] = s.values[i]!;
        }
        if (Object.keys(at).length !== ids.length) continue;
        const v = evaluateExpression(q.Expression!, at);
        if (v !== undefined) {
          out.timestamps.push(t);
          out.values.push(v);
        }
      }
      series.set(q.Id, out);
    }
    return queries
      .filter((q) => q.ReturnData !== false)
      .map((q) => ({ Id: q.Id, Label: q.Id, StatusCode: 'Complete', Timestamps: series.get(q.Id)!.timestamps.map((t) => t / 1000), Values: series.get(q.Id)!.values }));
  }

  private forward(req: http.IncomingMessage, body: Buffer, to = new URL(req.url ?? '/', this.o.dynamoEndpoint).href): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const url = new URL(to);
      const out = http.request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 500, headers: Object.fromEntries(Object.entries(res.headers).filter(([k]) => k !== 'transfer-encoding' && k !== 'connection').map(([k, v]) => [k, String(v)])), body: Buffer.concat(chunks) }));
      });
      out.on('error', reject);
      out.end(body);
    });
  }
}
