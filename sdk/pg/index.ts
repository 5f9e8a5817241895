/** Application-side PostgreSQL tracing for N+1 detection. */
export { QueryTracer, type QueryTracerOptions } from './query-tracer.ts';
export type { QueryEvent, RequestTrace } from './trace.ts';
export { captureCallSite, captureCallStack, type StackFrame } from './call-site.ts';
export { fingerprintOf, parserReady } from './fingerprint.ts';
