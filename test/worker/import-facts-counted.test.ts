/**
 * In a dataset with aggregates every imported row is a fact: it counts in the record's aggregates
 * whether or not it changes a field. The import answered `unchanged` for a fact older than the
 * record's fields (or one a newer row in the same request overrode), though its count showed in
 * the record: `hotpath load` of a day of clicks reported most of them unchanged. A fact counts as
 * `imported` when it was newly counted, and as `unchanged` only when it was already (same id).
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson } from "./helpers";

interface ImportAnswer {
	imported: number;
	unchanged: number;
	rejected: unknown[];
}

const MINUTE = 60_000;
const spec = {
	key: "user_id",
	fields: { item: "string" },
	history_days: 7,
	aggregates: { clicks_1h: { fn: "count", window: "1h" }, items_1h: { fn: "distinct", of: "item", window: "1h" } },
};

const importRows = async (ds: string, rows: unknown[]) => expectJson<ImportAnswer>(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);
const clicks = async (ds: string, key: string) =>
	(await expectJson<{ value: { clicks_1h: number } }>(await call("GET", `/v1/datasets/${ds}/records/${key}`), 200)).value.clicks_1h;

describe("import into a dataset with aggregates", () => {
	it("counts every new fact as imported, in one request and across requests, and a fact sent again as unchanged", async () => {
		const ds = await createDataset(spec as never);
		const now = Date.now();
		// Newest first: the older rows change no field (the newest item wins), but each is a click.
		const rows = [5, 4, 3, 2, 1].map((m) => ({ user_id: "u", item: `i${m}`, _event_time: now - m * MINUTE }));
		expect(await importRows(ds, rows)).toEqual({ imported: 5, unchanged: 0, rejected: [] });
		expect(await clicks(ds, "u")).toBe(5);

		// An older fact in a request of its own: no field changes, the count does.
		expect(await importRows(ds, [{ user_id: "u", item: "old", _event_time: now - 30 * MINUTE }])).toEqual({ imported: 1, unchanged: 0, rejected: [] });
		expect(await clicks(ds, "u")).toBe(6);

		// The same rows again (the same content and time, so the same ids): counted once, so unchanged.
		expect(await importRows(ds, [...rows, { user_id: "u", item: "old", _event_time: now - 30 * MINUTE }])).toEqual({
			imported: 0,
			unchanged: 6,
			rejected: [],
		});
		expect(await clicks(ds, "u")).toBe(6);

		// A count-only fact (just the key) is a click too.
		expect(await importRows(ds, [{ user_id: "u", _event_time: now - 40 * MINUTE, _op: "patch", item: "x" }, { user_id: "v" }])).toEqual({
			imported: 2,
			unchanged: 0,
			rejected: [],
		});
		expect(await clicks(ds, "u")).toBe(7);
		expect(await clicks(ds, "v")).toBe(1);
	});

	it("a dataset without aggregates still counts a row overridden by a newer one as unchanged", async () => {
		const ds = await createDataset({ key: "user_id", fields: { item: "string" } });
		const now = Date.now();
		expect(
			await importRows(ds, [
				{ user_id: "u", item: "new", _event_time: now - MINUTE },
				{ user_id: "u", item: "old", _event_time: now - 2 * MINUTE },
			]),
		).toEqual({ imported: 1, unchanged: 1, rejected: [] });
	});
});
