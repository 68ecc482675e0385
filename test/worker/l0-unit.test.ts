import { describe, expect, it } from "vitest";
import { L0Cache } from "../../src/serving/l0";
import { LruCache } from "../../src/serving/lru";

const rec = (r: number, t = 1000) => ({ v: { x: r }, t, i: `e${r}`, r });

describe("LruCache", () => {
	it("evicts the least recently used entry past its bound", () => {
		const lru = new LruCache<number>(2);
		lru.set("a", 1);
		lru.set("b", 2);
		expect(lru.get("a")).toBe(1); // a is now the youngest
		lru.set("c", 3);
		expect(lru.peek("b")).toBeUndefined();
		expect(lru.peek("a")).toBe(1);
		expect(lru.size).toBe(2);
	});

	it("keeps a key read now and then while many new keys stream through, and evicts keys nobody reads", () => {
		const lru = new LruCache<number>(100);
		lru.set("hot", 0);
		lru.set("cold", 0);
		for (let i = 0; i < 10_000; i++) {
			lru.set(`k${i}`, i);
			if (i % 50 === 0) expect(lru.get("hot")).toBe(0);
		}
		expect(lru.peek("hot")).toBe(0);
		expect(lru.peek("cold")).toBeUndefined();
		expect(lru.size).toBe(100);
	});

	it("a hit among the youngest quarter is not moved; an older hit is", () => {
		const lru = new LruCache<string>(8);
		for (const k of "abcdefgh") lru.set(k, k);
		lru.get("h"); // youngest: stays where it is
		lru.get("a"); // oldest: moves to the young end
		lru.set("i", "i");
		expect(lru.peek("a")).toBe("a");
		expect(lru.peek("b")).toBeUndefined();
	});
});

describe("L0Cache", () => {
	const l0 = () => new L0Cache(100, 5000, 15_000, 2000);

	it("serves fresh, then stale-while-revalidate, then nothing (L0's own windows count from when it took the copy)", () => {
		const c = l0();
		c.set("k", rec(1), 0, 0);
		expect(c.get("k", Number.POSITIVE_INFINITY, 4000)?.state).toBe("fresh");
		expect(c.get("k", Number.POSITIVE_INFINITY, 6000)?.state).toBe("revalidate");
		expect(c.get("k", Number.POSITIVE_INFINITY, 16_000)).toBeUndefined();
		expect(c.lastResort("k")).toEqual({ rec: rec(1), syncedAt: 0 });
	});

	it("skips entries whose lag behind D1 is above the read's tolerance", () => {
		const c = l0();
		c.set("k", rec(1), 0, 0);
		expect(c.get("k", 1000, 2000)).toBeUndefined();
		expect(c.get("k", 3000, 2000)?.rec.r).toBe(1);
	});

	it("provenance: a copy taken from KV carries KV's lag; a tight max_staleness does not get it however recently L0 took it", () => {
		const c = l0();
		const now = 100_000;
		// Taken from KV just now: KV may lag D1 by 60 s, so the copy is known to match D1 only as of now - 60 s.
		c.set("k", rec(1), now, now - 60_000);
		expect(c.get("k", 2000, now)).toBeUndefined();
		expect(c.get("k", 59_000, now + 1000)).toBeUndefined();
		// A read that tolerates KV's lag (plus the time since) gets it, and learns its provenance.
		expect(c.get("k", 61_000, now + 1000)).toMatchObject({ rec: { r: 1 }, syncedAt: now - 60_000, state: "fresh" });
	});

	it("provenance: re-taking the same revision keeps the later sync time, and never moves it back", () => {
		const c = l0();
		c.set("k", rec(1), 0, 1000); // from D1 at t=1000
		c.set("k", rec(1), 5000, 5000 - 60_000); // revalidated from KV: same revision, older provenance
		expect(c.get("k", Number.POSITIVE_INFINITY, 6000)?.syncedAt).toBe(1000);
		c.set("k", rec(1), 7000, 7000); // revalidated from D1
		expect(c.get("k", Number.POSITIVE_INFINITY, 7500)?.syncedAt).toBe(7000);
		// A newer revision brings its own provenance.
		c.set("k", rec(2), 8000, 8000 - 60_000);
		expect(c.get("k", Number.POSITIVE_INFINITY, 8000)).toMatchObject({ rec: { r: 2 }, syncedAt: 8000 - 60_000 });
	});

	it("re-taking the same revision keeps the copy L0 holds (no new garbage per revalidation) and restarts L0's windows", () => {
		const c = l0();
		const held = rec(1);
		c.set("k", held, 0, 0);
		c.set("k", rec(1), 6000, 6000); // a revalidation brought a fresh decode of the same revision
		const hit = c.get("k", Number.POSITIVE_INFINITY, 10_000);
		expect(hit?.rec).toBe(held);
		expect(hit).toMatchObject({ state: "fresh", syncedAt: 6000 });
		expect(c.refreshHeld("k", rec(1), 12_000, 12_000)).toBe(true);
		expect(c.get("k", 1, 12_000)).toMatchObject({ syncedAt: 12_000 });
		expect(c.get("k", 1, 12_000)?.rec).toBe(held);
		c.set("k", rec(2), 13_000, 13_000);
		expect(c.get("k", Number.POSITIVE_INFINITY, 13_000)?.rec).not.toBe(held);
	});

	it("a lag tolerance of 0 (max_staleness=0) is met by no copy, not even one synced this millisecond", () => {
		const c = l0();
		c.set("k", rec(1), 1000, 1000);
		expect(c.get("k", 0, 1000)).toBeUndefined();
		expect(c.get("k", 1, 1000)?.rec.r).toBe(1);
	});

	it("never replaces a newer revision with an older one", () => {
		const c = l0();
		c.set("k", rec(5), 0, 0);
		c.set("k", rec(4), 10, 10);
		expect(c.get("k", Number.POSITIVE_INFINITY, 20)?.rec.r).toBe(5);
	});

	it("keeps negative entries only briefly, and a write replaces them", () => {
		const c = l0();
		c.set("k", { v: null, t: 0, i: "", r: 0 }, 0, 0);
		expect(c.get("k", Number.POSITIVE_INFINITY, 1000)?.rec.r).toBe(0);
		expect(c.get("k", Number.POSITIVE_INFINITY, 3000)).toBeUndefined();
		c.set("k", { v: null, t: 0, i: "", r: 0 }, 0, 0);
		c.set("k", rec(1), 500, 500);
		expect(c.get("k", Number.POSITIVE_INFINITY, 1000)?.rec.r).toBe(1);
	});

	it("refreshHeld replaces only copies L0 holds, and marks them synced when D1 was known to hold them", () => {
		const c = l0();
		expect(c.refreshHeld("cold", rec(3), 1000, 1000)).toBe(false);
		expect(c.get("cold", Number.POSITIVE_INFINITY, 1000)).toBeUndefined();
		c.set("held", rec(1), 0, -60_000);
		expect(c.refreshHeld("held", rec(2), 1000, 1000)).toBe(true);
		expect(c.get("held", 1, 1000)).toMatchObject({ rec: { r: 2 }, syncedAt: 1000 });
		// Never backwards.
		expect(c.refreshHeld("held", rec(1), 2000, 2000)).toBe(false);
		expect(c.get("held", Number.POSITIVE_INFINITY, 2000)?.rec.r).toBe(2);
		// The same revision, read (not written) at 1500 but refreshed at 3000: its lag counts from 1500, and never moves back.
		expect(c.refreshHeld("held", rec(2), 1500, 3000)).toBe(true);
		expect(c.get("held", Number.POSITIVE_INFINITY, 3000)).toMatchObject({ syncedAt: 1500 });
		expect(c.get("held", 1499, 3000)).toBeUndefined();
		expect(c.refreshHeld("held", rec(2), 1200, 3500)).toBe(true);
		expect(c.get("held", Number.POSITIVE_INFINITY, 3500)).toMatchObject({ syncedAt: 1500 });
	});

	it("is bounded by max entries", () => {
		const c = new L0Cache(3, 5000, 15_000, 2000);
		for (let i = 0; i < 10; i++) c.set(`k${i}`, rec(1), 0, 0);
		expect(c.size).toBe(3);
	});
});
