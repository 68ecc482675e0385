/**
 * Trust review: what a request may learn and how an answer may present itself. A value withheld
 * as stale (if_stale=omit) is withheld everywhere in the answer, search highlights included.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson } from "./helpers";
import { importProducts, productSpec, type SearchBody, waitIndexReady } from "./search-oracle";

describe("search hits whose value is withheld as stale (if_stale=omit)", () => {
	let ds = "";
	beforeAll(async () => {
		ds = await createDataset(productSpec({ text: ["title", "tags"], filters: ["category"] }) as never);
		// Written a minute ago: stale to a read with max_staleness of 1 s.
		await importProducts(ds, [{ sku: "secret", title: "quarterly figures attached", tags: ["quarterly"], category: "a" }]);
		await waitIndexReady(ds);
	});

	it("carry no highlights: the marked text would give the withheld value away (REST)", async () => {
		const fresh = await expectJson<SearchBody>(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "quarterly", highlight: true } }), 200);
		expect(fresh.hits[0]?.highlights).toEqual({ title: "<mark>quarterly</mark> figures attached", tags: ["<mark>quarterly</mark>"] });
		const body = { q: "quarterly", highlight: true, max_staleness: 1, if_stale: "omit" };
		const res = await expectJson<SearchBody>(await call("POST", `/v1/datasets/${ds}/search`, { json: body }), 200);
		expect(res.hits).toEqual([expect.objectContaining({ key: "secret", status: "stale", value: null })]);
		expect(res.hits[0]?.highlights).toEqual({});
		// if_stale=serve reports the value marked stale, and its highlights with it.
		const served = await expectJson<SearchBody>(await call("POST", `/v1/datasets/${ds}/search`, { json: { ...body, if_stale: "serve" } }), 200);
		expect(served.hits[0]).toMatchObject({ status: "stale", value: { title: "quarterly figures attached" }, highlights: { title: expect.any(String) } });
	});

	it("carry no highlights in GraphQL either", async () => {
		const query = `{ ${ds}_search(q: "quarterly", highlight: true, max_staleness: 1, if_stale: omit) { hits { key status value { title } highlights } } }`;
		const res = await expectJson<{ data: Record<string, { hits: { key: string; status: string; value: unknown; highlights: unknown }[] }> }>(
			await call("POST", "/graphql", { json: { query } }),
			200,
		);
		expect(res.data[`${ds}_search`]?.hits).toEqual([{ key: "secret", status: "stale", value: null, highlights: {} }]);
	});
});
