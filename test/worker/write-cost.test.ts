/**
 * What a write costs D1 must not grow with the key's history. The consumer's write checks that
 * none of its events' ids is in the key's log; that check must seek each id in the log's
 * (dataset, key, event_id) index, not walk every entry the key ever logged once per id.
 */
import { describe, expect, it } from "vitest";
import { applyEvents } from "../../src/ingest/apply";
import type { ChangeEvent } from "../../src/ingest/merge";
import { env, uniqueName } from "./helpers";

/** D1 whose batches report how many rows each one read (D1's own `meta.rows_read`). */
function rowsReadPerBatch(db: D1Database): { db: D1Database; batches: number[] } {
	const out = { db, batches: [] as number[] };
	out.db = new Proxy(db, {
		get(target, prop) {
			const v = Reflect.get(target, prop);
			if (prop === "batch") {
				return async (stmts: D1PreparedStatement[]) => {
					const results = await target.batch(stmts);
					out.batches.push(results.reduce((n, r) => n + (r.meta.rows_read ?? 0), 0));
					return results;
				};
			}
			return typeof v === "function" ? v.bind(target) : v;
		},
	});
	return out;
}

describe("the cost of a write to a key with a long history", () => {
	it("reads rows in proportion to the batch, not to the key's log", async () => {
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
		const counted = rowsReadPerBatch(env.DB);
		const { applied, refused } = await applyEvents(counted.db, fresh);
		expect(refused).toEqual([]);
		expect(applied).toHaveLength(1);
		expect(applied[0]?.rec.v).toEqual({ n: history + 49 });
		// The write batch: the record, 50 log rows, and one index seek per id. Walking the key's log
		// for each id would read 3,000 rows or more.
		const write = counted.batches[counted.batches.length - 1] ?? Number.POSITIVE_INFINITY;
		expect(counted.batches.length).toBeGreaterThanOrEqual(2);
		expect(write).toBeLessThan(history / 3);
	});
});
