/**
 * Change counters: how an L0 copy stays fresh while its key has not changed, without a reload.
 *
 * Every write that carries a change to Redis (the consumer's write-through after a D1 commit, a
 * refresh, a rebuild's refill or drop) also bumps a counter: one hash per dataset, `c:<dataset>`, with
 * CHANGE_BUCKETS buckets by a hash of the cache key, bumped in the same script as the guarded SET
 * (src/storage/redis.ts). Each isolate reads the counters of the datasets it serves at most once
 * per CHANGE_POLL_MS, in one pipeline shared by every request; a read creates a missing hash with
 * a new epoch, so data that has not changed since counters began is covered too.
 *
 * A copy remembers its bucket's count in a snapshot finished before the copy was synced (`ref`).
 * When a later snapshot shows the same count under the same epoch, no change to that bucket
 * reached Redis in between, so the copy still matched D1 when that snapshot was asked, less
 * Redis's own lag bound: the same guarantee a Redis read gives, without the read. A bucket that
 * moved, a hash that was flushed or evicted (a new epoch) or a snapshot that failed only ever
 * means the copy revalidates as it does without counters. So a dataset that changes all the time
 * behaves as before, and one that is mostly read stops reloading unchanged keys.
 */
import type { ChangeCounts } from "../storage/redis";

/** Buckets per dataset: a change costs the copies of 1/CHANGE_BUCKETS of its dataset their extension. */
export const CHANGE_BUCKETS = 1024;

/** The counter hash of a dataset in Redis. Dataset names cannot hold ':', so this never meets a record key (`r:`). */
export const changeCounterKey = (dataset: string): string => `c:${dataset}`;

/** The bucket of a cache key: FNV-1a over its UTF-16 code units. */
export function changeBucket(ck: string): number {
	let h = 0x811c9dc5;
	for (let i = 0; i < ck.length; i++) {
		h ^= ck.charCodeAt(i);
		h = Math.imul(h, 0x01000193);
	}
	return (h >>> 0) % CHANGE_BUCKETS;
}

/** Where a copy stood in its dataset's counters: the snapshot's epoch and its bucket's count. */
export interface ChangeRef {
	dataset: string;
	epoch: string;
	bucket: number;
	count: number;
	/**
	 * The latest time the counters may vouch for the copy: its sync plus a Redis copy's longest
	 * life. A change whose bump never comes (the consumer could not write Redis, and its refresh
	 * retries only until every Redis copy written before then has expired) is then missed by L0 no
	 * longer than by Redis.
	 */
	until: number;
}

interface Snapshot {
	/** When the read was sent: every bump before this is in it. */
	askedAt: number;
	/** When its answer arrived: no bump after this is in it (one in between may or may not be). */
	doneAt: number;
	/** Per dataset polled: its counters, or null when they could not be read (nothing to compare). */
	counters: Map<string, ChangeCounts | null>;
}

/** Reads the counter hashes of these datasets, in order. */
export type CounterSource = (datasets: readonly string[]) => Promise<(ChangeCounts | null)[]>;

export class ChangeWatch {
	/** Oldest first; a few are kept so a copy synced a moment ago still finds one finished before it. */
	private readonly snapshots: Snapshot[] = [];
	/**
	 * Datasets this isolate serves copies of, with when a copy of each last took or asked for a
	 * ref: the ones worth polling. One unused for idleMs is dropped, so a poll reads what the
	 * isolate serves now, not every dataset it ever served.
	 */
	private readonly datasets = new Map<string, number>();
	private polling = false;
	private lastPollAt = Number.NEGATIVE_INFINITY;

	constructor(
		private readonly source: CounterSource,
		/** At most one poll per this many ms. */
		readonly pollMs: number,
		/** Redis's lag bound: a counter confirms a copy as of its snapshot's askedAt less this. */
		readonly redisMaxLagMs: number,
		/** How long a Redis copy may live (REDIS_MAX_TTL_SECONDS): no copy is confirmed for longer after it was synced. */
		readonly maxConfirmMs: number,
		private readonly keep = 8,
		private readonly clock: () => number = () => Date.now(),
		private readonly idleMs = 60_000,
	) {}

	/**
	 * Starts a poll when the last is older than pollMs and none is running, under the calling
	 * request's waitUntil. Reads call this (the fast lane too), so snapshots keep coming while an
	 * isolate serves, and copies find a recent one when their fresh time runs out.
	 */
	poll(now: number, ctx: { waitUntil(p: Promise<unknown>): void }): void {
		if (this.polling || now - this.lastPollAt < this.pollMs) return;
		for (const [d, usedAt] of this.datasets) if (now - usedAt > this.idleMs) this.datasets.delete(d);
		if (!this.datasets.size) return;
		this.polling = true;
		this.lastPollAt = now;
		ctx.waitUntil(this.read(now));
	}

	private async read(askedAt: number): Promise<void> {
		const datasets = [...this.datasets.keys()];
		try {
			const counts = await this.source(datasets);
			const counters = new Map<string, ChangeCounts | null>();
			for (const [i, d] of datasets.entries()) counters.set(d, counts[i] ?? null);
			this.snapshots.push({ askedAt, doneAt: this.clock(), counters });
			if (this.snapshots.length > this.keep) this.snapshots.shift();
		} catch {
			// A failed read confirms nothing: copies revalidate as they would without counters.
		} finally {
			this.polling = false;
		}
	}

	/**
	 * The ref of a copy synced at `syncedAt`: from the newest snapshot that finished by then, so
	 * every change it counted is in the copy. Undefined when there is none (the dataset is then
	 * polled from now on).
	 */
	refFor(dataset: string, ck: string, syncedAt: number): ChangeRef | undefined {
		this.datasets.set(dataset, this.clock());
		for (let i = this.snapshots.length - 1; i >= 0; i--) {
			const s = this.snapshots[i] as Snapshot;
			if (s.doneAt > syncedAt) continue;
			const c = s.counters.get(dataset);
			if (!c) return undefined;
			const bucket = changeBucket(ck);
			return { dataset, epoch: c.epoch, bucket, count: c.counts.get(bucket) ?? 0, until: syncedAt + this.maxConfirmMs };
		}
		return undefined;
	}

	/** When a copy with `ref` is last known to have matched D1 by the counters, if they confirm it at all. */
	confirmedAt(ref: ChangeRef): number | undefined {
		const s = this.snapshots[this.snapshots.length - 1];
		// A copy being read keeps its dataset polled.
		this.datasets.set(ref.dataset, this.clock());
		const c = s?.counters.get(ref.dataset);
		if (!s || !c || c.epoch !== ref.epoch || (c.counts.get(ref.bucket) ?? 0) !== ref.count) return undefined;
		return Math.min(s.askedAt - this.redisMaxLagMs, ref.until);
	}
}
