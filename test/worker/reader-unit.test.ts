/** The read path's policies (fallback, stale-while-revalidate, lag skipping), with in-memory tiers standing in for storage. */
import { describe, expect, it } from "vitest";
import { ServerTiming } from "../../src/observability/timing";
import type { DatasetSpec } from "../../src/registry/spec";
import { L0Cache } from "../../src/serving/l0";
import { lookupRecords } from "../../src/serving/lookup";
import { type LookupRef, TieredReader } from "../../src/serving/reader";
import { TierStats } from "../../src/serving/stats";
import type { Found, RecordRef, Tier } from "../../src/serving/tier";
import { type CachedRecord, recordCacheKey } from "../../src/storage/cached-record";

class MapTier implements Tier {
	calls = 0;
	failing = false;
	/** How long each call takes, in ms. */
	delayMs = 0;
	readonly data = new Map<string, CachedRecord>();
	constructor(
		readonly name: "redis" | "kv" | "d1",
		readonly maxLagMs: number,
	) {}
	available() {
		return true;
	}
	async getMany(refs: RecordRef[]): Promise<Found> {
		this.calls++;
		if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
		if (this.failing) throw new Error(`${this.name} is down`);
		return new Map(refs.filter((r) => this.data.has(r.ck)).map((r) => [r.ck, this.data.get(r.ck) as CachedRecord]));
	}
	fills = 0;
	async fill(entries: { ref: RecordRef; rec: CachedRecord }[]) {
		this.fills += entries.length;
		for (const e of entries) this.data.set(e.ref.ck, e.rec);
	}
}

const spec: DatasetSpec = { name: "ds", key: "id", fields: { x: { type: "int" } }, ttl_seconds: 3600, history_days: 7 };
const ck = recordCacheKey("ds", "k");
const ref = (maxLagMs = Number.POSITIVE_INFINITY, fallbackMaxLagMs?: number): LookupRef => ({
	dataset: "ds",
	key: "k",
	ck,
	maxLagMs,
	fallbackMaxLagMs,
	ttlSeconds: 3600,
});
function ctx() {
	const pending: Promise<unknown>[] = [];
	return { timing: new ServerTiming(), waitUntil: (p: Promise<unknown>) => void pending.push(p), settle: () => Promise.all(pending) };
}
const setup = (l0 = new L0Cache(10, 50, 5000, 20)) => {
	const redis = new MapTier("redis", 1000);
	const kv = new MapTier("kv", 60_000);
	const d1 = new MapTier("d1", 0);
	return { l0, redis, kv, d1, reader: new TieredReader(l0, [redis, kv, d1], new TierStats(), { redis: 100, kv: 100, d1: 100 }) };
};

describe("TieredReader", () => {
	it("skips a tier whose worst-case lag is above what the read tolerates", async () => {
		const { kv, d1, reader } = setup();
		kv.data.set(ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 });
		d1.data.set(ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		expect((await reader.lookup([ref(10_000)], ctx())).get(ck)).toMatchObject({ tier: "d1", rec: { r: 2 } });
		expect(kv.calls).toBe(0);
	});

	it("serves an L0 copy past its fresh time and refreshes it in the background", async () => {
		const { l0, d1, reader } = setup();
		l0.set(ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 }, Date.now() - 1000, Date.now() - 1000);
		d1.data.set(ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		const c = ctx();
		expect((await reader.lookup([ref()], c)).get(ck)).toMatchObject({ tier: "l0", rec: { r: 1 } });
		await c.settle();
		expect(d1.calls).toBe(1);
		expect((await reader.lookup([ref()], ctx())).get(ck)).toMatchObject({ tier: "l0", rec: { r: 2 } });
	});

	it("the background refresh does not add its tiers to the request's Server-Timing", async () => {
		// A batch that both revalidates and loads named each tier twice (the refresh's call landed in
		// the same header, with the time the refresh took), where one entry per tier touched is meant.
		const { l0, d1, reader } = setup();
		l0.set(ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 }, Date.now() - 1000, Date.now() - 1000);
		d1.data.set(ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		const c = ctx();
		await reader.lookup([ref()], c);
		await c.settle();
		expect(d1.calls).toBe(1);
		expect(c.timing.header).toMatch(/^l0;dur=[\d.]+$/);
	});

	it("serves a last-resort copy, marked stale, only within max_staleness when every tier fails", async () => {
		const { l0, kv, d1, reader } = setup(new L0Cache(10, 10, 10, 10));
		const t = Date.now() - 300_000;
		// Its value is old (5 min), but the copy matched D1 30 s ago: that lag is what max_staleness bounds.
		l0.set(ck, { v: { x: 1 }, t, i: "a", r: 1 }, Date.now() - 60_000, Date.now() - 30_000);
		kv.failing = true;
		d1.failing = true;
		// No max_staleness: nothing may be served, so the lookup is a 503.
		await expect(lookupRecords(reader, [{ spec, keys: ["k"] }], { ifStale: "serve" }, ctx())).rejects.toMatchObject({ code: "unavailable" });
		// max_staleness below the copy's lag: still refused.
		await expect(lookupRecords(reader, [{ spec, keys: ["k"] }], { ifStale: "serve", maxStalenessS: 10 }, ctx())).rejects.toMatchObject({ code: "unavailable" });
		// Within max_staleness: served and reported stale.
		const ok = await lookupRecords(reader, [{ spec, keys: ["k"] }], { ifStale: "serve", maxStalenessS: 120 }, ctx());
		expect(ok.results[0]?.records[0]).toMatchObject({ key: "k", status: "stale", value: { x: 1 } });
	});

	it("provenance: an answer from KV fills L0 with KV's lag, so a later read with a tight max_staleness skips it and goes to D1", async () => {
		const { kv, d1, reader } = setup();
		kv.data.set(ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 });
		d1.data.set(ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		expect((await reader.lookup([ref(120_000)], ctx())).get(ck)).toMatchObject({ tier: "kv", rec: { r: 1 } });
		// The copy L0 now holds came from KV a moment ago: it may lag D1 by 60 s, so max_staleness=2 must not get it.
		const tight = await reader.lookup([ref(2000)], ctx());
		expect(tight.get(ck)).toMatchObject({ tier: "d1", rec: { r: 2 } });
		expect(Date.now() - (tight.get(ck)?.syncedAt ?? 0)).toBeLessThan(1000);
	});

	it("provenance: Redis is never filled from a KV answer (KV lags more than Redis may); KV and Redis are filled from D1", async () => {
		const { redis, kv, d1, reader } = setup();
		kv.data.set(ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 });
		const c = ctx();
		await reader.lookup([ref(120_000)], c);
		await c.settle();
		expect(redis.fills).toBe(0);
		const other = recordCacheKey("ds", "other");
		d1.data.set(other, { v: { x: 3 }, t: Date.now(), i: "c", r: 3 });
		const c2 = ctx();
		await reader.lookup([{ ...ref(120_000), key: "other", ck: other }], c2);
		await c2.settle();
		expect(redis.data.get(other)?.r).toBe(3);
		expect(kv.data.get(other)?.r).toBe(3);
	});

	it("a tier slower than its timeout is skipped: the next tier answers within the timeout, and the error is counted", async () => {
		const stats = new TierStats();
		const redis = new MapTier("redis", 1000);
		const d1 = new MapTier("d1", 0);
		redis.delayMs = 2000;
		redis.data.set(ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 });
		d1.data.set(ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		const reader = new TieredReader(new L0Cache(10, 50, 5000, 20), [redis, d1], stats, { redis: 100, kv: 100, d1: 100 });
		const start = Date.now();
		expect((await reader.lookup([ref()], ctx())).get(ck)).toMatchObject({ tier: "d1", rec: { r: 2 } });
		expect(Date.now() - start).toBeLessThan(1000);
		expect(stats.tiers.redis.errors).toBe(1);
	});

	it("answers a batch with one call per tier", async () => {
		const { redis, kv, d1, reader } = setup();
		const refs = Array.from({ length: 50 }, (_, i) => ({ ...ref(), key: `k${i}`, ck: recordCacheKey("ds", `k${i}`) }));
		for (const r of refs.slice(0, 25)) kv.data.set(r.ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 });
		for (const r of refs) d1.data.set(r.ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		const out = await reader.lookup(refs, ctx());
		expect(out.size).toBe(50);
		expect([redis.calls, kv.calls, d1.calls]).toEqual([1, 1, 1]);
		expect([...out.values()].filter((r) => r.tier === "kv").length).toBe(25);
	});
});
