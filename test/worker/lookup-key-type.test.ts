/**
 * POST /v1/lookup: a key that is neither a string nor a whole number (1.5, true, an object) was
 * refused with zod's bare "Invalid input" at its pointer, which says where but not what is wrong.
 * It now says what a key must be.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectProblem } from "./helpers";

describe("a lookup key of the wrong type", () => {
	it("is a 400 saying what a key must be, at its pointer", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		const p = await expectProblem(await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["ok", 1.5, true, { id: 1 }, 7] }] } }), 400);
		const what = "a key is a non-empty string or a safe integer";
		expect(p.errors).toEqual([
			{ pointer: "/requests/0/keys/1", detail: what },
			{ pointer: "/requests/0/keys/2", detail: what },
			{ pointer: "/requests/0/keys/3", detail: what },
		]);
	});
});
