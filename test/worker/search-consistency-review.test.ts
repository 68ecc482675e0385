/**
 * The search index's consistency with D1 across spec changes: an index whose drop SEARCH_DB refused
 * (search removed from the spec) missed every write made while the dataset was not searchable, so
 * putting the same search part back must rebuild it from D1, not serve the old one as current.
 */
import { describe, expect, it } from "vitest";
import { rebuildPage } from "../../src/ingest/rebuild";
import { readMeta } from "../../src/search/meta";
import { servicesFor } from "../../src/services";
import { getRebuild, startRebuild } from "../../src/storage/rebuilds";
import { call, createDataset, env, eventually, expectJson, postEvents, waitForD1 } from "./helpers";
import { importProducts, makeProducts, matchesText, productSpec, searchAll, waitIndexReady } from "./search-oracle";

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

describe("a rebuild refill while SEARCH_DB refuses the index writes", () => {
	it("still rewrites the caches and finishes; the index is refreshed from D1 later, as after any write SEARCH_DB refused", async () => {
		const ds = await createDataset(productSpec() as never);
		const products = makeProducts(12, 37);
		await importProducts(ds, products);
		await waitIndexReady(ds);
		const meta = await readMeta(searchDb(), ds);
		const docs = `"s_${ds}_${meta?.gen}_docs"`;
		// The index lost its docs (as after writes that never landed): only a refill brings them back.
		await searchDb().prepare(`DELETE FROM "s_${ds}_${meta?.gen}_fts"`).run();
		await searchDb().prepare(`UPDATE ${docs} SET rev = 0`).run();

		const trigger = `refuse_docs_${ds}`;
		await searchDb().prepare(`CREATE TRIGGER ${trigger} BEFORE INSERT ON ${docs} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`).run();
		const page = { dataset: ds, mode: "refill" as const, job: crypto.randomUUID(), after: null };
		try {
			await startRebuild(env.DB, { dataset: ds, job: page.job, mode: page.mode, totalKeys: products.length, startedAt: Date.now() });
			await rebuildPage(servicesFor(env), page);
			expect((await getRebuild(env.DB, ds))?.status).toBe("done");
		} finally {
			await searchDb().prepare(`DROP TRIGGER ${trigger}`).run();
		}
		const red = products.filter((p) => matchesText(p, "red")).map((p) => p.sku);
		expect(red.length).toBeGreaterThan(0);
		await eventually(async () => ((await searchAll(ds, { q: "red", limit: 100 })).length === red.length ? true : undefined), {
			timeoutMs: 20_000,
			what: "the refresh to re-index the refilled keys",
		});
		expect((await searchAll(ds, { q: "red", limit: 100 })).map((h) => h.key).sort()).toEqual(red.sort());
	}, 60_000);
});
