/**
 * The call site of a query: the first stack frame that belongs to the application,
 * i.e. not to this instrumentation, not to node_modules and not to Node itself.
 * Captured synchronously when the query is issued, before any await loses the stack.
 *
 * Beside it, the application's call stack (its frames, with V8's `async` mark and the
 * native iterations between them, e.g. `Array.map`, `Promise.all`): N+1 detection
 * reads it to report the loop that calls a helper, not the helper's query line.
 */
import { relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const OWN_DIR = fileURLToPath(new URL('.', import.meta.url));
const OWN_URL = pathToFileURL(OWN_DIR).href;
const FRAMES_MAX = 40;

function frameLocation(line: string): string | undefined {
  // "    at fn (/a/b.ts:12:5)" or "    at /a/b.ts:12:5" or "    at async fn (file:///a/b.ts:12:5)"
  const m = /\(([^()]+:\d+:\d+)\)\s*$/.exec(line) ?? /at (?:async )?([^\s()]+:\d+:\d+)\s*$/.exec(line);
  return m?.[1];
}

/** Cheap string tests only: this runs for every frame of every traced query. */
function isApplicationFile(file: string): boolean {
  if (file.startsWith('node:') || file.startsWith('internal/')) return false;
  if (file.startsWith(OWN_DIR) || file.startsWith(OWN_URL)) return false;
  return !file.includes(`${sep}node_modules${sep}`) && !file.includes('/node_modules/');
}

function isApplicationFrame(location: string): boolean {
  return isApplicationFile(location.replace(/:\d+:\d+$/, ''));
}

function display(location: string): string {
  const m = /^(.*):(\d+):(\d+)$/.exec(location);
  if (!m) return location;
  const file = m[1]!.startsWith('file://') ? fileURLToPath(m[1]!) : m[1]!;
  const rel = relative(process.cwd(), file);
  return `${rel.startsWith('..') ? file : rel}:${m[2]}:${m[3]}`;
}

/** The application's source location, read from a formatted (source-mapped) stack: slow, so cached. */
function formattedCallSite(): string {
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

function structuredFrames(): NodeJS.CallSite[] {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  // Raw CallSite objects skip stack formatting and source-map lookups (≈ 50× cheaper under --enable-source-maps).
  Error.prepareStackTrace = (_error, frames) => frames;
  Error.stackTraceLimit = FRAMES_MAX;
  const holder: { stack?: NodeJS.CallSite[] } = {};
  Error.captureStackTrace(holder, structuredFrames);
  const frames = holder.stack ?? [];
  Error.prepareStackTrace = prepare;
  Error.stackTraceLimit = limit;
  return frames;
}

/** Generated position (`file:line:column` as V8 runs it) → display position in the source. */
const displayCache = new Map<string, string>();
const DISPLAY_CACHE_MAX = 5_000;

export interface StackFrame {
  /** `path:line:column` of an application frame (source-mapped). */
  readonly location?: string;
  /** Function name as V8 reports it (absent for anonymous functions). */
  readonly fn?: string;
  /** V8's async frame: a caller awaiting, not on the synchronous stack. */
  readonly async?: boolean;
  /** A native iteration between application frames (`Array.map`, `Promise.all`, ...). */
  readonly iterator?: string;
}

const ITERATORS = /^(Array\.(map|forEach|flatMap|reduce|filter|some|every|find|from)|Promise\.(all|allSettled|any|race)|Map\.forEach|Set\.forEach)$/;
const FRAMES_KEPT = 12;
const stackCache = new Map<string, { callSite: string; stack: StackFrame[] }>();

/** Parses a formatted (source-mapped) stack into application frames and native iterations. */
function formattedStack(): { callSite: string; stack: StackFrame[] } {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = FRAMES_MAX;
  const text = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const stack: StackFrame[] = [];
  for (const line of text.split('\n').slice(1)) {
    const m = /^\s*at (async )?(?:(.*?) \((.*)\)|(.*))\s*$/.exec(line);
    if (!m) continue;
    const isAsync = m[1] !== undefined;
    const fn = m[2];
    const where = m[3] ?? m[4] ?? '';
    if (fn && ITERATORS.test(fn.replace(/^async /, ''))) {
      if (stack.length > 0) stack.push({ iterator: fn });
      continue;
    }
    const location = /:\d+:\d+$/.test(where) ? where : undefined;
    if (!location || !isApplicationFrame(location)) continue;
    stack.push({ location: display(location), ...(fn ? { fn: fn.replace(/^Object\./, '') } : {}), ...(isAsync ? { async: true } : {}) });
    if (stack.length >= FRAMES_KEPT) break;
  }
  const first = stack.find((f) => f.location);
  return { callSite: first?.location ?? 'unknown', stack };
}

/** The call site and the application's call stack of the caller; cached by V8's raw positions. */
export function captureCallStack(): { callSite: string; stack: StackFrame[] } {
  const frames = structuredFrames();
  let key = '';
  for (const f of frames) key += `${f.getFileName()}:${f.getLineNumber()}:${f.getColumnNumber()}:${f.isAsync() ? 'a' : ''}${f.isPromiseAll() ? 'p' : ''}|`;
  const hit = stackCache.get(key);
  if (hit) return hit;
  const value = formattedStack();
  if (stackCache.size >= DISPLAY_CACHE_MAX) stackCache.delete(stackCache.keys().next().value as string);
  stackCache.set(key, value);
  return value;
}

export function captureCallSite(): string {
  const frame = structuredFrames().find((f) => {
    const file = f.getFileName();
    return typeof file === 'string' && isApplicationFile(file);
  });
  if (!frame) return 'unknown';
  const key = `${frame.getFileName()}:${frame.getLineNumber()}:${frame.getColumnNumber()}`;
  const hit = displayCache.get(key);
  if (hit !== undefined) return hit;
  const shown = formattedCallSite();
  if (displayCache.size >= DISPLAY_CACHE_MAX) displayCache.delete(displayCache.keys().next().value as string);
  displayCache.set(key, shown);
  return shown;
}
