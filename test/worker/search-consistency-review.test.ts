/**
 * The search index's consistency with D1 across spec changes: an index whose drop SEARCH_DB refused
 * (search removed from the spec) missed every write made while the dataset was not searchable, so
 * putting the same search part back must rebuild it from D1, not serve the old one as current.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, env, expectJson, postEvents, waitForD1 } from "./helpers";
import { importProducts, makeProducts, productSpec, searchAll, waitIndexReady } from "./search-oracle";

const searchDb = () => (env as unknown as { SEARCH_DB: D1Database }).SEARCH_DB;

describe("search removed while SEARCH_DB refuses the drop, then put back", () => {
	it("re-indexes from D1: writes made while the dataset was not searchable are found", async () => {
		const ds = await createDataset(productSpec() as never);
		const products = makeProducts(10, 31);
		await importProducts(ds, products);
		await waitIndexReady(ds);

		// SEARCH_DB refuses the catalogue's update: the index cannot be dropped.
		const trigger = `refuse_${ds}`;
		await searchDb()
			.prepare(`CREATE TRIGGER ${trigger} BEFORE UPDATE ON search_indexes WHEN OLD.dataset = '${ds}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
			.run();
		try {
			await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: productSpec(null) }), 200);
		} finally {
			await searchDb().prepare(`DROP TRIGGER ${trigger}`).run();
		}
		// Not searchable now: these writes are not indexed.
		const t = Date.now();
		await postEvents([
			{ dataset: ds, key: "fresh", op: "upsert", value: { title: "zebra", stock: 1 }, event_time: t },
			{ dataset: ds, key: (products[0] as { sku: string }).sku, op: "upsert", value: { title: "zebra too", stock: 2 }, event_time: t },
		]);
		await waitForD1(ds, "fresh");
		await waitForD1(ds, (products[0] as { sku: string }).sku, (r) => JSON.stringify(r).includes("zebra"));

		// The same search part again.
		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: productSpec() }), 200);
		await waitIndexReady(ds);
		const hits = (await searchAll(ds, { q: "zebra", limit: 100 })).map((h) => h.key).sort();
		expect(hits).toEqual(["fresh", (products[0] as { sku: string }).sku].sort());
	}, 60_000);
});
