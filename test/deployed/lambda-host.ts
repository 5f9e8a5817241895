/**
 * Runs each function of the cloud assembly as Lambda would: its bundle in its own Node
 * process (the host's "execution environment"), with exactly the environment the
 * template gives it plus what the Lambda runtime adds (region, function name, role
 * credentials, X-Ray daemon address, task root), its Timeout enforced (a step past it is
 * killed, the environment replaced), invocations one at a time.
 *
 * Three things differ from Lambda, all routing: AWS_ENDPOINT_URL sends every SDK call to
 * the AWS stand-in (which checks it against the role and answers); an API Gateway
 * endpoint in the environment (`https://<api>.execute-api.<region>.amazonaws.com/<stage>`,
 * which the code hands its client explicitly, so AWS_ENDPOINT_URL cannot reach it) is
 * rewritten to the stand-in's `/execute-api/<api>/<stage>`; and the runtime's CA bundle
 * path (/var/runtime/ca-cert.pem) is mapped to the test CA file.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LAMBDA_CA_BUNDLE } from '#lib/constructs/optimizer-function';

export interface DeployedFunction {
  readonly logicalId: string;
  readonly name: string;
  readonly arn: string;
  readonly roleLogicalId: string;
  readonly bundleDir: string;
  readonly timeoutSeconds: number;
  readonly memoryMb: number;
  /** The template's environment, intrinsics resolved. */
  readonly environment: Readonly<Record<string, string>>;
  /** The access key the stand-in knows this function's role by. */
  readonly accessKeyId: string;
}

export interface FunctionError extends Error {
  readonly errorType: string;
  readonly errorMessage: string;
}

export interface HostOptions {
  readonly nodeBinary: string;
  readonly endpoint: string;
  readonly region: string;
  readonly caFile: string;
  /** Each line the function writes to stdout (its CloudWatch log stream: EMF lands here). */
  readonly onLog?: (fn: DeployedFunction, line: string) => void;
}

const CHILD = fileURLToPath(new URL('./lambda-child.mjs', import.meta.url));

export class LambdaHost {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private seq = 0;
  private stopped = false;
  /** Node version the bundle ran on. */
  nodeVersion = '';
  invocations = 0;

  constructor(
    readonly fn: DeployedFunction,
    private readonly options: HostOptions,
  ) {}

  environment(): Record<string, string> {
    const env: Record<string, string> = {
      ...this.fn.environment,
      // What the Lambda runtime adds.
      AWS_REGION: this.options.region,
      AWS_DEFAULT_REGION: this.options.region,
      AWS_LAMBDA_FUNCTION_NAME: this.fn.name,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(this.fn.memoryMb),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${this.fn.name}`,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
      AWS_ACCESS_KEY_ID: this.fn.accessKeyId,
      AWS_SECRET_ACCESS_KEY: 'stand-in-secret',
      AWS_SESSION_TOKEN: 'stand-in-session',
      AWS_XRAY_DAEMON_ADDRESS: '127.0.0.1:2000',
      AWS_XRAY_CONTEXT_MISSING: 'LOG_ERROR',
      LAMBDA_TASK_ROOT: this.fn.bundleDir,
      _HANDLER: 'index.handler',
      TZ: ':UTC',
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      // Routing: every AWS call goes to the stand-in.
      AWS_ENDPOINT_URL: this.options.endpoint,
    };
    if (env.NODE_EXTRA_CA_CERTS === LAMBDA_CA_BUNDLE) env.NODE_EXTRA_CA_CERTS = this.options.caFile;
    const apiEndpoint = new RegExp(`^https://([A-Za-z0-9]+)\\.execute-api\\.${this.options.region}\\.amazonaws\\.com/([^/]+)$`);
    for (const [key, value] of Object.entries(env)) {
      const api = apiEndpoint.exec(value);
      if (api) env[key] = `${this.options.endpoint}/execute-api/${api[1]}/${api[2]}`;
    }
    return env;
  }

  private start(): Promise<void> {
    const child = fork(CHILD, [this.fn.bundleDir], {
      execPath: this.options.nodeBinary,
      // NODE_OPTIONS comes from the template's environment (source maps).
      execArgv: [],
      env: this.environment(),
      cwd: this.fn.bundleDir,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    this.child = child;
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) this.options.onLog?.(this.fn, line);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: { ready?: boolean; node?: string }) => {
        if (m.ready) {
          this.nodeVersion = m.node ?? '';
          child.off('message', onMessage);
          resolve();
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`${this.fn.name} exited during init (code ${code}): ${buffered.slice(-2000)}`)));
    });
    return this.ready;
  }

  /** A synchronous invocation (RequestResponse). Rejects with the function's error. */
  invoke(event: unknown): Promise<unknown> {
    const run = async () => {
      // A late invocation (a handover queued as the test ends) must not leave a new environment behind.
      if (this.stopped) throw Object.assign(new Error(`${this.fn.name} is stopped`), { name: 'ResourceNotFoundException', errorType: 'ResourceNotFoundException' });
      if (!this.child || this.child.exitCode !== null) await this.start();
      await this.ready;
      const child = this.child!;
      const id = ++this.seq;
      this.invocations++;
      const timeoutMs = this.fn.timeoutSeconds * 1000;
      return new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          // Lambda ends the environment of an invocation that runs out of time.
          child.off('message', onMessage);
          child.kill('SIGKILL');
          this.child = undefined;
          reject(Object.assign(new Error(`Task timed out after ${this.fn.timeoutSeconds} seconds`), { name: 'Sandbox.Timedout', errorType: 'Sandbox.Timedout', errorMessage: 'Task timed out' }));
        }, timeoutMs);
        const onMessage = (m: { id?: number; ok?: boolean; result?: unknown; error?: { errorType: string; errorMessage: string } }) => {
          if (m.id !== id) return;
          clearTimeout(timer);
          child.off('message', onMessage);
          if (m.ok) resolve(m.result);
          else reject(Object.assign(new Error(m.error!.errorMessage), { name: m.error!.errorType, ...m.error! }));
        };
        child.on('message', onMessage);
        child.send({ id, event, deadlineMs: Date.now() + timeoutMs, functionArn: this.fn.arn });
      });
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
  }
}
