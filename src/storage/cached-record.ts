/** The copy of a record that every cache tier holds: small, versioned, and the same in L0, Redis and KV. */

export interface CachedRecord {
	/** The value, or null for a tombstone. */
	v: Record<string, unknown> | null;
	/** event_time, epoch ms. */
	t: number;
	/** event id of the newest event applied. */
	i: string;
	/** D1 revision: strictly grows with every change to the key, so caches can refuse older copies. */
	r: number;
}

/** Encodes with the revision first: Redis's version guard reads it from the start of the string. */
export const encodeRecord = (r: CachedRecord): string => JSON.stringify({ r: r.r, t: r.t, i: r.i, v: r.v });

/** Parses a cached copy, or returns null when it is not one (a foreign or corrupt entry is a miss). */
export function decodeRecord(s: string | null | undefined): CachedRecord | null {
	if (!s) return null;
	try {
		const r = JSON.parse(s) as CachedRecord;
		return typeof r === "object" && r !== null && typeof r.t === "number" && typeof r.r === "number" ? r : null;
	} catch {
		return null;
	}
}

/** The cache key of a record in Redis and KV. Dataset names cannot hold ':', so this is unambiguous. */
export const recordCacheKey = (dataset: string, key: string): string => `r:${dataset}:${key}`;
