/**
 * What a write costs D1 must not grow with the key's history, nor with the number of facts that
 * land in the same tile. Measured as the rows D1 says each statement read (`meta.rows_read`, what
 * D1 bills), not by timing.
 */
import { describe, expect, it } from "vitest";
import { MINUTE } from "../../src/aggregates/windows";
import { applyEvents } from "../../src/ingest/apply";
import type { ChangeEvent } from "../../src/ingest/merge";
import type { DatasetSpec } from "../../src/registry/spec";
import { env, rowsReadOf, uniqueName } from "./helpers";

const T0 = 1_700_000_040_000; // 40 s into a minute

function factsSpec(name: string): DatasetSpec {
	return {
		name,
		key: "id",
		fields: { price: { type: "float" }, cat: { type: "string" } },
		ttl_seconds: 3600,
		history_days: 7,
		aggregates: {
			clicks: { fn: "count", window: "1h", since: 0 },
			spend: { fn: "sum", of: "price", window: "1h", since: 0 },
			low: { fn: "min", of: "price", window: "1h", since: 0 },
			high: { fn: "max", of: "price", window: "1h", since: 0 },
			cats: { fn: "distinct", of: "cat", window: "1h", since: 0 },
		},
	};
}

const fact = (dataset: string, key: string, i: number, time = T0 + (i % 10)): ChangeEvent => ({
	id: `f-${i}`,
	dataset,
	key,
	op: "patch",
	time,
	value: { price: (i % 13) + 0.25, cat: `c${i % 4}` },
});

/** The key's tiles of one resolution as D1 holds them, by aggregate name. */
async function tiles(dataset: string, key: string, res: number) {
	const { results } = await env.DB.prepare("SELECT agg, cnt, sum, mn, mx FROM agg_tiles WHERE dataset = ?1 AND key = ?2 AND res = ?3 ORDER BY agg")
		.bind(dataset, key, res)
		.all<{ agg: string; cnt: number; sum: number; mn: number | null; mx: number | null }>();
	return Object.fromEntries(results.map((r) => [r.agg.split(":")[0], { cnt: r.cnt, sum: r.sum, mn: r.mn, mx: r.mx }]));
}

/** What facts 0..n-1 (as `fact` makes them) must sum to in one tile. */
function expected(ids: number[]) {
	const prices = ids.map((i) => (i % 13) + 0.25);
	const sum = prices.reduce((a, b) => a + b, 0);
	return {
		clicks: { cnt: ids.length, sum: 0, mn: null, mx: null },
		spend: { cnt: ids.length, sum, mn: Math.min(...prices), mx: Math.max(...prices) },
		low: { cnt: ids.length, sum, mn: Math.min(...prices), mx: Math.max(...prices) },
		high: { cnt: ids.length, sum, mn: Math.min(...prices), mx: Math.max(...prices) },
	};
}

describe("the cost of a write", () => {
	it("to a key with a long history reads rows in proportion to the batch, not to the key's log", async () => {
		const dataset = uniqueName("wc");
		const key = "k";
		const history = 3000;
		// The key's history: one upsert then patches, applied as the consumer would.
		const past: ChangeEvent[] = Array.from({ length: history }, (_, i) => ({
			id: `old-${i}`,
			dataset,
			key,
			op: i === 0 ? "upsert" : "patch",
			time: 1_700_000_000_000 + i,
			value: { n: i },
		}));
		for (let i = 0; i < past.length; i += 1000) await applyEvents(env.DB, past.slice(i, i + 1000));
		const logged = await env.DB.prepare("SELECT count(*) AS n FROM event_log WHERE dataset = ?1 AND key = ?2").bind(dataset, key).first<{ n: number }>();
		expect(logged?.n).toBe(history);

		const fresh: ChangeEvent[] = Array.from({ length: 50 }, (_, i) => ({
			id: `new-${i}`,
			dataset,
			key,
			op: "patch",
			time: 1_700_000_100_000 + i,
			value: { n: history + i },
		}));
		const counted = rowsReadOf(env.DB, (sql) => sql.startsWith("INSERT INTO records"));
		const { applied, refused } = await applyEvents(counted.db, fresh);
		expect(refused).toEqual([]);
		expect(applied).toHaveLength(1);
		expect(applied[0]?.rec.v).toEqual({ n: history + 49 });
		// The record write seeks each of its 50 ids in the log; walking the key's log for each id read 153,105 rows.
		expect(counted.rowsRead()).toBeGreaterThan(0);
		expect(counted.rowsRead()).toBeLessThan(history / 3);
	});

	it("of many facts into one tile adds one row per tile, read in one record seek each, not one log seek per fact and tile", async () => {
		const dataset = uniqueName("wt");
		const spec = factsSpec(dataset);
		const facts = Array.from({ length: 500 }, (_, i) => fact(dataset, "hot", i));
		const counted = rowsReadOf(env.DB, (sql) => sql.startsWith("INSERT INTO agg_tiles") || sql.startsWith("INSERT INTO agg_hll"));
		const { applied, refused } = await applyEvents(counted.db, facts, () => spec);
		expect(refused).toEqual([]);
		expect(applied[0]?.changed).toBe(true);
		// 4 aggregates x 2 resolutions of tiles and at most 2 x 4 registers, each read with one seek
		// of the key's record; one log seek per fact and tile read 500 x 10.
		expect(counted.rowsRead()).toBeGreaterThan(0);
		expect(counted.rowsRead()).toBeLessThanOrEqual(50);
		expect(await tiles(dataset, "hot", MINUTE)).toEqual(expected(facts.map((_, i) => i)));
	});

	it("counts each fact once when a batch brings facts already applied and new ones together", async () => {
		const dataset = uniqueName("wr");
		const spec = factsSpec(dataset);
		const all = Array.from({ length: 40 }, (_, i) => fact(dataset, "k", i));
		await applyEvents(env.DB, all.slice(0, 25), () => spec);
		// Redelivered: 15 applied ones again, with the 15 never seen; then the same whole batch twice at once.
		const { refused } = await applyEvents(env.DB, all.slice(10), () => spec);
		expect(refused).toEqual([]);
		await Promise.all([applyEvents(env.DB, all, () => spec), applyEvents(env.DB, [...all].reverse(), () => spec)]);
		expect(await tiles(dataset, "k", MINUTE)).toEqual(expected(all.map((_, i) => i)));
		const regs = await env.DB.prepare("SELECT count(*) AS n, max(rank) AS top FROM agg_hll WHERE dataset = ?1 AND key = 'k' AND res = ?2")
			.bind(dataset, MINUTE)
			.first<{ n: number }>();
		// 4 distinct categories: at most 4 registers, whatever the redeliveries.
		expect(regs?.n).toBeGreaterThan(0);
		expect(regs?.n).toBeLessThanOrEqual(4);
	});
});
