/**
 * A log record's key and op come from the mapping's pointers (ingest.key, ingest.op), so a record
 * refused for them is pointed there, as its fields are at theirs: a key past the length limit or
 * holding a lone surrogate, no key, a key of the wrong type, an unknown op. These were all at the
 * record (`/0`), and the key's length and surrogate refusals did not say where the key came from.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectProblem } from "./helpers";

describe("POST ingest points a record's key and op at the mapping's pointers", () => {
	it("key and op refusals at ingest.key / ingest.op in the record, escaped as written", async () => {
		const logs = await createDataset({
			key: "user_id",
			fields: { status: "int" },
			ingest: { key: "/user/i~1d", op: "/meta/op", fields: { status: "/http/status" } },
		} as never);
		const res = await call("POST", `/v1/datasets/${logs}/ingest`, {
			json: [
				{ user: { "i/d": "x".repeat(600) }, http: { status: 1 } },
				{ user: { "i/d": "a" }, meta: { op: "replace" }, http: { status: 1 } },
				{ user: {}, http: { status: 1 } },
				{ user: { "i/d": "\ud800" }, http: { status: 1 } },
				{ user: { "i/d": true }, http: { status: 1 } },
				"not a record",
			],
		});
		const p = await expectProblem(res, 400);
		expect(p.errors).toEqual([
			{ pointer: "/0/user/i~1d", detail: "key is longer than 400 bytes (at /user/i~1d, ingest.key)" },
			{ pointer: "/1/meta/op", detail: 'the op at /meta/op (ingest.op) must be upsert, patch or delete, not "replace"' },
			{ pointer: "/2/user/i~1d", detail: "no key at /user/i~1d (ingest.key)" },
			{ pointer: "/3/user/i~1d", detail: "key must be well-formed Unicode (it holds a lone surrogate) (at /user/i~1d, ingest.key)" },
			{ pointer: "/4/user/i~1d", detail: "the key at /user/i~1d (ingest.key) must be a non-empty string or an integer, not true" },
			{ pointer: "/5", detail: "a record must be a JSON object" },
		]);
	});

	it('a key mapped at "" (the whole record) is refused at the record', async () => {
		const logs = await createDataset({ key: "user_id", fields: { status: "int" }, ingest: { key: "" } } as never);
		const p = await expectProblem(await call("POST", `/v1/datasets/${logs}/ingest`, { json: [{ status: 1 }] }), 400);
		expect(p.errors).toEqual([{ pointer: "/0", detail: 'the key at "" (ingest.key) must be a non-empty string or an integer, not an object' }]);
	});
});
