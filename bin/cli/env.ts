// Evaluated before any other module of the CLI (ESM evaluates imports in order):
// the Lambda-side logger is quiet in a terminal unless asked, and the AWS SDK's
// Node-20 notice is noise here (Lambda runs Node 22).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.env.POWERTOOLS_LOG_LEVEL ??= process.env.PERFPILOT_DEBUG ? 'DEBUG' : 'ERROR';
export {};
