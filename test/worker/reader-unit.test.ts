/** The read path's policies (fallback, stale-while-revalidate, lag skipping), with in-memory tiers standing in for storage. */
import { describe, expect, it } from "vitest";
import { TierStats } from "../../src/observability/stats";
import { ServerTiming } from "../../src/observability/timing";
import type { DatasetSpec } from "../../src/registry/spec";
import { L0Cache } from "../../src/serving/l0";
import { lookupRecords } from "../../src/serving/lookup";
import { type LookupRef, TieredReader } from "../../src/serving/reader";
import type { Found, RecordRef, Tier } from "../../src/serving/tier";
import { type CachedRecord, recordCacheKey } from "../../src/storage/cached-record";

class MapTier implements Tier {
	calls = 0;
	failing = false;
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
		if (this.failing) throw new Error(`${this.name} is down`);
		return new Map(refs.filter((r) => this.data.has(r.ck)).map((r) => [r.ck, this.data.get(r.ck) as CachedRecord]));
	}
	async fill(entries: { ref: RecordRef; rec: CachedRecord }[]) {
		for (const e of entries) this.data.set(e.ref.ck, e.rec);
	}
}

const spec: DatasetSpec = { name: "ds", key: "id", fields: { x: "int" as never }, ttl_seconds: 3600 };
const ck = recordCacheKey("ds", "k");
const ref = (maxLagMs = Number.POSITIVE_INFINITY, fallbackMaxAgeMs?: number): LookupRef => ({
	dataset: "ds",
	key: "k",
	ck,
	maxLagMs,
	fallbackMaxAgeMs,
	ttlSeconds: 3600,
});
function ctx() {
	const pending: Promise<unknown>[] = [];
	return { timing: new ServerTiming(), waitUntil: (p: Promise<unknown>) => void pending.push(p), settle: () => Promise.all(pending) };
}
const setup = (l0 = new L0Cache(10, 50, 5000, 20)) => {
	const kv = new MapTier("kv", 60_000);
	const d1 = new MapTier("d1", 0);
	return { l0, kv, d1, reader: new TieredReader(l0, [kv, d1], new TierStats(), { redis: 100, kv: 100, d1: 100 }) };
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
		l0.set(ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 }, Date.now() - 1000);
		d1.data.set(ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		const c = ctx();
		expect((await reader.lookup([ref()], c)).get(ck)).toMatchObject({ tier: "l0", rec: { r: 1 } });
		await c.settle();
		expect(d1.calls).toBe(1);
		expect((await reader.lookup([ref()], ctx())).get(ck)).toMatchObject({ tier: "l0", rec: { r: 2 } });
	});

	it("serves a last-resort copy, marked stale, only within max_staleness when every tier fails", async () => {
		const { l0, kv, d1, reader } = setup(new L0Cache(10, 10, 10, 10));
		const t = Date.now() - 30_000;
		l0.set(ck, { v: { x: 1 }, t, i: "a", r: 1 }, Date.now() - 60_000);
		kv.failing = true;
		d1.failing = true;
		// No max_staleness: nothing may be served, so the lookup is a 503.
		await expect(lookupRecords(reader, [{ spec, keys: ["k"] }], { ifStale: "serve" }, ctx())).rejects.toMatchObject({ code: "unavailable" });
		// max_staleness below the copy's age: still refused.
		await expect(lookupRecords(reader, [{ spec, keys: ["k"] }], { ifStale: "serve", maxStalenessS: 10 }, ctx())).rejects.toMatchObject({ code: "unavailable" });
		// Within max_staleness: served and reported stale.
		const ok = await lookupRecords(reader, [{ spec, keys: ["k"] }], { ifStale: "serve", maxStalenessS: 120 }, ctx());
		expect(ok.results[0]?.records[0]).toMatchObject({ key: "k", status: "stale", value: { x: 1 } });
	});

	it("answers a batch with one call per tier", async () => {
		const { kv, d1, reader } = setup();
		const refs = Array.from({ length: 50 }, (_, i) => ({ ...ref(), key: `k${i}`, ck: recordCacheKey("ds", `k${i}`) }));
		for (const r of refs.slice(0, 25)) kv.data.set(r.ck, { v: { x: 1 }, t: Date.now(), i: "a", r: 1 });
		for (const r of refs) d1.data.set(r.ck, { v: { x: 2 }, t: Date.now(), i: "b", r: 2 });
		const out = await reader.lookup(refs, ctx());
		expect(out.size).toBe(50);
		expect([kv.calls, d1.calls]).toEqual([1, 1]);
		expect([...out.values()].filter((r) => r.tier === "kv").length).toBe(25);
	});
});
