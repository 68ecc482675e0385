/**
 * Trust review: what a request may learn and how an answer may present itself. A value withheld
 * as stale (if_stale=omit) is withheld everywhere in the answer, search highlights included.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem } from "./helpers";
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

describe("GET /graphql's query string", () => {
	it("is held to the POST body's 1 MiB: past it a 414 problem before anything is parsed, at it the query runs", async () => {
		const ds = await createDataset();
		const query = `{ ${ds}(keys: ["k"]) { key status } }`;
		// The query padded with encoded spaces to `bytes` of query string, or just under.
		const pad = (bytes: number) => {
			const head = `query=${encodeURIComponent(query)}`;
			return head + "%20".repeat(Math.floor((bytes - head.length) / 3));
		};
		const over = pad(1024 * 1024 + 3);
		expect(over.length).toBeGreaterThan(1024 * 1024);
		const p = await expectProblem(await call("GET", `/graphql?${over}`), 414);
		expect(p.detail).toMatch(/query string is larger than 1 MiB/);
		// Variables past the limit are refused the same way, not parsed as JSON first.
		await expectProblem(await call("GET", `/graphql?query=${encodeURIComponent(query)}&variables=${"%5B".repeat(400_000)}`), 414);
		const under = pad(1024 * 1024);
		expect(under.length).toBeGreaterThan(1024 * 1024 - 3);
		const ok = await expectJson<{ data: Record<string, unknown> }>(await call("GET", `/graphql?${under}`), 200);
		expect(ok.data[ds]).toEqual([{ key: "k", status: "not_found" }]);
	});
});
