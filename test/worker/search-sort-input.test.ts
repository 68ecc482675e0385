/**
 * The search body's sort as written: a key is "field", "-field", "_score" or {"field", "order"},
 * alone or in a list, and a list may mix the forms. A sort that is none of these is a 400 saying
 * what a sort is, not zod's bare "Invalid input".
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, eventually, expectJson, expectProblem, postEvents } from "./helpers";

interface Page {
	hits: { key: string }[];
}

describe("the search body's sort", () => {
	it("takes every documented form of a key, mixed in a list, and says what a sort is when it is none", async () => {
		const ds = await createDataset({ key: "id", fields: { n: "int", c: "string" }, ttl_seconds: 3600, search: { filters: ["n", "c"] } } as never);
		await postEvents([
			{ dataset: ds, key: "a", op: "upsert", value: { n: 2, c: "x" } },
			{ dataset: ds, key: "b", op: "upsert", value: { n: 1, c: "y" } },
			{ dataset: ds, key: "c", op: "upsert", value: { n: 1, c: "x" } },
		]);
		const search = (body: Record<string, unknown>) => call("POST", `/v1/datasets/${ds}/search`, { json: body });
		await eventually(async () => {
			const res = await search({});
			return res.status === 200 && ((await res.json()) as Page).hits.length === 3 ? true : undefined;
		});
		const keys = async (sort: unknown) => (await expectJson<Page>(await search({ sort }), 200)).hits.map((h) => h.key);
		expect(await keys(["n", { field: "c", order: "desc" }])).toEqual(["b", "c", "a"]);
		expect(await keys([{ field: "n" }, "-c"])).toEqual(["b", "c", "a"]);
		expect(await keys({ field: "n", order: "desc" })).toEqual(["a", "b", "c"]);

		for (const sort of [5, [1], true]) {
			const p = await expectProblem(await search({ sort }), 400);
			expect(p.errors?.[0]).toEqual({ pointer: "/sort", detail: expect.stringMatching(/sort is a key .*"-price".*"_score".*or a list of up to 3 keys/) });
		}
		const unknownKey = await expectProblem(await search({ sort: [{ field: "n", dir: "up" }] }), 400);
		expect(unknownKey.errors?.[0]?.detail).toMatch(/"dir"/);
	});
});
