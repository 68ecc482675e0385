/** The tier contract of the read path below L0: Redis, KV and D1 all answer many keys in one round trip. */
import type { CachedRecord } from "../storage/cached-record";

/** The tiers, in the order a read walks them: the one place this order is written. */
export const TIER_ORDER = ["l0", "redis", "kv", "d1"] as const;
export type TierName = (typeof TIER_ORDER)[number];

/** A record a tier is asked for. `ck` is its cache key, `r:<dataset>:<key>`. */
export interface RecordRef {
	dataset: string;
	key: string;
	ck: string;
}

/** What a load found for one key: a record (`r > 0`; `v` null for a tombstone) or a known miss (`r === 0`). */
export type Found = Map<string, CachedRecord>;

/** A copy to store in a tier, with the TTL of its dataset (Redis caps it; KV ignores it). */
export interface FillEntry {
	ref: RecordRef;
	rec: CachedRecord;
	ttlSeconds: number;
}

export interface Tier {
	readonly name: Exclude<TierName, "l0">;
	/**
	 * Worst-case lag of this tier behind D1, in ms: a copy read from it may miss changes D1 took
	 * this long ago. A read that tolerates less skips the tier, and a tier is only ever filled from
	 * one that lags no more than it may.
	 */
	readonly maxLagMs: number;
	/** Whether the tier can be asked now (configured, and its circuit breaker closed). */
	available(): boolean;
	/** One round trip for all refs. Keys the tier does not hold are absent from the result. */
	getMany(refs: RecordRef[]): Promise<Found>;
	/** Stores copies found in a lower tier. Called off the critical path. Must never replace a newer copy. */
	fill(entries: FillEntry[]): Promise<void>;
}

/** A miss confirmed by the origin: cached briefly as a negative entry. */
export const NOT_FOUND: CachedRecord = Object.freeze({ v: null, t: 0, i: "", r: 0 }) as CachedRecord;
