/**
 * The call site of a query: the first stack frame that belongs to the application,
 * i.e. not to this instrumentation, not to node_modules and not to Node itself.
 * Captured synchronously when the query is issued, before any await loses the stack.
 */
import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const OWN_DIR = fileURLToPath(new URL('.', import.meta.url));
const FRAMES_MAX = 40;

function frameLocation(line: string): string | undefined {
  // "    at fn (/a/b.ts:12:5)" or "    at /a/b.ts:12:5" or "    at async fn (file:///a/b.ts:12:5)"
  const m = /\(([^()]+:\d+:\d+)\)\s*$/.exec(line) ?? /at (?:async )?([^\s()]+:\d+:\d+)\s*$/.exec(line);
  return m?.[1];
}

function isApplicationFrame(location: string): boolean {
  if (location.startsWith('node:') || location.startsWith('internal/')) return false;
  const path = location.startsWith('file://') ? fileURLToPath(location.replace(/:\d+:\d+$/, '')) : location;
  if (path.startsWith(OWN_DIR)) return false;
  return !path.includes(`${sep}node_modules${sep}`);
}

function display(location: string): string {
  const m = /^(.*):(\d+):(\d+)$/.exec(location);
  if (!m) return location;
  const file = m[1]!.startsWith('file://') ? fileURLToPath(m[1]!) : m[1]!;
  const rel = relative(process.cwd(), file);
  return `${rel.startsWith('..') ? file : rel}:${m[2]}:${m[3]}`;
}

export function captureCallSite(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = FRAMES_MAX;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  for (const line of stack.split('\n').slice(1)) {
    const location = frameLocation(line);
    if (location && isApplicationFrame(location)) return display(location);
  }
  return 'unknown';
}
