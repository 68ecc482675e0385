/** L1: Upstash Redis. One GET or MGET per lookup, behind a circuit breaker; fills and write-through are version-guarded. */
import { type CachedRecord, decodeRecord, encodeRecord } from "../storage/cached-record";
import type { ChangeCounts, RedisStore } from "../storage/redis";
import { timeout } from "../timeout";
import type { CircuitBreaker } from "./breaker";
import { changeBucket, changeCounterKey } from "./changes";
import type { FillEntry, Found, RecordRef, Tier } from "./tier";

export class RedisTier implements Tier {
	readonly name = "redis" as const;

	constructor(
		private readonly store: RedisStore,
		readonly breaker: CircuitBreaker,
		readonly maxLagMs: number,
		/** TTL of a negative (not found) entry. */
		readonly negativeTtlSeconds: number,
		/** A call slower than this counts as a failure on the breaker. */
		private readonly timeoutMs: number,
		/**
		 * Upper bound on any copy's TTL. Bounds how long a copy can outlive a change whose write
		 * failed (the consumer's refresh retries only until then).
		 */
		readonly maxTtlSeconds: number,
	) {}

	available(): boolean {
		return this.breaker.allow();
	}

	async getMany(refs: RecordRef[]): Promise<Found> {
		const values = await this.guard(() => this.store.getMany(refs.map((r) => r.ck)), this.timeoutMs);
		const out: Found = new Map();
		refs.forEach((ref, i) => {
			const rec = decodeRecord(values[i]);
			if (rec) out.set(ref.ck, rec);
		});
		return out;
	}

	async fill(entries: FillEntry[]): Promise<void> {
		await this.write(entries.map((e) => ({ ck: e.ref.ck, rec: e.rec, ttlSeconds: e.ttlSeconds })));
	}

	/**
	 * Version-guarded writes of current copies; used by fills and by the consumer's write-through.
	 * A copy lives its dataset's ttl_seconds (or, unknown, the cap), never past maxTtlSeconds.
	 * Writes of changes (the consumer's after a D1 commit, refreshes, rebuilds) give `dataset` and
	 * bump its change counters in the same script (src/serving/changes.ts); fills copy what a
	 * lower tier already had and bump nothing. `fromD1` (a rebuild's refill, with `dataset`) also
	 * replaces a different copy of the same revision: a row edited directly in D1.
	 */
	async write(entries: { ck: string; rec: CachedRecord; ttlSeconds?: number; dataset?: string; fromD1?: boolean }[]): Promise<number> {
		if (!entries.length) return 0;
		const writes = entries.map((e) => ({
			key: e.ck,
			rev: e.rec.r,
			payload: encodeRecord(e.rec),
			ttlSeconds: e.rec.r === 0 ? this.negativeTtlSeconds : Math.min(e.ttlSeconds ?? this.maxTtlSeconds, this.maxTtlSeconds),
			change: e.dataset === undefined ? undefined : { counters: changeCounterKey(e.dataset), bucket: changeBucket(e.ck) },
			fromD1: e.fromD1,
		}));
		// Writes batch many scripts into one pipeline, so they get a longer bound than reads, and
		// more with their size (2 ms per KB): a rebuild page of 400 records is ~0.5 MB.
		let chars = 0;
		for (const w of writes) chars += w.payload.length;
		return this.guard(() => this.store.guardedSetMany(writes), this.timeoutMs * 20 + Math.ceil(chars / 512));
	}

	/** The change counters of these datasets (src/serving/changes.ts), through the breaker. */
	async readChanges(datasets: readonly string[]): Promise<(ChangeCounts | null)[]> {
		if (!this.breaker.allow()) throw new Error("redis: circuit breaker open");
		return this.guard(() => this.store.readCounters(datasets.map(changeCounterKey)), this.timeoutMs);
	}

	/**
	 * Drops copies: a rebuild's drop mode, and the consumer's drop of cached misses of keys a batch
	 * created. With `dataset`, each drop is counted as a change in its counters
	 * (src/serving/changes.ts), so L0 copies taken from the dropped ones reload too; a cached miss
	 * needs no count, since L0 never revalidates one, it only lets it expire.
	 */
	async drop(cks: readonly string[], dataset?: string): Promise<number> {
		if (!cks.length) return 0;
		const change = dataset === undefined ? undefined : { counters: changeCounterKey(dataset), buckets: cks.map(changeBucket) };
		return this.guard(() => this.store.deleteMany(cks, change), this.timeoutMs * 20);
	}

	/**
	 * Deletes copies a change could not be written over, and the change counters of their datasets:
	 * for when Redis refuses writes but still answers reads (over its memory or data-size limit,
	 * where a DEL is still taken). The copies would otherwise be served as at most Redis's lag behind
	 * D1, and L0 copies confirmed by counters that the refused write never bumped; a dataset whose
	 * counter hash is gone confirms nothing until it is recreated under a new epoch.
	 */
	async dropUnwritten(entries: readonly { ck: string; dataset: string }[]): Promise<number> {
		if (!entries.length) return 0;
		const keys = [...new Set([...entries.map((e) => e.ck), ...entries.map((e) => changeCounterKey(e.dataset))])];
		// A shorter bound than a write's: it follows one that failed, and a Redis that hangs must not hold the refresh back long.
		return this.guard(() => this.store.deleteMany(keys), this.timeoutMs * 4);
	}

	/** Pings Redis through the breaker: how /healthz tells up from down, and how an open breaker gets its probe. */
	async probe(): Promise<boolean> {
		if (!this.breaker.allow()) return false;
		try {
			const start = Date.now();
			await timeout(this.store.ping(), this.timeoutMs * 4, "redis ping");
			// Redis answers, but a ping slower than a read may wait says it is not fit for reads yet.
			if (Date.now() - start <= this.timeoutMs) this.breaker.success();
			else this.breaker.failure();
			return true;
		} catch {
			this.breaker.failure();
			return false;
		}
	}

	/**
	 * Records the outcome of a call on the breaker. Reads ask `available()` first (which may hand
	 * out the half-open probe); the consumer's writes go ahead regardless, and report all the same.
	 * Only a success within a read's timeout counts as one: writes get longer bounds, and one that
	 * got through slowly says nothing of whether reads would, so it leaves the breaker as it is.
	 */
	private async guard<T>(fn: () => Promise<T>, ms: number): Promise<T> {
		const start = Date.now();
		try {
			const v = await timeout(fn(), ms, "redis");
			if (Date.now() - start <= this.timeoutMs) this.breaker.success();
			return v;
		} catch (e) {
			this.breaker.failure();
			throw e;
		}
	}
}
