/**
 * Loads hnswlib-wasm in Node and Lambda. The library is built for browsers: it wants
 * `window` and IndexedDB (its file system is Emscripten's IDBFS), so we give it
 * `globalThis` as `window` and fake-indexeddb before importing it. Its loader keeps a
 * module-level singleton and fails when two loads race, so loads, and every file
 * system operation (snapshots go through IDBFS), run one at a time on one queue.
 */
import 'fake-indexeddb/auto';
import type { HnswlibModule } from 'hnswlib-wasm/dist/hnswlib.js';

export type Hnswlib = HnswlibModule;
export type { HierarchicalNSW } from 'hnswlib-wasm/dist/hnswlib.js';

/** The folder IDBFS mounts (hnswlib-wasm's own choice) and the object store it syncs to. */
export const IDBFS_MOUNT = '/hnswlib-index';
const IDBFS_STORE = 'FILE_DATA';

let queue: Promise<unknown> = Promise.resolve();

/** Runs `fn` after every operation queued before it (one at a time, across the process). */
export function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => undefined);
  return run;
}

/**
 * The wasm build prints its file-system progress ("b. jsFS synced successfully",
 * "d. Calling sync callback...") to stdout and stderr; those lines, and only those,
 * are dropped so a function's log stays structured.
 */
const LIBRARY_CHATTER = /^(b\. jsFS synced|d\. Calling sync callback|EmscriptenFileSystemManager: |warning: \d+ FS\.syncfs operations in flight)/;
function muteLibraryChatter(): void {
  for (const level of ['log', 'warn', 'error'] as const) {
    const original = console[level].bind(console);
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === 'string') {
        // The progress of file-system syncs (see syncFileSystem below).
        if (args[0].startsWith('b. jsFS synced successfully')) return syncFinished();
        if (args[0].startsWith('b. jsFS Error')) syncFinished(String(args[1] ?? args[0])); // and printed
        const inFlight = /^warning: (\d+) FS\.syncfs operations in flight/.exec(args[0]);
        if (inFlight) return syncInFlight(Number(inFlight[1]));
        if (LIBRARY_CHATTER.test(args[0])) return;
      }
      original(...args);
    };
  }
}

let loaded: Promise<{ lib: Hnswlib; sync: (action: 'read' | 'write') => Promise<void> }> | undefined;

export function loadHnswlib(): Promise<{ lib: Hnswlib; sync: (action: 'read' | 'write') => Promise<void> }> {
  loaded ??= serialized(async () => {
    const g = globalThis as { window?: unknown };
    g.window ??= globalThis;
    muteLibraryChatter();
    const mod = await import('hnswlib-wasm/dist/hnswlib.js');
    // The module's top-level await (its loader setup) must settle before its exports are usable.
    await (mod as unknown as { __tla?: Promise<void> }).__tla;
    const lib = (await mod.loadHnswlib()) as Hnswlib;
    lib.EmscriptenFileSystemManager.setDebugLogs(false);
    return { lib, sync: (action: 'read' | 'write') => syncFileSystem(mod.syncFileSystem as (action: 'read' | 'write') => Promise<void>, action) };
  }).catch((error: unknown) => {
    loaded = undefined;
    throw error;
  });
  return loaded;
}

/**
 * The library's `syncFileSystem` resolves when its C++ side has STARTED Emscripten's
 * `FS.syncfs`, not when the copy between IndexedDB and the in-memory file system is done;
 * and loading the library leaves syncs of its own in flight. On a busy machine
 * `readIndex` ran before the file was there ("Cannot open file"). What the library does
 * say: each finished sync prints "b. jsFS synced successfully" (or "b. jsFS Error: …"),
 * and starting one while others run prints "warning: N FS.syncfs operations in flight".
 * So a sync waits for N completions, N being how many were in flight when it started
 * (itself included): then every one of them, its own too, is over, whatever their order.
 * Ours run one at a time (callers are inside `serialized`).
 */
const SYNC_TIMEOUT_MS = 30_000;
let pendingSync: { inFlight: number; settle: (error?: string) => void } | undefined;

function syncInFlight(count: number): void {
  if (pendingSync) pendingSync.inFlight = count;
}

function syncFinished(error?: string): void {
  if (!pendingSync) return; // one of the library's own syncs from its loading
  if (error !== undefined) return pendingSync.settle(error);
  if (--pendingSync.inFlight <= 0) pendingSync.settle();
}

async function syncFileSystem(start: (action: 'read' | 'write') => Promise<void>, action: 'read' | 'write'): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    pendingSync = { inFlight: 1, settle: (error) => (error === undefined ? resolve() : reject(new Error(`hnswlib's file system ${action} sync failed: ${error}`))) };
    timer = setTimeout(() => reject(new Error(`hnswlib's file system did not finish its ${action} sync within ${SYNC_TIMEOUT_MS / 1_000} s`)), SYNC_TIMEOUT_MS);
  });
  try {
    await start(action);
    await finished;
  } finally {
    clearTimeout(timer);
    pendingSync = undefined;
  }
}

// The few IndexedDB shapes used here (the project compiles without the DOM library).
interface IdbRequest<T> {
  result: T;
  error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface IdbStore {
  get(key: string): IdbRequest<unknown>;
  put(value: unknown, key: string): IdbRequest<unknown>;
  delete(key: string): IdbRequest<unknown>;
}
interface IdbDatabase {
  transaction(store: string, mode: 'readonly' | 'readwrite'): {
    objectStore(name: string): IdbStore;
    error: unknown;
    oncomplete: (() => void) | null;
    onerror: (() => void) | null;
    onabort: (() => void) | null;
  };
  close(): void;
}
const indexedDB = () => (globalThis as unknown as { indexedDB: { open(name: string): IdbRequest<IdbDatabase> } }).indexedDB;

function idb<T>(request: IdbRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function openStore(mode: 'readonly' | 'readwrite'): Promise<{ store: IdbStore; done: Promise<void>; db: IdbDatabase }> {
  const db = await idb(indexedDB().open(IDBFS_MOUNT));
  const tx = db.transaction(IDBFS_STORE, mode);
  const done = new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
  return { store: tx.objectStore(IDBFS_STORE), done, db };
}

/** The bytes of a file IDBFS has synced (after `sync('write')`). */
export async function readSyncedFile(name: string): Promise<Uint8Array> {
  const { store, done, db } = await openStore('readonly');
  const entry = (await idb(store.get(`${IDBFS_MOUNT}/${name}`))) as { contents?: Uint8Array } | undefined;
  await done;
  db.close();
  if (!entry?.contents) throw new Error(`hnswlib wrote no file ${name}`);
  return new Uint8Array(entry.contents);
}

/** Puts bytes where IDBFS will find them on the next `sync('read')`. */
export async function writeSyncedFile(name: string, bytes: Uint8Array): Promise<void> {
  const { store, done, db } = await openStore('readwrite');
  store.put({ timestamp: new Date(), mode: 0o100666, contents: bytes }, `${IDBFS_MOUNT}/${name}`);
  await done;
  db.close();
}

export async function deleteSyncedFile(name: string): Promise<void> {
  const { store, done, db } = await openStore('readwrite');
  store.delete(`${IDBFS_MOUNT}/${name}`);
  await done;
  db.close();
}
