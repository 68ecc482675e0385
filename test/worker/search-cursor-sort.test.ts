/**
 * A search cursor belongs to its query, and a sort is the same query however it is spelled: "n",
 * ["n"] and [{"field": "n"}] (GraphQL's sort argument is a list, so a bare string arrives as one).
 * So is a filter whatever the order of its members (JSON objects are unordered).
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, eventually, expectJson, postEvents } from "./helpers";

interface Page {
	hits: { key: string }[];
	next_cursor: string | null;
}

describe("search cursors and the spelling of sort", () => {
	it("continue a query whatever form its sort was written in, over REST and GraphQL", async () => {
		const ds = await createDataset({ key: "id", fields: { n: "int" }, ttl_seconds: 3600, search: { filters: ["n"] } } as never);
		await postEvents(Array.from({ length: 5 }, (_, i) => ({ dataset: ds, key: `k${i}`, op: "upsert", value: { n: 10 - i } })));
		const search = async (body: Record<string, unknown>) => expectJson<Page>(await call("POST", `/v1/datasets/${ds}/search`, { json: body }), 200);
		const query = { filter: { n: { gt: 0 } }, limit: 2 };
		const first = await eventually(async () => {
			const res = await call("POST", `/v1/datasets/${ds}/search`, { json: { ...query, sort: "n" } });
			if (res.status !== 200) return undefined;
			const page = (await res.json()) as Page;
			return page.hits.length === 2 ? page : undefined;
		});
		expect(first.hits.map((h) => h.key)).toEqual(["k4", "k3"]);
		const cursor = first.next_cursor as string;
		expect(cursor).toEqual(expect.any(String));
		for (const sort of ["n", ["n"], [{ field: "n" }], [{ field: "n", order: "asc" }]]) {
			expect((await search({ ...query, sort, cursor })).hits.map((h) => h.key)).toEqual(["k2", "k1"]);
		}
		const gql = await expectJson<{ data: Record<string, Page> | null; errors?: unknown }>(
			await call("POST", "/graphql", {
				json: {
					query: `query($c: String) { s: ${ds}_search(filter: {n: {gt: 0}}, sort: "n", limit: 2, cursor: $c) { hits { key } } }`,
					variables: { c: cursor },
				},
			}),
			200,
		);
		expect(gql.errors).toBeUndefined();
		expect(gql.data?.s?.hits.map((h) => h.key)).toEqual(["k2", "k1"]);
		// Another sort is another query.
		const other = await call("POST", `/v1/datasets/${ds}/search`, { json: { ...query, sort: "-n", cursor } });
		expect(other.status).toBe(400);
	});

	it("continue a query whatever order its filter's members were written in, over REST and GraphQL", async () => {
		const ds = await createDataset({ key: "id", fields: { n: "int", c: "string" }, ttl_seconds: 3600, search: { filters: ["n", "c"] } } as never);
		await postEvents(Array.from({ length: 5 }, (_, i) => ({ dataset: ds, key: `k${i}`, op: "upsert", value: { n: i, c: "x" } })));
		const search = async (body: Record<string, unknown>) => expectJson<Page>(await call("POST", `/v1/datasets/${ds}/search`, { json: body }), 200);
		const first = await eventually(async () => {
			const res = await call("POST", `/v1/datasets/${ds}/search`, { json: { filter: { n: { gte: 0, lt: 10 }, c: "x" }, limit: 2 } });
			if (res.status !== 200) return undefined;
			const page = (await res.json()) as Page;
			return page.hits.length === 2 ? page : undefined;
		});
		expect(first.hits.map((h) => h.key)).toEqual(["k0", "k1"]);
		const cursor = first.next_cursor as string;
		expect((await search({ filter: { c: "x", n: { lt: 10, gte: 0 } }, limit: 2, cursor })).hits.map((h) => h.key)).toEqual(["k2", "k3"]);
		const gql = await expectJson<{ data: Record<string, Page> | null; errors?: unknown }>(
			await call("POST", "/graphql", {
				json: {
					query: `query($c: String) { s: ${ds}_search(filter: {n: {lt: 10, gte: 0}, c: "x"}, limit: 2, cursor: $c) { hits { key } } }`,
					variables: { c: cursor },
				},
			}),
			200,
		);
		expect(gql.errors).toBeUndefined();
		expect(gql.data?.s?.hits.map((h) => h.key)).toEqual(["k2", "k3"]);
		// Another filter is another query.
		expect((await call("POST", `/v1/datasets/${ds}/search`, { json: { filter: { n: { gte: 1, lt: 10 }, c: "x" }, limit: 2, cursor } })).status).toBe(400);
	});
});
