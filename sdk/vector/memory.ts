/**
 * What an index will hold in memory, predicted from (n, d, M, PQ or not) before it is
 * built, and the check that refuses a configuration the search function's memory
 * cannot hold.
 *
 * The HNSW terms are hnswlib's own allocations in its wasm32 build (4-byte pointers,
 * labels and mutex-free 24-byte std::mutex), checked against the heap growth measured
 * with a malloc probe (test/vector/memory.test.ts, bench/vector):
 *   - level 0, preallocated for every element: links (2M × 4 B + a 4 B count), the
 *     vector (d × 4 B) and its label (4 B);
 *   - per element besides: its upper-level pointer, its level, its lock and one
 *     visited-list slot (4 + 4 + 24 + 2 B), and its entry in the label map (~31 B:
 *     a 16 B node, allocator header and padding, buckets);
 *   - upper levels: an element reaches level l with probability M^-l, so the
 *     expected upper links are (M × 4 + 4) / (M − 1) B per element, plus an 8 B
 *     allocator header for the 1/M elements that have any;
 *   - fixed: 65,536 label-operation locks (24 B each) and the allocator's own;
 *   - while building: the copy of one insertion batch (batch × d × 4 B), the heap's
 *     high-water mark (an index loaded from a snapshot has none).
 */
export interface IndexShape {
  readonly count: number;
  readonly dimensions: number;
  readonly m: number;
  /** Product quantization: bytes of code per vector (0 or absent: full vectors in the graph). */
  readonly pqBytesPerVector?: number;
  /** Predict the build (with its insertion batch), not an index loaded from a snapshot. */
  readonly building?: boolean;
}

export const HNSW_FIXED_BYTES = 1_577_528;
const PER_ELEMENT_BOOKKEEPING_BYTES = 4 + 4 + 24 + 2;
const LABEL_MAP_BYTES_PER_ELEMENT = 31;
const UPPER_LIST_HEADER_BYTES = 8;
/** Vectors handed to hnswlib per addPoints call (sdk/vector/hnsw-index.ts). */
export const INSERT_BATCH = 1_000;
/** PQ codebooks: 256 centroids of d/m floats for each of m subspaces = 256 × d × 4 B. */
const PQ_CENTROIDS = 256;

export interface MemoryPrediction {
  readonly totalBytes: number;
  readonly terms: Readonly<Record<string, number>>;
}

export function predictIndexMemory(shape: IndexShape): MemoryPrediction {
  const { count: n, dimensions: d, m } = shape;
  if (shape.pqBytesPerVector) {
    const terms = {
      codes: n * shape.pqBytesPerVector,
      codebooks: PQ_CENTROIDS * d * 4,
      // Labels of the candidates kept for re-ranking are transient; the id table is counted by the runtime.
    };
    return { totalBytes: terms.codes + terms.codebooks, terms };
  }
  const terms = {
    level0: n * (2 * m * 4 + 4 + d * 4 + 4),
    bookkeeping: n * (PER_ELEMENT_BOOKKEEPING_BYTES + LABEL_MAP_BYTES_PER_ELEMENT),
    upperLevels: n * ((m * 4 + 4) / (m - 1) + UPPER_LIST_HEADER_BYTES / m),
    fixed: HNSW_FIXED_BYTES,
    insertBatch: shape.building ? Math.min(n, INSERT_BATCH) * d * 4 : 0,
  };
  return { totalBytes: Object.values(terms).reduce((a, b) => a + b, 0), terms };
}

export interface MemoryBudget {
  /** The search function's memory (Lambda memorySize). */
  readonly functionMemoryMiB: number;
  /** What the runtime takes before any index: Node, the SDK, the wasm module. */
  readonly runtimeBaselineMiB: number;
  /** Kept free besides (GC, request buffers, a second version during a canary). */
  readonly headroomPercent: number;
  /** Versions held at once: 2 during a canary (the active one and the new one). */
  readonly versionsHeld: number;
}

const MiB = 1_048_576;

export function availableIndexBytes(b: MemoryBudget): number {
  return ((b.functionMemoryMiB - b.runtimeBaselineMiB) * MiB * (1 - b.headroomPercent / 100)) / b.versionsHeld;
}

/** A configuration that would not fit; the message says what would. */
export class IndexMemoryError extends Error {
  override readonly name = 'IndexMemoryError';
}

/** The largest M whose graph fits, 0 if even M = 2 does not. */
export function largestFittingM(shape: Omit<IndexShape, 'm' | 'pqBytesPerVector'>, budgetBytes: number): number {
  let best = 0;
  for (let m = 2; m <= 96; m++) if (predictIndexMemory({ ...shape, m }).totalBytes <= budgetBytes) best = m;
  return best;
}

/** The function memory (MiB, Lambda's 1 MiB steps, at least 128) that would hold `indexBytes`. */
export function functionMemoryFor(indexBytes: number, b: Omit<MemoryBudget, 'functionMemoryMiB'>): number {
  return Math.max(128, Math.ceil((indexBytes * b.versionsHeld) / (1 - b.headroomPercent / 100) / MiB + b.runtimeBaselineMiB));
}

/**
 * Throws IndexMemoryError when `shape` would not fit `budget`, naming the predicted
 * size and what would fit: a smaller M, PQ codes, or a larger function.
 */
export function assertFits(shape: IndexShape, budget: MemoryBudget): MemoryPrediction {
  const prediction = predictIndexMemory(shape);
  const available = availableIndexBytes(budget);
  if (prediction.totalBytes <= available) return prediction;
  const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
  const options: string[] = [];
  if (!shape.pqBytesPerVector) {
    const m = largestFittingM(shape, available);
    if (m >= 4) options.push(`M ≤ ${m} (${mib(predictIndexMemory({ ...shape, m }).totalBytes)})`);
    const pq = predictIndexMemory({ ...shape, pqBytesPerVector: Math.max(1, Math.floor(shape.dimensions / 4)) });
    if (pq.totalBytes <= available) options.push(`PQ with ${Math.floor(shape.dimensions / 4)} B codes (${mib(pq.totalBytes)}, full vectors re-ranked from local storage)`);
  }
  options.push(`a search function of ${functionMemoryFor(prediction.totalBytes, budget)} MiB`);
  throw new IndexMemoryError(
    `an index of ${shape.count} vectors × ${shape.dimensions} dimensions with M=${shape.m}` +
      `${shape.pqBytesPerVector ? ` and ${shape.pqBytesPerVector} B PQ codes` : ''} needs ${mib(prediction.totalBytes)}` +
      `${budget.versionsHeld > 1 ? ` (× ${budget.versionsHeld} versions held during a canary)` : ''}, but a ${budget.functionMemoryMiB} MiB function ` +
      `leaves ${mib(available)} per version after the ${budget.runtimeBaselineMiB} MiB runtime and ${budget.headroomPercent}% headroom; would fit: ${options.join('; or ')}`,
  );
}
