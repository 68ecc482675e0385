/**
 * A key's history reads that key's log entries, whatever statistics D1 keeps: with ANALYZE run over
 * a log of few keys per dataset, the planner chose to scan the whole log for one key's history.
 */
import { describe, expect, it } from "vitest";
import { applyEvents } from "../../src/ingest/apply";
import type { ChangeEvent } from "../../src/ingest/merge";
import { historyKey, historyOfKeys } from "../../src/storage/event-log";
import { env, rowsReadOf, uniqueName } from "./helpers";

const events = (dataset: string, key: string, n: number): ChangeEvent[] =>
	Array.from({ length: n }, (_, i) => ({ id: `${key}-${i}`, dataset, key, op: i ? "patch" : "upsert", time: 1_700_000_000_000 + i, value: { n: i } }));

describe("the history of a key", () => {
	it("reads that key's entries, not the whole log, after ANALYZE of a log of few keys", async () => {
		const dataset = uniqueName("hc");
		for (let i = 0; i < 4000; i += 1000) await applyEvents(env.DB, events(dataset, "big", 4000).slice(i, i + 1000));
		await applyEvents(env.DB, events(dataset, "small", 100));
		await env.DB.prepare("ANALYZE").run();
		const counted = rowsReadOf(env.DB, (sql) => sql.includes("event_log AS l"));
		const h = (await historyOfKeys(counted.db, [{ dataset, key: "small" }], Number.MAX_SAFE_INTEGER)).get(historyKey(dataset, "small"));
		expect(h?.entries.map((e) => e.id)).toEqual(Array.from({ length: 100 }, (_, i) => `small-${i}`));
		expect(counted.rowsRead()).toBeGreaterThanOrEqual(100);
		expect(counted.rowsRead()).toBeLessThan(1000);
	});
});
