/** Chunk limits of `hotpath load`: the import route takes at most 5,000 rows and 5 MiB per request. */
export const MAX_CHUNK_ROWS = 5000;
export const MAX_CHUNK_BYTES = 5 * 1024 * 1024;
/** Chunks of 2,000 rows or 4 MiB, four in flight. */
export const DEFAULTS = { chunkRows: 2000, chunkBytes: 4 * 1024 * 1024, concurrency: 4 } as const;
/** Used heap past which a load collects garbage (see memory.ts), so that peak RSS stays under 300 MB. */
export const HEAP_BOUND = 96 * 1024 * 1024;
