/**
 * Change counters (src/serving/changes.ts): an L0 copy past its fresh time whose bucket has not
 * moved is confirmed instead of reloaded; any doubt (a bump, a new epoch, a failed or late
 * snapshot) leaves the copy to revalidate as it would without counters. Time is controlled.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ServerTiming } from "../../src/observability/timing";
import { CHANGE_BUCKETS, ChangeWatch, changeBucket } from "../../src/serving/changes";
import { L0Cache } from "../../src/serving/l0";
import { type LookupRef, TieredReader } from "../../src/serving/reader";
import { TierStats } from "../../src/serving/stats";
import type { Found, RecordRef, Tier } from "../../src/serving/tier";
import { type CachedRecord, recordCacheKey } from "../../src/storage/cached-record";
import type { ChangeCounts } from "../../src/storage/redis";

let clock = 1_000_000;
afterEach(() => vi.restoreAllMocks());

/** Redis's counters as a map the test bumps; `failing` makes a read throw. */
class FakeCounters {
	epoch = "e1";
	readonly counts = new Map<string, Map<number, number>>();
	reads = 0;
	failing = false;
	exists = true;
	bump(dataset: string, ck: string) {
		const m = this.counts.get(dataset) ?? new Map<number, number>();
		m.set(changeBucket(ck), (m.get(changeBucket(ck)) ?? 0) + 1);
		this.counts.set(dataset, m);
	}
	source = async (datasets: readonly string[]): Promise<(ChangeCounts | null)[]> => {
		this.reads++;
		if (this.failing) throw new Error("redis down");
		return datasets.map((d) => (this.exists ? { epoch: this.epoch, counts: new Map(this.counts.get(d)) } : null));
	};
}

class MapTier implements Tier {
	calls = 0;
	readonly data = new Map<string, CachedRecord>();
	constructor(
		readonly name: "redis" | "d1",
		readonly maxLagMs: number,
	) {}
	available() {
		return true;
	}
	async getMany(refs: RecordRef[]): Promise<Found> {
		this.calls++;
		return new Map(refs.filter((r) => this.data.has(r.ck)).map((r) => [r.ck, this.data.get(r.ck) as CachedRecord]));
	}
	async fill() {}
}

function ctx() {
	const pending: Promise<unknown>[] = [];
	return { timing: new ServerTiming(), waitUntil: (p: Promise<unknown>) => void pending.push(p), settle: () => Promise.all(pending) };
}

const REDIS_LAG = 1000;
const FRESH = 5000;
/** How long a Redis copy may live (REDIS_MAX_TTL_SECONDS), short here so tests can run past it. */
const REDIS_TTL = 60_000;
const ck = recordCacheKey("ds", "k");
const ref: LookupRef = { dataset: "ds", key: "k", ck, maxLagMs: 3_600_000, ttlSeconds: 3600 };
const rec = (r: number): CachedRecord => ({ v: { x: r }, t: 1, i: `e${r}`, r });

function setup() {
	vi.spyOn(Date, "now").mockImplementation(() => clock);
	const counters = new FakeCounters();
	const watch = new ChangeWatch(counters.source, 1000, REDIS_LAG, REDIS_TTL, 8, () => clock);
	const l0 = new L0Cache(100, FRESH, FRESH + 10_000, 2000, watch);
	const d1 = new MapTier("d1", 0);
	d1.data.set(ck, rec(1));
	const reader = new TieredReader(l0, [d1], new TierStats(), { redis: 100, kv: 100, d1: 100 });
	/** One read at the current clock, its background work (poll, revalidation) run to the end. */
	const read = async () => {
		const c = ctx();
		const got = (await reader.lookup([ref], c)).get(ck);
		await c.settle();
		return got;
	};
	return { counters, watch, l0, d1, read };
}

/** Loads the key, then takes a snapshot, then reloads it past its fresh time so the copy carries a ref. */
async function warm(s: ReturnType<typeof setup>) {
	await s.read(); // load 1: no snapshot yet, so no ref; the dataset is polled from now on
	clock += 1000;
	await s.read(); // poll: snapshot 1
	clock += FRESH;
	await s.read(); // past fresh: revalidation, load 2, with a ref from snapshot 1
	expect(s.d1.calls).toBe(2);
}

describe("ChangeWatch with L0", () => {
	it("keeps an unchanged copy fresh past its fresh time without a reload, lagging by the snapshot's age plus Redis's bound", async () => {
		const s = setup();
		await warm(s);
		const loads = s.d1.calls;
		// 15 s of reads, three times the fresh time and past the stale window: every one from L0, none reloads.
		for (let i = 0; i < 10; i++) {
			clock += 1500;
			expect((await s.read())?.tier).toBe("l0");
			const hit = s.l0.get(ck, Number.POSITIVE_INFINITY, clock);
			expect(hit?.state).toBe("fresh");
			// Its lag counts from a snapshot that vouched for it, less Redis's lag bound: never from now.
			expect(clock - (hit?.syncedAt ?? 0)).toBeGreaterThanOrEqual(REDIS_LAG);
			expect(clock - (hit?.syncedAt ?? 0)).toBeLessThanOrEqual(REDIS_LAG + FRESH);
		}
		expect(s.d1.calls).toBe(loads);
	});

	it("without counters the same reads reload the copy", async () => {
		vi.spyOn(Date, "now").mockImplementation(() => clock);
		const l0 = new L0Cache(100, FRESH, FRESH + 10_000, 2000);
		const d1 = new MapTier("d1", 0);
		d1.data.set(ck, rec(1));
		const reader = new TieredReader(l0, [d1], new TierStats(), { redis: 100, kv: 100, d1: 100 });
		for (let i = 0; i < 11; i++) {
			const c = ctx();
			await reader.lookup([ref], c);
			await c.settle();
			clock += 1500;
		}
		expect(d1.calls).toBeGreaterThanOrEqual(3);
	});

	it("a bump in the copy's bucket makes it revalidate, and the new value is served after", async () => {
		const s = setup();
		await warm(s);
		s.d1.data.set(ck, rec(2));
		s.counters.bump("ds", ck);
		clock += 1500;
		await s.read(); // the poll sees the bump
		clock += FRESH;
		expect(s.l0.get(ck, Number.POSITIVE_INFINITY, clock)?.state).toBe("revalidate");
		await s.read();
		expect(s.d1.calls).toBe(3);
		expect((await s.read())?.rec.r).toBe(2);
	});

	it("a bump in another bucket or another dataset does not", async () => {
		const s = setup();
		await warm(s);
		let other = 0;
		while (changeBucket(recordCacheKey("ds", `o${other}`)) === changeBucket(ck)) other++;
		s.counters.bump("ds", recordCacheKey("ds", `o${other}`));
		s.counters.bump("other", ck);
		clock += 1500;
		await s.read();
		clock += FRESH - 1000;
		expect(s.l0.get(ck, Number.POSITIVE_INFINITY, clock)?.state).toBe("fresh");
	});

	it("a new epoch (the hash was flushed or evicted and made again) confirms nothing", async () => {
		const s = setup();
		await warm(s);
		s.counters.epoch = "e2";
		clock += 1500;
		await s.read();
		clock += FRESH;
		expect(s.l0.get(ck, Number.POSITIVE_INFINITY, clock)?.state).toBe("revalidate");
	});

	it("no hash, or a failed read, confirms nothing", async () => {
		for (const breakIt of [(c: FakeCounters) => (c.exists = false), (c: FakeCounters) => (c.failing = true)]) {
			const s = setup();
			await warm(s);
			breakIt(s.counters);
			clock += 1500;
			await s.read();
			clock += FRESH;
			expect(s.l0.get(ck, Number.POSITIVE_INFINITY, clock)?.state).toBe("revalidate");
		}
	});

	it("a copy synced before any snapshot finished gets no ref, so it is never confirmed", async () => {
		const s = setup();
		await s.read(); // load without a snapshot
		clock += 1500;
		await s.read(); // snapshot 1, after the copy
		clock += 1500;
		await s.read(); // snapshot 2
		clock += FRESH;
		expect(s.l0.get(ck, Number.POSITIVE_INFINITY, clock)?.state).toBe("revalidate");
		expect(s.watch.refFor("ds", ck, clock - 10_000)).toBeUndefined();
	});

	it("polls at most once per interval, one read at a time, and only datasets it has served", async () => {
		const s = setup();
		const c = ctx();
		s.watch.poll(clock, c);
		expect(s.counters.reads).toBe(0); // nothing served yet: nothing to poll
		await warm(s);
		const reads = s.counters.reads;
		clock += 1000;
		s.watch.poll(clock, c);
		s.watch.poll(clock, c);
		clock += 999;
		s.watch.poll(clock, c);
		await c.settle();
		expect(s.counters.reads).toBe(reads + 1);
		clock += 1000;
		s.watch.poll(clock, c);
		await c.settle();
		expect(s.counters.reads).toBe(reads + 2);
	});

	it("a bump that never comes (the consumer could not write Redis, and its refresh gave up) keeps a copy no longer than a Redis copy lives", async () => {
		const s = setup();
		await warm(s);
		// D1 moves on, and no write ever reaches Redis to count it: the refresh message retries only
		// until every Redis copy written before the failure has expired (REDIS_MAX_TTL_SECONDS).
		s.d1.data.set(ck, rec(2));
		let served = 1;
		for (let elapsed = 0; elapsed < 3 * REDIS_TTL && served === 1; elapsed += 1500) {
			clock += 1500;
			served = (await s.read())?.rec.r ?? 0;
		}
		expect(served).toBe(2);
		// Confirmed at the latest up to the copy's sync plus a Redis copy's life, then reloaded.
		expect(s.d1.calls).toBe(3);
	});

	it("a negative entry expires after its own time, counters or not", async () => {
		const s = setup();
		const none: CachedRecord = { v: null, t: 0, i: "", r: 0 };
		s.d1.data.set(ck, none);
		await s.read(); // load 1, no ref
		clock += 1000;
		await s.read(); // hit; poll: snapshot 1
		clock += 1500;
		await s.read(); // past its 2 s: reloaded, now with a ref
		expect(s.d1.calls).toBe(2);
		const c = ctx();
		for (let i = 0; i < 6; i++) {
			clock += 1000;
			s.watch.poll(clock, c); // snapshots keep coming (other keys' reads), with this bucket unchanged
			await c.settle();
		}
		// 6 s after it was stored: past NEGATIVE_TTL (2 s), so gone, not brought back by the counters.
		expect(s.l0.get(ck, Number.POSITIVE_INFINITY, clock)).toBeUndefined();
	});

	it("stops polling datasets it no longer serves", async () => {
		const s = setup();
		const polled: string[][] = [];
		const watch = new ChangeWatch(
			async (datasets) => {
				polled.push([...datasets]);
				return s.counters.source(datasets);
			},
			1000,
			REDIS_LAG,
			REDIS_TTL,
			8,
			() => clock,
		);
		const c = ctx();
		watch.refFor("a", ck, clock);
		watch.refFor("b", ck, clock);
		watch.poll(clock, c);
		await c.settle();
		expect(polled.at(-1)).toEqual(["a", "b"]);
		// Only "a" is read from here on, for ten minutes.
		for (let i = 0; i < 600; i++) {
			clock += 1000;
			watch.refFor("a", ck, clock);
			watch.poll(clock, c);
			await c.settle();
		}
		expect(polled.at(-1)).toEqual(["a"]);
	});

	it("spreads keys over the buckets", () => {
		const seen = new Set<number>();
		for (let i = 0; i < 20_000; i++) seen.add(changeBucket(recordCacheKey("ds", `user:${i}`)));
		expect(seen.size).toBe(CHANGE_BUCKETS);
	});
});
