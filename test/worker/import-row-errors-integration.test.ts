/**
 * POST /v1/datasets/:name/import names a bad row's problem in the row's own terms: its key field,
 * not the `key` and `value` of an event, which an import row does not have.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson } from "./helpers";

interface ImportResult {
	imported: number;
	unchanged: number;
	rejected: { index: number; error: string }[];
}

describe("import row errors", () => {
	let ds = "";
	beforeAll(async () => {
		ds = await createDataset({ key: "user_id", fields: { age: "int" }, ttl_seconds: 3600 });
	});

	it("name the key field for a bad key, a key too long, a lone surrogate and an empty patch", async () => {
		const res = await expectJson<ImportResult>(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ user_id: "ok", age: 1 },
					{ user_id: 2 ** 60, age: 2 },
					{ user_id: { id: 1 }, age: 3 },
					{ user_id: "", age: 4 },
					{ user_id: "k".repeat(401), age: 5 },
					{ user_id: "a\ud800", age: 6 },
					{ user_id: "p", _op: "patch" },
				],
			}),
			200,
		);
		expect(res.imported).toBe(1);
		expect(res.rejected).toEqual([
			{ index: 1, error: '"user_id" must be a non-empty string or a safe integer' },
			{ index: 2, error: '"user_id" must be a non-empty string or a safe integer' },
			{ index: 3, error: '"user_id" must be a non-empty string or a safe integer' },
			{ index: 4, error: '"user_id" is longer than 400 bytes' },
			{ index: 5, error: '"user_id" must be well-formed Unicode (it holds a lone surrogate)' },
			{ index: 6, error: 'a patch needs at least one field besides "user_id"' },
		]);
		for (const r of res.rejected) expect(r.error).not.toMatch(/\bkey is|\bin value\b/);
	});
});
