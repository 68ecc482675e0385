/**
 * A projection naming thousands of unknown fields is a short error: the first 20 named (each by
 * at most 64 characters) and how many more, over GraphQL and POST /v1/lookup alike, not an answer
 * several times the size of the request.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem } from "./helpers";

describe("a projection of many unknown fields", () => {
	it("names the first 20 and counts the rest", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 } as never);
		const fields = [...Array.from({ length: 5000 }, (_, i) => `nope_${i}`), "x".repeat(10_000)];
		const res = await call("POST", "/graphql", {
			json: { query: `query($f: [String!]) { r: ${ds}(keys: ["k"], fields: $f) { key } }`, variables: { f: fields } },
		});
		const text = await res.text();
		expect(text.length).toBeLessThan(5000);
		const body = JSON.parse(text) as { errors: { message: string; extensions: { code: string; errors: unknown[] } }[] };
		expect(body.errors[0]?.extensions.code).toBe("BAD_USER_INPUT");
		expect(body.errors[0]?.message).toMatch(/unknown field\(s\) nope_0, nope_1, .*nope_19 and 4981 more; known fields are a$/);
		expect(body.errors[0]?.extensions.errors).toHaveLength(20);

		const p = await expectProblem(await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["k"], fields }] } }), 400);
		expect(p.errors).toHaveLength(20);
		expect(p.detail?.length).toBeLessThan(2000);
		// One unknown field among known ones: named as before.
		const one = await expectProblem(await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["k"], fields: ["a", "b"] }] } }), 400);
		expect(one.errors).toEqual([{ pointer: "/requests/0/fields/1", detail: 'unknown field "b"' }]);
		await expectJson(await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["k"], fields: ["a"] }] } }), 200);
	});
});
