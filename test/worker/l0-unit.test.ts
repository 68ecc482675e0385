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

	it("serves fresh, then stale-while-revalidate, then nothing", () => {
		const c = l0();
		c.set("k", rec(1), 0);
		expect(c.get("k", Number.POSITIVE_INFINITY, 4000)?.state).toBe("fresh");
		expect(c.get("k", Number.POSITIVE_INFINITY, 6000)?.state).toBe("revalidate");
		expect(c.get("k", Number.POSITIVE_INFINITY, 16_000)).toBeUndefined();
		expect(c.lastResort("k")).toEqual(rec(1));
	});

	it("skips entries older than the read's lag tolerance", () => {
		const c = l0();
		c.set("k", rec(1), 0);
		expect(c.get("k", 1000, 2000)).toBeUndefined();
		expect(c.get("k", 3000, 2000)?.rec.r).toBe(1);
	});

	it("a lag tolerance of 0 (max_staleness=0) is met by no copy, not even one stored this millisecond", () => {
		const c = l0();
		c.set("k", rec(1), 1000);
		expect(c.get("k", 0, 1000)).toBeUndefined();
		expect(c.get("k", 1, 1000)?.rec.r).toBe(1);
	});

	it("never replaces a newer revision with an older one", () => {
		const c = l0();
		c.set("k", rec(5), 0);
		c.set("k", rec(4), 10);
		expect(c.get("k", Number.POSITIVE_INFINITY, 20)?.rec.r).toBe(5);
	});

	it("keeps negative entries only briefly, and a write replaces them", () => {
		const c = l0();
		c.set("k", { v: null, t: 0, i: "", r: 0 }, 0);
		expect(c.get("k", Number.POSITIVE_INFINITY, 1000)?.rec.r).toBe(0);
		expect(c.get("k", Number.POSITIVE_INFINITY, 3000)).toBeUndefined();
		c.set("k", { v: null, t: 0, i: "", r: 0 }, 0);
		c.set("k", rec(1), 500);
		expect(c.get("k", Number.POSITIVE_INFINITY, 1000)?.rec.r).toBe(1);
	});

	it("is bounded by max entries", () => {
		const c = new L0Cache(3, 5000, 15_000, 2000);
		for (let i = 0; i < 10; i++) c.set(`k${i}`, rec(1), 0);
		expect(c.size).toBe(3);
	});
});
