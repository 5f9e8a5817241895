/**
 * A snapshot: one immutable byte string holding an index version — a JSON header
 * (kind, parameters, dimensions, ids, metadata, section table) and the index's own
 * sections (hnswlib's file; or PQ codebooks, codes and full vectors). What lives in
 * S3 (or a local folder) and what a search function loads.
 *
 *   "PPVX" | u32 format | u32 header bytes | header JSON | sections, each 4-byte aligned
 */
import { join } from 'node:path';
import { buildHnswIndex, loadHnswIndex } from './hnsw-index.ts';
import { buildPqIndex, FileRows, MemoryRows, PqIndex } from './pq-index.ts';
import type { IndexParams, Metadata, VectorIndex, VectorItem } from './types.ts';

const MAGIC = 0x58565050; // "PPVX" little-endian
const FORMAT = 1;

export interface SnapshotHeader {
  readonly format: number;
  readonly params: IndexParams;
  readonly dimensions: number;
  readonly ids: readonly string[];
  readonly metadata: readonly (Metadata | null)[];
  readonly sections: readonly { readonly name: string; readonly offset: number; readonly length: number }[];
}

export class SnapshotFormatError extends Error {
  override readonly name = 'SnapshotFormatError';
}

const SECTION_NAMES = { hnsw: ['hnsw'], pq: ['codebooks', 'codes', 'vectors'] } as const;

export async function buildIndex(items: readonly VectorItem[], params: IndexParams, dimensions: number): Promise<VectorIndex> {
  return params.kind === 'hnsw' ? buildHnswIndex(items, params, dimensions) : buildPqIndex(items, params, dimensions);
}

export async function toSnapshot(index: VectorIndex): Promise<Uint8Array> {
  const parts = await index.serialize();
  const names = SECTION_NAMES[index.params.kind];
  const align = (n: number) => (n + 3) & ~3;
  let offset = 0;
  const sections = parts.map((p, i) => {
    const s = { name: names[i]!, offset, length: p.byteLength };
    offset = align(offset + p.byteLength);
    return s;
  });
  const header: SnapshotHeader = {
    format: FORMAT,
    params: index.params,
    dimensions: index.dimensions,
    ids: index.ids,
    metadata: index.metadata.map((m) => m ?? null),
    sections,
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const start = align(12 + headerBytes.byteLength);
  const out = new Uint8Array(start + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, FORMAT, true);
  view.setUint32(8, headerBytes.byteLength, true);
  out.set(headerBytes, 12);
  parts.forEach((p, i) => out.set(p, start + sections[i]!.offset));
  return out;
}

export function readSnapshotHeader(bytes: Uint8Array): { header: SnapshotHeader; bodyOffset: number } {
  if (bytes.byteLength < 12) throw new SnapshotFormatError(`snapshot is ${bytes.byteLength} bytes, too short for a header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new SnapshotFormatError('not a Perfpilot vector snapshot (bad magic)');
  const format = view.getUint32(4, true);
  if (format !== FORMAT) throw new SnapshotFormatError(`snapshot format ${format} is not supported (expected ${FORMAT})`);
  const length = view.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + length))) as SnapshotHeader;
  return { header, bodyOffset: (12 + length + 3) & ~3 };
}

export interface LoadOptions {
  /** PQ: a folder for the full vectors, read per candidate (default: kept in memory). */
  readonly rowsDir?: string;
  /** Names the rows file, e.g. the version key. */
  readonly name?: string;
}

export async function fromSnapshot(bytes: Uint8Array, options: LoadOptions = {}): Promise<VectorIndex> {
  const { header, bodyOffset } = readSnapshotHeader(bytes);
  const section = (name: string) => {
    const s = header.sections.find((x) => x.name === name);
    if (!s) throw new SnapshotFormatError(`snapshot has no ${name} section`);
    if (bodyOffset + s.offset + s.length > bytes.byteLength) throw new SnapshotFormatError(`snapshot is truncated in section ${name}`);
    return bytes.slice(bodyOffset + s.offset, bodyOffset + s.offset + s.length);
  };
  const metadata = header.metadata.map((m) => m ?? undefined);
  const d = header.dimensions;
  if (header.params.kind === 'hnsw') return loadHnswIndex(section('hnsw'), header.params, d, header.ids, metadata);
  const centroidBytes = section('codebooks');
  const centroids = new Float32Array(centroidBytes.buffer, centroidBytes.byteOffset, centroidBytes.byteLength / 4);
  const vectorBytes = section('vectors');
  const rows = new Float32Array(vectorBytes.buffer, vectorBytes.byteOffset, vectorBytes.byteLength / 4);
  const source = options.rowsDir ? FileRows.write(join(options.rowsDir, `${options.name ?? 'rows'}-${process.pid}-${Date.now()}.f32`), rows, d) : new MemoryRows(rows, d);
  const p = header.params;
  return new PqIndex(p, d, header.ids, metadata, { subspaces: p.subspaces, subDimensions: d / p.subspaces, centroids }, section('codes'), source);
}
