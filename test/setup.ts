// aws-local-stepfunctions needs Promise.withResolvers, which Node 20 lacks (Lambda's Node 22 has it).
import '#local/polyfills';

// The AWS SDK's notice that it will need Node 22 (Lambda's runtime) is noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// Keep the Lambda-side structured logs out of test output unless asked.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
