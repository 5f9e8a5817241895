/**
 * Loads one snapshot in a fresh process and prints the heap growth it measured: the
 * malloc probe counts exactly only on a heap with no freed holes below its top, which
 * a benchmark process that built and freed other indexes no longer has.
 */
import { readFileSync } from 'node:fs';
import { fromSnapshot } from '#sdk/vector/snapshot';

const index = await fromSnapshot(new Uint8Array(readFileSync(process.argv[2]!)));
process.stdout.write(JSON.stringify({ measuredBytes: index.measuredBytes }));
index.close();
