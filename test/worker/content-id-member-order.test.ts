/**
 * An event sent without an id but with an event_time gets an id derived from its content, so
 * sending the same event twice applies it once. The content was hashed as serialised, so the same
 * event resent with its value's members in another order ({"price":1,"item":"x"} after
 * {"item":"x","price":1}; a JSON object is unordered) got a second id: it was applied again, a
 * second version in its history and a second fact in its aggregates. The id is now derived from
 * the members in a fixed order, on POST /v1/events and on the import route alike.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, postEvents, uniqueName, waitForRecord } from "./helpers";

interface History {
	versions: { event_id: string; value: Record<string, unknown> | null }[];
}

const history = async (ds: string, key: string) => expectJson<History>(await call("GET", `/v1/datasets/${ds}/records/${key}/history`), 200);

describe("the same event resent with its members in another order", () => {
	it("applies once: one version, and one fact in its aggregates", async () => {
		const ds = uniqueName();
		const spec = {
			key: "user_id",
			fields: { item: "string", price: "float", meta: "json" },
			aggregates: { clicks: { fn: "count", window: "1h" }, spend: { fn: "sum", of: "price", window: "1h" } },
		};
		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: spec }), 201);
		const event_time = Date.now() - 60_000;
		await postEvents([{ dataset: ds, key: "u1", op: "patch", event_time, value: { item: "x", price: 1, meta: { b: 1, a: [{ d: 1, c: 2 }] } } }]);
		await waitForRecord(ds, "u1", (r) => r.value?.clicks === 1);
		// The resend, its members (nested ones too) in another order, in one body with a marker event:
		// once the marker shows, the resend has been applied, or not.
		await postEvents([
			{ dataset: ds, key: "u1", op: "patch", event_time, value: { meta: { a: [{ c: 2, d: 1 }], b: 1 }, price: 1, item: "x" } },
			{ dataset: ds, key: "marker", op: "patch", event_time, value: { item: "m" } },
		]);
		await waitForRecord(ds, "marker");

		const record = await waitForRecord(ds, "u1");
		expect(record.value).toMatchObject({ clicks: 1, spend: 1 });
		expect((await history(ds, "u1")).versions).toHaveLength(1);
	});

	it("imports once as a row with an _event_time", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int", b: "string" } });
		const _event_time = "2026-01-01T00:00:00Z";
		const first = await expectJson<{ imported: number; unchanged: number }>(
			await call("POST", `/v1/datasets/${ds}/import`, { json: [{ id: "k", a: 1, b: "x", _event_time }] }),
			200,
		);
		expect(first).toMatchObject({ imported: 1, unchanged: 0 });
		const again = await expectJson<{ imported: number; unchanged: number }>(
			await call("POST", `/v1/datasets/${ds}/import`, { json: [{ _event_time, b: "x", a: 1, id: "k" }] }),
			200,
		);
		expect(again).toMatchObject({ imported: 0, unchanged: 1 });
		expect((await history(ds, "k")).versions).toHaveLength(1);
	});
});
