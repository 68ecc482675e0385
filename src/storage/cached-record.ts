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

/**
 * Value object -> its JSON text. A value is the bulk of a copy and of a response (a 1.3 KB record
 * with a 64-float vector takes ~8 µs to serialise), copies are never mutated (merges copy), and
 * the same object is served and re-encoded many times, so its text is computed once, or taken from
 * the copy it was decoded from. Entries go with their objects.
 */
const valueTexts = new WeakMap<object, string>();

/** The JSON text of a cached value: the same text as JSON.stringify(value). */
export function valueJson(value: Record<string, unknown> | null): string {
	if (value === null) return "null";
	let text = valueTexts.get(value);
	if (text === undefined) {
		text = JSON.stringify(value);
		valueTexts.set(value, text);
	}
	return text;
}

/** What encodeRecord writes before the value: the revision first, for Redis's version guard. */
const head = (r: CachedRecord): string => `{"r":${r.r},"t":${r.t},"i":${JSON.stringify(r.i)},"v":`;

/** Encodes with the revision first: Redis's version guard reads it from the start of the string. */
export const encodeRecord = (r: CachedRecord): string => `${head(r)}${valueJson(r.v)}}`;

/** The latest time a Date holds: an event time past it cannot be rendered. */
const MAX_DATE_MS = 8_640_000_000_000_000;

/**
 * Whether a parsed entry has the shape every reader relies on: a revision (a whole number, 0 for a
 * confirmed miss), an event time a Date can hold, an event id, and a value that is an object or
 * null (a tombstone). A copy that is anything else (written by something other than Hotpath, or
 * damaged) is a miss: rendering it would fail the request, or serve garbage as the record.
 */
function isCopy(r: unknown): r is CachedRecord {
	if (typeof r !== "object" || r === null || Array.isArray(r)) return false;
	const c = r as Partial<CachedRecord>;
	return (
		Number.isSafeInteger(c.r) &&
		(c.r as number) >= 0 &&
		typeof c.t === "number" &&
		Math.abs(c.t) <= MAX_DATE_MS &&
		typeof c.i === "string" &&
		(c.v === null || (typeof c.v === "object" && !Array.isArray(c.v)))
	);
}

/** Parses a cached copy, or returns null when it is not one (a foreign or corrupt entry is a miss). */
export function decodeRecord(s: string | null | undefined): CachedRecord | null {
	if (!s) return null;
	let r: CachedRecord;
	try {
		r = JSON.parse(s) as CachedRecord;
	} catch {
		return null;
	}
	if (!isCopy(r)) return null;
	// A copy encodeRecord wrote ends with the value's JSON text: keep it, so serving or re-encoding
	// the value needs no second serialisation. Anything else is serialised when needed. (Only
	// Hotpath writes the r: keys of its Redis and KV, so a copy with this head is one it wrote.)
	if (r.v !== null) {
		const prefix = head(r);
		if (s.startsWith(prefix) && s.endsWith("}")) valueTexts.set(r.v, s.slice(prefix.length, -1));
	}
	return r;
}

/** The cache key of a record in Redis and KV. Dataset names cannot hold ':', so this is unambiguous. */
export const recordCacheKey = (dataset: string, key: string): string => `r:${dataset}:${key}`;
