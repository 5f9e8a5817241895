// One Lambda execution environment: loads a function's bundle from the cloud assembly
// (index.mjs, as the template's Handler `index.handler` names it) and runs invocations
// the host sends over IPC, one at a time, with a Lambda-shaped context. Plain
// JavaScript: it runs on the Node binary Lambda's runtime uses, without tsx.
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const [bundleDir, handlerName = 'handler'] = process.argv.slice(2);
const module_ = await import(pathToFileURL(join(bundleDir, 'index.mjs')).href);
const handler = module_[handlerName];
if (typeof handler !== 'function') throw new Error(`${bundleDir}/index.mjs exports no ${handlerName}`);

process.on('message', async (message) => {
  const { id, event, deadlineMs, functionArn } = message;
  const requestId = randomUUID();
  process.env._X_AMZN_TRACE_ID = `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replaceAll('-', '').slice(0, 24)};Parent=${randomUUID().replaceAll('-', '').slice(0, 16)};Sampled=0`;
  const context = {
    awsRequestId: requestId,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: '$LATEST',
    invokedFunctionArn: functionArn,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: `local/${requestId}`,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
    done() {},
    fail() {},
    succeed() {},
  };
  try {
    const result = await handler(event, context);
    process.send({ id, ok: true, result: result === undefined ? null : result });
  } catch (error) {
    process.send({ id, ok: false, error: { errorType: error?.name ?? 'Error', errorMessage: String(error?.message ?? error) } });
  }
});
process.send({ ready: true, node: process.version });
