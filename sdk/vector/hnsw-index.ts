/**
 * An HNSW index on hnswlib-wasm: built from items, searched with an efSearch per
 * query, serialized through the library's IDBFS file system to bytes and back.
 * Memory is measured as the wasm heap's growth (a malloc probe at the top of the
 * heap before and after), what the function really holds.
 */
import { randomUUID } from 'node:crypto';
import type { Neighbor, Space } from './distance.ts';
import { deleteSyncedFile, loadHnswlib, readSyncedFile, serialized, writeSyncedFile, type HierarchicalNSW, type Hnswlib } from './hnswlib.ts';
import { INSERT_BATCH } from './memory.ts';
import type { HnswParams, IndexParams, Metadata, VectorIndex, VectorItem } from './types.ts';

/** The address the next large allocation gets: the top of the heap, for measuring growth. */
function heapTop(lib: Hnswlib): number {
  const p = lib.asm.malloc(4 << 20);
  if (p === 0) throw new Error('wasm heap exhausted');
  lib.asm.free(p);
  return p;
}

export class HnswIndex implements VectorIndex {
  private ef = -1;
  private closed = false;

  constructor(
    private readonly index: HierarchicalNSW,
    readonly params: IndexParams & { kind: 'hnsw' },
    readonly dimensions: number,
    readonly ids: readonly string[],
    readonly metadata: readonly (Metadata | undefined)[],
    readonly measuredBytes: number,
  ) {}

  get count(): number {
    return this.ids.length;
  }

  searchLabels(query: Float32Array, k: number, options: { accept?: (label: number) => boolean; efSearch?: number } = {}): Neighbor[] {
    if (this.closed) throw new Error('index is closed');
    const kk = Math.min(k, this.count);
    if (kk === 0) return [];
    const ef = Math.max(options.efSearch ?? 10, kk);
    if (ef !== this.ef) {
      this.index.setEfSearch(ef);
      this.ef = ef;
    }
    const result = this.index.searchKnn(query, kk, options.accept);
    return result.neighbors.map((label, i) => ({ label, distance: result.distances[i]! }));
  }

  async serialize(): Promise<Uint8Array[]> {
    // Loaded before entering the queue: the load itself is queued, and waiting for it from inside would deadlock.
    const { sync } = await loadHnswlib();
    return serialized(async () => {
      const name = `pp-${randomUUID()}.bin`;
      await this.index.writeIndex(name);
      await sync('write');
      try {
        return [await readSyncedFile(name)];
      } finally {
        await deleteSyncedFile(name);
        await sync('read'); // drops the file from the in-memory file system too
      }
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    (this.index as unknown as { delete(): void }).delete();
  }
}

export async function buildHnswIndex(items: readonly VectorItem[], params: HnswParams & { space: Space }, dimensions: number): Promise<HnswIndex> {
  if (items.length === 0) throw new RangeError('an index needs at least one vector');
  for (const [i, item] of items.entries()) {
    if (item.vector.length !== dimensions) throw new RangeError(`item ${i} (${item.id}) has ${item.vector.length} dimensions, expected ${dimensions}`);
  }
  const { lib } = await loadHnswlib();
  // Synchronous from here: nothing else allocates between the two probes.
  const before = heapTop(lib);
  const index = new lib.HierarchicalNSW(params.space, dimensions, '');
  index.initIndex(items.length, params.m, params.efConstruction, params.seed);
  for (let start = 0; start < items.length; start += INSERT_BATCH) {
    const batch = items.slice(start, start + INSERT_BATCH);
    index.addPoints(
      batch.map((item) => item.vector),
      batch.map((_, i) => start + i),
      false,
    );
  }
  const measured = heapTop(lib) - before;
  return new HnswIndex(
    index,
    { kind: 'hnsw', space: params.space, m: params.m, efConstruction: params.efConstruction, seed: params.seed },
    dimensions,
    items.map((i) => i.id),
    items.map((i) => i.metadata),
    measured,
  );
}

export async function loadHnswIndex(
  bytes: Uint8Array,
  params: IndexParams & { kind: 'hnsw' },
  dimensions: number,
  ids: readonly string[],
  metadata: readonly (Metadata | undefined)[],
): Promise<HnswIndex> {
  // Loaded before entering the queue: the load itself is queued, and waiting for it from inside would deadlock.
  const { lib, sync } = await loadHnswlib();
  return serialized(async () => {
    const name = `pp-${randomUUID()}.bin`;
    await writeSyncedFile(name, bytes);
    await sync('read');
    try {
      const before = heapTop(lib);
      const index = new lib.HierarchicalNSW(params.space, dimensions, '');
      await index.readIndex(name, ids.length); // resolves to nothing; the count below says whether it read
      const measured = heapTop(lib) - before;
      if (index.getCurrentCount() !== ids.length) {
        throw new Error(`snapshot holds ${index.getCurrentCount()} vectors but lists ${ids.length} ids`);
      }
      return new HnswIndex(index, params, dimensions, ids, metadata, measured);
    } finally {
      await deleteSyncedFile(name);
      await sync('read');
    }
  });
}
