/**
 * A refused event, import row or log record got one problem item at the item (`/3`), whatever was
 * wrong with it, so a client had to parse the detail to learn which field was bad. Each item now
 * points at the place that is wrong: `/3/value/price` for an event's field, `/3/price` for an
 * import row's, `/3/http/status` for a log record's mapped field, and `/3/op`, `/3/dataset`,
 * `/3/event_time`, `/3/id`, `/3/key` (or their row names `_op`, `_event_time`, `_id`, the key
 * field) for the rest. Two bad fields are two items. An item that is wrong as a whole (not an
 * object) keeps `/3`. The answers of a partly accepted body still list their rejects as
 * {index, error}.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem } from "./helpers";

let ds: string;

beforeAll(async () => {
	ds = await createDataset({ key: "user_id", fields: { age: "int", name: "string", tags: "string[]" } });
});

const postEvents = (events: unknown[]) => call("POST", "/v1/events", { json: events });

describe("POST /v1/events points at the wrong place of each event", () => {
	it("each bad field at /N/value/<field>; the rest at their member; a non-object at /N", async () => {
		const now = Date.now();
		const events = [
			{ dataset: ds, key: "a", op: "upsert", value: { age: "old", name: 3 } },
			"not an event",
			{ dataset: "no_such_dataset_zz", key: "a", op: "upsert", value: {} },
			{ dataset: ds, key: "a", op: "replace", value: {} },
			{ dataset: ds, key: "a", op: "upsert", value: { age: 1 }, event_time: "yesterday" },
			{ dataset: ds, key: "a", op: "upsert", value: { age: 1 }, id: "" },
			{ dataset: ds, key: ["a"], op: "upsert", value: { age: 1 } },
			{ dataset: ds, op: "upsert", value: { user_id: true, age: 1 } },
			{ dataset: ds, key: "a", op: "delete", value: { age: 1 } },
			{ dataset: ds, key: "a", op: "patch", value: { tags: "x" }, event_time: now },
			{ dataset: ds, key: "a", op: "upsert", value: { user_id: "b", age: 1 } },
		];
		const p = await expectProblem(await postEvents(events), 400);
		expect(p.errors).toEqual([
			{ pointer: "/0/value/age", detail: expect.stringMatching(/^value\.age: expected an integer/) },
			{ pointer: "/0/value/name", detail: expect.stringMatching(/^value\.name: expected a string/) },
			{ pointer: "/1", detail: "an event must be a JSON object" },
			{ pointer: "/2/dataset", detail: 'dataset "no_such_dataset_zz" does not exist' },
			{ pointer: "/3/op", detail: "op must be one of upsert, patch, delete" },
			{ pointer: "/4/event_time", detail: expect.stringMatching(/^event_time "yesterday" is not a valid RFC 3339 time/) },
			{ pointer: "/5/id", detail: expect.stringMatching(/^id must be a non-empty string/) },
			{ pointer: "/6/key", detail: expect.stringMatching(/^key must be a non-empty string or a safe integer, not an array/) },
			{ pointer: "/7/value/user_id", detail: expect.stringMatching(/^value\.user_id must be a non-empty string or a safe integer/) },
			{ pointer: "/8/value", detail: "a delete takes no value" },
			{ pointer: "/9/value/tags", detail: expect.stringMatching(/^value\.tags: /) },
			// Said once, at the key: a reject's items are joined into one reason by clients.
			{ pointer: "/10/key", detail: 'key "a" disagrees with value.user_id "b"' },
		]);
		expect(p.detail).toMatch(/^none of the 11 event\(s\) is valid: \[0\] value\.age: expected an integer/);
	});

	it("a mixed body is accepted in part; its rejects stay {index, error}, the error naming every bad field", async () => {
		const good = { dataset: ds, key: "a", op: "upsert", value: { age: 1 } };
		const res = await expectJson<{ accepted: number; rejected: unknown[] }>(await postEvents([good, { ...good, value: { age: "x", name: 1 } }]), 202);
		expect(res).toEqual({
			accepted: 1,
			rejected: [{ index: 1, error: expect.stringMatching(/^value\.age: expected an integer.*; value\.name: expected a string/) }],
		});
	});
});

describe("POST import points at the row's own names", () => {
	it("a field at /N/<field>, _op, _event_time and _id at theirs, a missing key field at /N/<key field>", async () => {
		const rows = [
			{ user_id: "r0", age: "old" },
			{ user_id: "r1", age: 1, _op: "replace" },
			{ user_id: "r2", age: 1, _event_time: "yesterday" },
			{ user_id: "r3", age: 1, _id: "" },
			{ age: 1 },
			{ user_id: ["r5"], age: 1 },
		];
		const p = await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 400);
		expect(p.errors).toEqual([
			{ pointer: "/0/age", detail: expect.stringMatching(/^age: expected an integer/) },
			{ pointer: "/1/_op", detail: "_op must be one of upsert, patch, delete" },
			{ pointer: "/2/_event_time", detail: expect.stringMatching(/^_event_time "yesterday" is not a valid RFC 3339 time/) },
			{ pointer: "/3/_id", detail: expect.stringMatching(/^_id must be a non-empty string/) },
			{ pointer: "/4/user_id", detail: 'the row has no "user_id", the dataset\'s key field' },
			{ pointer: "/5/user_id", detail: '"user_id" must be a non-empty string or a safe integer' },
		]);
	});
});

describe("POST ingest points into the log record", () => {
	it("a mapped field at its pointer in the record (escaped as it was written), a bad time at the event_time pointer", async () => {
		const logs = await createDataset({
			key: "user_id",
			fields: { status: "int", path: "string" },
			ingest: { key: "/user/id", event_time: "/meta/ts", fields: { status: "/http/status", path: "/http~1req/path" } },
		} as never);
		const lines = [
			{ user: { id: "u" }, http: { status: "teapot" }, "http/req": { path: 7 } },
			{ user: { id: "u" }, meta: { ts: "yesterday" }, http: { status: 200 } },
		];
		const res = await call("POST", `/v1/datasets/${logs}/ingest`, {
			body: lines.map((l) => JSON.stringify(l)).join("\n"),
			headers: { "content-type": "application/x-ndjson" },
		});
		const p = await expectProblem(res, 400);
		expect(p.errors).toEqual([
			{ pointer: "/0/http/status", detail: "status at /http/status (ingest.fields.status): expected an integer" },
			{ pointer: "/0/http~1req/path", detail: "path at /http~1req/path (ingest.fields.path): expected a string" },
			{
				pointer: "/1/meta/ts",
				detail: expect.stringMatching(/^event_time "yesterday" is not a valid RFC 3339 time .* \(at \/meta\/ts, ingest\.event_time\)$/),
			},
		]);
	});

	it("without a fields mapping, a field at the record's own property", async () => {
		const logs = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "/uid" } } as never);
		const p = await expectProblem(await call("POST", `/v1/datasets/${logs}/ingest`, { json: [{ uid: "a", status: "x" }] }), 400);
		expect(p.errors).toEqual([{ pointer: "/0/status", detail: "status at /status: expected an integer" }]);
	});
});
