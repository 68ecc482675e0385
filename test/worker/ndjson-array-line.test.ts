/**
 * A JSON array sent as NDJSON (Content-Type: application/x-ndjson, a body of `[{...}, {...}]`, or a
 * line holding an array) was refused with "an event must be a JSON object": true of the line, but
 * silent on why. As an NDJSON body sent as application/json is told to use the NDJSON type, the
 * line is now named as a JSON array, with the content type to send instead.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem } from "./helpers";

const ndjson = (body: string) => ({ body, headers: { "content-type": "application/x-ndjson" } });

describe("a JSON array on an NDJSON line", () => {
	it("is named as an array, with the content type to send, on the events, import and ingest routes", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		const all = await expectProblem(await call("POST", "/v1/events", ndjson(JSON.stringify([{ dataset: ds, key: "k", op: "delete" }]))), 400);
		expect(all.errors).toEqual([
			{ pointer: "/0", detail: "line 1 is a JSON array: NDJSON holds one event per line (send a JSON array with Content-Type: application/json)" },
		]);

		const mixed = await expectJson<{ accepted: number; rejected: { index: number; error: string }[] }>(
			await call("POST", "/v1/events", ndjson(`${JSON.stringify({ dataset: ds, key: "k", op: "delete" })}\n[1, 2]\n`)),
			202,
		);
		expect(mixed).toEqual({ accepted: 1, rejected: [{ index: 1, error: expect.stringMatching(/^line 2 is a JSON array: NDJSON holds one event per line/) }] });

		const rows = await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, ndjson(JSON.stringify([{ id: "k", a: 1 }]))), 400);
		expect(rows.errors?.[0]?.detail).toMatch(/^line 1 is a JSON array: NDJSON holds one row per line/);

		const mapped = await createDataset({ key: "id", fields: { a: "int" }, ingest: { key: "/id" } } as never);
		const records = await expectProblem(await call("POST", `/v1/datasets/${mapped}/ingest`, ndjson(JSON.stringify([{ id: "k", a: 1 }]))), 400);
		expect(records.errors?.[0]?.detail).toMatch(/^line 1 is a JSON array: NDJSON holds one record per line/);
	});
});
