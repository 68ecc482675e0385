/**
 * L0: copies of records in isolate memory. Bounded in entries (LRU), fresh for a few seconds,
 * then usable for a short stale-while-revalidate window while a background load refreshes them.
 * Past that window an entry is kept only as a last resort for when every lower tier fails.
 *
 * Each entry carries its provenance: `syncedAt`, when its source was last known to match D1 (a
 * copy read from D1 at that moment, from KV up to KV's lag before). Its lag is counted from there,
 * not from when it entered L0, so a copy L0 took from KV is never served as fresher than KV's was.
 *
 * With change counters (src/serving/changes.ts), a copy past its fresh time whose key has not
 * changed since is confirmed instead of reloaded: its times move to when the counters last
 * vouched for it, and it is fresh again.
 */
import { type CachedRecord, valueJson } from "../storage/cached-record";
import type { ChangeRef, ChangeWatch } from "./changes";
import { LruCache } from "./lru";

interface L0Entry {
	rec: CachedRecord;
	/** When L0 took the copy: what L0's own fresh and stale-while-revalidate windows count from. */
	storedAt: number;
	/** When the copy's source was last known to match D1. */
	syncedAt: number;
	/** Where the copy stood in its dataset's change counters, when a snapshot was taken before it was synced. */
	ref?: ChangeRef;
}

export type L0Hit = { rec: CachedRecord; syncedAt: number; state: "fresh" | "revalidate" };

export class L0Cache {
	private readonly lru: LruCache<L0Entry>;

	constructor(
		maxEntries: number,
		/** Served as is for this long after L0 took it. */
		readonly freshMs: number,
		/** Served while a background refresh runs, up to this long after L0 took it. */
		readonly staleMs: number,
		/** A not-found entry lives this long, so a burst of misses does not hammer the origin. */
		readonly negativeMs: number,
		/** Change counters that can confirm an unchanged copy; without them, copies only revalidate. */
		readonly changes?: ChangeWatch,
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
	 * An entry whose lag behind D1 is within `maxLagMs` (the request's tolerance), or undefined.
	 * A tolerance of 0 (max_staleness=0) demands D1: no copy qualifies, not even one synced in the
	 * same millisecond. Negative entries (r = 0) are never revalidated, only expired.
	 */
	get(ck: string, maxLagMs: number, now: number): L0Hit | undefined {
		const e = this.lru.get(ck);
		if (!e || maxLagMs <= 0) return undefined;
		// Not a negative entry: it has no fresh time to extend, only its own short life.
		if (e.ref && e.rec.r > 0 && now - e.storedAt > this.freshMs) this.confirm(e, e.ref);
		const age = now - e.storedAt;
		if (age > (e.rec.r === 0 ? this.negativeMs : this.staleMs) || now - e.syncedAt > maxLagMs) return undefined;
		return { rec: e.rec, syncedAt: e.syncedAt, state: age <= this.freshMs || e.rec.r === 0 ? "fresh" : "revalidate" };
	}

	/** Moves a copy's times to when the counters last confirmed it unchanged, if that is later. */
	private confirm(e: L0Entry, ref: ChangeRef): void {
		const at = this.changes?.confirmedAt(ref);
		if (at === undefined || at <= e.storedAt) return;
		e.storedAt = at;
		if (at > e.syncedAt) e.syncedAt = at;
	}

	/**
	 * The entry at any age: for serving a marked-stale copy when every other tier has failed. Only a
	 * copy with a value: a miss or a tombstone would be answered as not found (a 404), which cannot
	 * say it came from a stale copy, and the key may have been written since.
	 */
	lastResort(ck: string): { rec: CachedRecord; syncedAt: number } | undefined {
		const e = this.lru.peek(ck);
		return e && e.rec.r > 0 && e.rec.v !== null ? { rec: e.rec, syncedAt: e.syncedAt } : undefined;
	}

	/**
	 * Stores a copy unless a newer revision is already held. The same revision again (a
	 * revalidation) keeps the later of the two sync times: both copies matched D1 then. The same
	 * revision with other contents (a row edited directly in D1, then rebuilt) is taken as loaded.
	 * `ref` is the copy's place in the change counters (ChangeWatch.refFor), if known.
	 */
	set(ck: string, rec: CachedRecord, now: number, syncedAt: number, ref?: ChangeRef): void {
		const prev = this.lru.peek(ck);
		if (prev && prev.rec.r > rec.r) return;
		if (prev && prev.rec.r === rec.r && sameCopy(prev.rec, rec)) {
			// A revalidation that found the same revision keeps the copy L0 holds: its decoded value
			// and the texts rendered from it stay valid, and a hot key does not become garbage every
			// few seconds.
			prev.storedAt = now;
			prev.syncedAt = Math.max(prev.syncedAt, syncedAt);
			if (ref) prev.ref = ref;
			return;
		}
		this.lru.set(ck, { rec, storedAt: now, syncedAt, ref });
	}

	/**
	 * Replaces a copy L0 already holds with a state D1 was known to hold at `syncedAt` (the consumer
	 * after a commit: the time before the statement that wrote or read it, never later).
	 * Keys L0 does not hold are left out: an isolate that consumes thousands of events a second
	 * would otherwise turn its whole L0 over to keys nobody reads here. The held copy's counter
	 * ref stays: every change counted before it is in the newer copy too.
	 */
	refreshHeld(ck: string, rec: CachedRecord, syncedAt: number, now: number): boolean {
		const prev = this.lru.peek(ck);
		if (!prev || prev.rec.r > rec.r) return false;
		if (prev.rec.r === rec.r) {
			prev.storedAt = now;
			prev.syncedAt = Math.max(prev.syncedAt, syncedAt);
			return true;
		}
		this.lru.set(ck, { rec, storedAt: now, syncedAt, ref: prev.ref });
		return true;
	}

	delete(ck: string): void {
		this.lru.delete(ck);
	}

	clear(): void {
		this.lru.clear();
	}
}

/**
 * Whether two copies of one revision hold the same state. Hotpath never writes two states under one
 * revision, so they differ only after a row was edited directly in D1: a revalidation must then take
 * the copy it loaded. The value texts are cached per copy, so this is a string comparison.
 */
function sameCopy(a: CachedRecord, b: CachedRecord): boolean {
	return a === b || (a.t === b.t && a.i === b.i && valueJson(a.v) === valueJson(b.v));
}
