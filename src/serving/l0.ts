/**
 * L0: copies of records in isolate memory. Bounded in entries (LRU), fresh for a few seconds,
 * then usable for a short stale-while-revalidate window while a background load refreshes them.
 * Past that window an entry is kept only as a last resort for when every lower tier fails.
 */
import type { CachedRecord } from "../storage/cached-record";
import { LruCache } from "./lru";

interface L0Entry {
	rec: CachedRecord;
	storedAt: number;
}

export type L0Hit = { rec: CachedRecord; ageMs: number; state: "fresh" | "revalidate" };

export class L0Cache {
	private readonly lru: LruCache<L0Entry>;

	constructor(
		maxEntries: number,
		/** Served as is for this long. */
		readonly freshMs: number,
		/** Served while a background refresh runs, up to this age. */
		readonly staleMs: number,
		/** A not-found entry lives this long, so a burst of misses does not hammer the origin. */
		readonly negativeMs: number,
	) {
		this.lru = new LruCache(maxEntries);
	}

	get size(): number {
		return this.lru.size;
	}

	get maxEntries(): number {
		return this.lru.maxEntries;
	}

	/**
	 * An entry no older than `maxLagMs` (the request's tolerance for lag behind D1), or undefined.
	 * A tolerance of 0 (max_staleness=0) demands D1: no copy qualifies, not even one stored in the
	 * same millisecond. Negative entries (r = 0) are never revalidated, only expired.
	 */
	get(ck: string, maxLagMs: number, now: number): L0Hit | undefined {
		const e = this.lru.get(ck);
		if (!e) return undefined;
		const age = now - e.storedAt;
		const limit = e.rec.r === 0 ? this.negativeMs : this.staleMs;
		if (maxLagMs <= 0 || age > limit || age > maxLagMs) return undefined;
		return { rec: e.rec, ageMs: age, state: age <= this.freshMs || e.rec.r === 0 ? "fresh" : "revalidate" };
	}

	/** The entry at any age: for serving a marked-stale copy when every other tier has failed. */
	lastResort(ck: string): CachedRecord | undefined {
		const e = this.lru.peek(ck);
		return e && e.rec.r > 0 ? e.rec : undefined;
	}

	/** Stores a copy unless a newer revision is already held. */
	set(ck: string, rec: CachedRecord, now: number): void {
		const prev = this.lru.peek(ck);
		if (prev && prev.rec.r > rec.r) return;
		this.lru.set(ck, { rec, storedAt: now });
	}

	delete(ck: string): void {
		this.lru.delete(ck);
	}

	clear(): void {
		this.lru.clear();
	}
}
