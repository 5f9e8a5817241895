/**
 * The dataset an index is built from, as one object in the snapshot store: what the
 * application writes when its corpus changes (ids, metadata, vectors), and what the
 * tuner reads to compute exact ground truth and build candidate indexes.
 *
 *   "PPVD" | u32 header bytes | header JSON { dimensions, ids, metadata } | float32 rows (4-byte aligned)
 */
import type { Metadata, VectorItem } from './types.ts';

const MAGIC = 0x44565050; // "PPVD"

export function encodeDataset(items: readonly VectorItem[], dimensions: number): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({ dimensions, ids: items.map((i) => i.id), metadata: items.map((i) => i.metadata ?? null) }),
  );
  const start = (8 + header.byteLength + 3) & ~3;
  const out = new Uint8Array(start + items.length * dimensions * 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, header.byteLength, true);
  out.set(header, 8);
  const rows = new Float32Array(out.buffer, start, items.length * dimensions);
  items.forEach((item, i) => {
    if (item.vector.length !== dimensions) throw new RangeError(`dataset item ${i} (${item.id}) has ${item.vector.length} dimensions, expected ${dimensions}`);
    rows.set(item.vector, i * dimensions);
  });
  return out;
}

export function decodeDataset(bytes: Uint8Array, source = 'dataset'): { dimensions: number; items: VectorItem[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 || view.getUint32(0, true) !== MAGIC) throw new RangeError(`${source} is not a Perfpilot vector dataset`);
  const length = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as {
    dimensions: number;
    ids: string[];
    metadata: (Metadata | null)[];
  };
  const start = (8 + length + 3) & ~3;
  const d = header.dimensions;
  if (bytes.byteLength - start !== header.ids.length * d * 4) throw new RangeError(`${source} is truncated: expected ${header.ids.length} rows of ${d} floats`);
  const copy = bytes.slice(start);
  const rows = new Float32Array(copy.buffer, 0, header.ids.length * d);
  return {
    dimensions: d,
    items: header.ids.map((id, i) => ({ id, vector: rows.subarray(i * d, (i + 1) * d), ...(header.metadata[i] ? { metadata: header.metadata[i]! } : {}) })),
  };
}
