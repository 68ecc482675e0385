/**
 * History, point-in-time reads and aggregates, probed as a hostile newcomer would (rev-time): each
 * case here failed before its fix.
 */
import { describe, expect, it } from "vitest";
import { HOUR } from "../../src/aggregates/windows";
import { call, createDataset, expectJson } from "./helpers";

const importRows = async (ds: string, rows: unknown[]) => expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);

describe("a lookup of an aggregate dataset", () => {
	it("times the aggregates' D1 read in Server-Timing, as the record route and GraphQL do, current or as_of", async () => {
		const ds = await createDataset({
			key: "id",
			fields: { p: "float" },
			ttl_seconds: 86_400,
			history_days: 7,
			aggregates: { c: { fn: "count", window: "24h" } },
		} as never);
		const t = Date.now() - HOUR;
		await importRows(ds, [{ id: "k", p: 1, _event_time: t, _id: "f1" }]);
		for (const body of [{ requests: [{ dataset: ds, keys: ["k"] }] }, { requests: [{ dataset: ds, keys: ["k"] }], as_of: t }]) {
			const res = await call("POST", "/v1/lookup", { json: body });
			const got = await expectJson<{ results: { records: { value: Record<string, unknown> }[] }[] }>(res, 200);
			expect(got.results[0]?.records[0]?.value.c).toBe(1);
			expect(res.headers.get("server-timing")).toMatch(/(^|, )aggregates;dur=/);
		}
		// The record route says so too (the reference).
		const one = await call("GET", `/v1/datasets/${ds}/records/k`);
		expect(one.headers.get("server-timing")).toMatch(/(^|, )aggregates;dur=/);
	});
});
