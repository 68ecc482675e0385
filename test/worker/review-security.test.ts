/**
 * Attacks a hostile reviewer tried on the newer routes (search, GraphQL search, dead letters), each
 * of which once answered with a 5xx or told a limited key about another dataset.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectProblem } from "./helpers";
import { importProducts, makeProducts, productSpec, search, waitIndexReady } from "./search-oracle";

let ds = "";

beforeAll(async () => {
	ds = await createDataset(productSpec() as never);
	await importProducts(ds, makeProducts(20, 5));
	await waitIndexReady(ds);
});

/** A filter of many empty filter objects: no operator at all, so the operator bound never counted them. */
const wideFilter = () => ({
	or: Array.from({ length: 64 }, () => ({ or: Array.from({ length: 64 }, () => ({ or: Array.from({ length: 15 }, () => ({})) })) })),
});

describe("search filters of many filter objects", () => {
	it("are a 400 naming where, not a 503 from SQL too long for D1 (REST)", async () => {
		const p = await expectProblem(await search(ds, { filter: wideFilter() }), 400);
		expect(p.errors?.[0]?.pointer).toMatch(/^\/filter\/or\/\d+/);
		expect(p.errors?.[0]?.detail).toMatch(/at most 256 filter objects/);
	});

	it("are BAD_USER_INPUT in GraphQL, not UNAVAILABLE", async () => {
		const res = await call("POST", "/graphql", {
			json: { query: `query($f: JSON) { ${ds}_search(filter: $f) { hits { key } } }`, variables: { f: wideFilter() } },
		});
		expect(res.status).toBe(200);
		const body = (await res.json()) as { errors?: { message: string; extensions: { code: string } }[] };
		expect(body.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
		expect(body.errors?.[0]?.message).toMatch(/at most 256 filter objects/);
	});

	it("up to the bound they still run", async () => {
		// 1 + 5 + 5 * 50 = 256 filter objects.
		const filter = { or: Array.from({ length: 5 }, (_, i) => ({ or: Array.from({ length: 50 }, () => (i === 0 ? { price: { gte: 0 } } : {})) })) };
		const res = await search(ds, { filter: { and: [filter] } });
		// The and's own member makes 257: one past.
		await expectProblem(res, 400);
		const ok = await search(ds, { filter });
		expect(ok.status, await ok.clone().text()).toBe(200);
	});
});
