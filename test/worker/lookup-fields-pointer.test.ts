/**
 * POST /v1/lookup: an unknown name in a request's `fields` is pointed at where it stands
 * (`/requests/0/fields/2`), as every other bad item of a body is (a key at `/requests/0/keys/1`, an
 * unknown field of a search at `/fields/1`) and as the README promises ("a JSON Pointer to the
 * value at fault"), not at the whole list, which left a client to search it for the name.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectProblem } from "./helpers";

describe("POST /v1/lookup unknown fields", () => {
	it("are each pointed at by their index in the request's fields", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int", b: "string" } });
		const res = await call("POST", "/v1/lookup", {
			json: {
				requests: [
					{ dataset: ds, keys: ["k"] },
					{ dataset: ds, keys: ["k"], fields: ["a", "zz", "b", "yy", "zz"] },
				],
			},
		});
		const p = await expectProblem(res, 400);
		expect(p.errors).toEqual([
			{ pointer: "/requests/1/fields/1", detail: 'unknown field "zz"' },
			{ pointer: "/requests/1/fields/3", detail: 'unknown field "yy"' },
			{ pointer: "/requests/1/fields/4", detail: 'unknown field "zz"' },
		]);
	});
});
