/** A cold process whose first act is loading a snapshot, as the search function's cold start is. */
import { readFileSync } from 'node:fs';
import { fromSnapshot } from '#sdk/vector/snapshot';

const index = await fromSnapshot(new Uint8Array(readFileSync(process.argv[2]!)));
process.stdout.write(JSON.stringify({ count: index.count, top: index.searchLabels(Float32Array.from(JSON.parse(process.argv[3]!) as number[]), 1, { efSearch: 20 })[0]!.label }));
index.close();
