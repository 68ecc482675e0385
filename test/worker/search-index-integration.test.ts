/**
 * Keeping the search index in step with D1: revision-guarded writes (an older write never replaces
 * a newer one, a delete's tombstone keeps older writes out), refresh messages through the events
 * consumer, rebuilds refilling it from D1, and a build that misses no write made while it runs.
 */
import { describe, expect, it } from "vitest";
import { layoutOf } from "../../src/search/layout";
import { readMeta } from "../../src/search/meta";
import { indexDocs } from "../../src/search/writer";
import { servicesFor } from "../../src/services";
import { call, createDataset, EVENTS_QUEUE, env, eventually, expectJson, expectProblem, message, postEvents, runQueue, uniqueName, waitForD1 } from "./helpers";
import { importProducts, makeProducts, matchesText, productSpec, searchAll, searchOk, waitIndexReady } from "./search-oracle";

const searchDb = () => (env as unknown as { SEARCH_DB: D1Database }).SEARCH_DB;
const rec = (v: Record<string, unknown> | null, r: number) => ({ v, t: 1_700_000_000_000 + r, i: `e${r}`, r });

/** The docs table of the dataset's current generation. */
async function docsTable(ds: string): Promise<string> {
	const meta = await readMeta(searchDb(), ds);
	if (meta?.gen == null) throw new Error(`no index generation for ${ds}`);
	return `"s_${ds}_${meta.gen}_docs"`;
}

describe("index writes are revision-guarded", () => {
	it("an older write never replaces a newer one; a delete's tombstone keeps an older upsert out", async () => {
		const ds = await createDataset(productSpec() as never);
		await waitIndexReady(ds);
		const services = servicesFor(env);
		const write = (key: string, v: Record<string, unknown> | null, r: number) => indexDocs(services, [{ dataset: ds, key, rec: rec(v, r) }]);

		await write("k1", { title: "second", price: 2, emb: [0, 1, 0, 0] }, 2);
		await write("k1", { title: "first", price: 1, emb: [1, 0, 0, 0] }, 1);
		expect((await searchOk(ds, { q: "second" })).hits.length + (await searchOk(ds, { q: "first" })).hits.length).toBe(0); // not in D1: reads drop them
		const row = await searchDb()
			.prepare(`SELECT rev, live, f1 AS price FROM ${await docsTable(ds)} WHERE key = 'k1'`)
			.first();
		expect(row).toEqual({ rev: 2, live: 1, price: 2 });

		await write("k1", null, 3);
		await write("k1", { title: "late", price: 9 }, 2);
		await write("k1", { title: "later but older", price: 9 }, 1);
		expect(
			await searchDb()
				.prepare(`SELECT rev, live, f1 AS price FROM ${await docsTable(ds)} WHERE key = 'k1'`)
				.first(),
		).toEqual({ rev: 3, live: 0, price: null });
		const fts = await searchDb().prepare(`SELECT count(*) AS n FROM "s_${ds}_1_fts" WHERE "s_${ds}_1_fts" MATCH '"late" OR "first" OR "second"'`).first();
		expect(fts).toEqual({ n: 0 });
		const vec = await searchDb()
			.prepare(`SELECT vec FROM "s_${ds}_1_vecs" AS v JOIN ${await docsTable(ds)} AS d ON d.id = v.id WHERE d.key = 'k1'`)
			.first();
		expect(vec).toEqual({ vec: null });

		// Redelivery of the newest state changes nothing, and a newer upsert brings it back.
		await write("k1", null, 3);
		await write("k1", { title: "reborn", price: 4 }, 4);
		expect(
			await searchDb()
				.prepare(`SELECT rev, live, f1 AS price FROM ${await docsTable(ds)} WHERE key = 'k1'`)
				.first(),
		).toEqual({ rev: 4, live: 1, price: 4 });
		const n = await searchDb().prepare(`SELECT count(*) AS n FROM "s_${ds}_1_fts" WHERE "s_${ds}_1_fts" MATCH '"reborn"'`).first();
		expect(n).toEqual({ n: 1 });
	});

	it("events applied out of order leave the index at D1's final state", async () => {
		const ds = await createDataset(productSpec() as never);
		await waitIndexReady(ds);
		const t = Date.now() - 10_000;
		await postEvents([
			{ dataset: ds, key: "k", op: "upsert", value: { title: "newest", price: 3 }, event_time: t + 3 },
			{ dataset: ds, key: "k", op: "upsert", value: { title: "oldest", price: 1 }, event_time: t + 1 },
		]);
		await postEvents([{ dataset: ds, key: "k", op: "upsert", value: { title: "middle", price: 2 }, event_time: t + 2 }]);
		await postEvents([{ dataset: ds, key: "k", op: "patch", value: { stock: 7 }, event_time: t + 4 }]);
		await waitForD1(ds, "k", (r) => JSON.parse(r.value ?? "{}").stock === 7);
		await eventually(async () => ((await searchOk(ds, { filter: { stock: 7 } })).hits.length === 1 ? true : undefined), { what: "the patch indexed" });
		expect((await searchOk(ds, { q: "newest" })).hits.map((h) => h.key)).toEqual(["k"]);
		expect((await searchOk(ds, { q: "middle" })).hits).toEqual([]);
		expect((await searchOk(ds, { q: "oldest" })).hits).toEqual([]);
	});
});

describe("refresh messages and rebuilds", () => {
	it("a search refresh message through the events consumer re-indexes keys from D1's state", async () => {
		const ds = await createDataset(productSpec() as never);
		const products = makeProducts(20, 17);
		await importProducts(ds, products);
		await waitIndexReady(ds);
		// Lose some docs, as if their index write had failed.
		const lost = products.slice(0, 5).map((p) => p.sku);
		await searchDb()
			.prepare(`UPDATE ${await docsTable(ds)} SET rev = 0, live = 0 WHERE key IN (SELECT value FROM json_each(?1))`)
			.bind(JSON.stringify(lost))
			.run();
		await searchDb()
			.prepare(`DELETE FROM "s_${ds}_1_fts" WHERE rowid IN (SELECT id FROM ${await docsTable(ds)} WHERE rev = 0)`)
			.run();
		expect((await searchAll(ds, { filter: {}, limit: 100 })).length).toBe(15);

		const msg = message(JSON.stringify({ v: 1, search: { refresh: { dataset: ds, keys: [...lost, "never-existed"] } } }));
		const result = await runQueue(EVENTS_QUEUE, [msg]);
		expect(result.explicitAcks).toEqual([msg.id]);
		expect((await searchAll(ds, { filter: {}, limit: 100 })).map((h) => h.key).sort()).toEqual(products.map((p) => p.sku).sort());
		const red = products.filter((p) => matchesText(p, "red")).map((p) => p.sku);
		expect((await searchAll(ds, { q: "red", limit: 100 })).map((h) => h.key).sort()).toEqual(red.sort());
	});

	it("a rebuild refill re-indexes every page from D1 (drop leaves the index alone)", async () => {
		const ds = await createDataset(productSpec() as never);
		const products = makeProducts(30, 19);
		await importProducts(ds, products);
		await waitIndexReady(ds);
		await searchDb().prepare(`DELETE FROM "s_${ds}_1_fts"`).run();
		await searchDb()
			.prepare(`UPDATE ${await docsTable(ds)} SET rev = 0`)
			.run();
		expect((await searchOk(ds, { q: "red" })).hits).toEqual([]);
		await expectJson(await call("POST", `/v1/datasets/${ds}/rebuild`), 202);
		await eventually(
			async () => ((await expectJson<{ status: string }>(await call("GET", `/v1/datasets/${ds}/rebuild`), 200)).status === "done" ? true : undefined),
			{
				timeoutMs: 20_000,
				what: "the rebuild",
			},
		);
		const red = products.filter((p) => matchesText(p, "red")).map((p) => p.sku);
		expect((await searchAll(ds, { q: "red", limit: 100 })).map((h) => h.key).sort()).toEqual(red.sort());
		await expectJson(await call("POST", `/v1/datasets/${ds}/rebuild?mode=drop`), 202);
		await eventually(
			async () => ((await expectJson<{ status: string }>(await call("GET", `/v1/datasets/${ds}/rebuild`), 200)).status === "done" ? true : undefined),
			{
				timeoutMs: 20_000,
				what: "the drop",
			},
		);
		expect((await searchAll(ds, { q: "red", limit: 100 })).map((h) => h.key).sort()).toEqual(red.sort());
	});
});

describe("a broken index", () => {
	it("whose tables are gone answers 409 saying how to rebuild it, never 500; the reindex brings it back", async () => {
		const ds = await createDataset(productSpec() as never);
		await importProducts(ds, makeProducts(10, 29));
		await waitIndexReady(ds);
		const meta = await readMeta(searchDb(), ds);
		await searchDb().batch(
			[`DROP TABLE "s_${ds}_${meta?.gen}_fts"`, `DROP TABLE "s_${ds}_${meta?.gen}_vecs"`, `DROP TABLE "s_${ds}_${meta?.gen}_docs"`].map((q) =>
				searchDb().prepare(q),
			),
		);
		const p = await expectProblem(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "red" } }), 409);
		expect(p.detail).toMatch(/search\/reindex/);
		await expectJson(await call("POST", `/v1/datasets/${ds}/search/reindex`), 202);
		await waitIndexReady(ds);
		expect((await searchAll(ds, { filter: {}, limit: 100 })).length).toBe(10);
	});
});

describe("builds", () => {
	it("a build started on a dataset with records, while events keep landing, ends equal to D1", async () => {
		const spec = productSpec(null);
		const ds = await createDataset(spec as never);
		const products = makeProducts(1500, 23);
		await importProducts(ds, products);
		// Searchable from now on: the build pages through D1 while events land everywhere in the key range.
		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: productSpec() }), 200);
		const t = Date.now();
		for (let round = 0; round < 6; round++) {
			const events = Array.from({ length: 40 }, (_, i) => {
				const p = products[(round * 251 + i * 37) % products.length] as { sku: string };
				return i % 5 === 0
					? { dataset: ds, key: p.sku, op: "delete", event_time: t + round * 100 + i }
					: { dataset: ds, key: p.sku, op: "upsert", value: { title: `round${round} red`, stock: round }, event_time: t + round * 100 + i };
			});
			events.push({ dataset: ds, key: `new_${round}`, op: "upsert", value: { title: "red fresh", stock: 99 }, event_time: t + round * 100 });
			await postEvents(events);
			await new Promise((r) => setTimeout(r, 400));
		}
		await waitIndexReady(ds, 60_000);
		// Quiet now: every key's doc must reflect D1.
		await eventually(
			async () => {
				const { results } = await env.DB.prepare("SELECT key FROM records WHERE dataset = ?1 AND value IS NOT NULL ORDER BY key")
					.bind(ds)
					.all<{ key: string }>();
				const live = results.map((r) => r.key);
				const indexed = (await searchAll(ds, { filter: {}, limit: 100 })).map((h) => h.key);
				return indexed.join() === live.slice(0, 1000).join() ? true : undefined;
			},
			{ timeoutMs: 10_000, what: "the index to equal D1's live keys" },
		);
		const meta = await readMeta(searchDb(), ds);
		const docs = await searchDb()
			.prepare(`SELECT key, rev, live FROM "s_${ds}_${meta?.gen}_docs" ORDER BY key`)
			.all<{ key: string; rev: number; live: number }>();
		const d1 = await env.DB.prepare("SELECT key, rev, value IS NOT NULL AS live, value FROM records WHERE dataset = ?1 ORDER BY key")
			.bind(ds)
			.all<{ key: string; rev: number; live: number; value: string | null }>();
		expect(docs.results).toEqual(d1.results.map(({ key, rev, live }) => ({ key, rev, live })));
		// And the text agrees with D1's values.
		const red = (await searchAll(ds, { q: "red", limit: 100, filter: { stock: { gte: 0 } } })).map((h) => h.key).sort();
		const want = d1.results
			.map((r) => ({ key: r.key, v: r.value ? JSON.parse(r.value) : null }))
			.filter(({ key, v }) => v && typeof v.stock === "number" && matchesText({ sku: key, title: v.title, tags: v.tags }, "red"))
			.map((r) => r.key);
		expect(want.length).toBeLessThan(1000);
		expect(red).toEqual(want.sort());
	}, 90_000);

	it("the index layout follows the spec: its columns are numbered, whatever the fields are called", () => {
		const layout = layoutOf({
			name: uniqueName(),
			key: "k",
			fields: { Rank: { type: "string" }, rank: { type: "string[]" }, rowid: { type: "int" }, v: { type: "vector", dim: 2 } },
			ttl_seconds: 1,
			history_days: 1,
			search: { text: ["Rank", "rank"], filters: ["rowid", "rank"], vector: "v" },
		});
		expect(layout).toEqual({
			text: [
				{ field: "Rank", list: false },
				{ field: "rank", list: true },
			],
			filters: [
				{ field: "rowid", type: "int" },
				{ field: "rank", type: "string[]" },
			],
			vector: { field: "v", dim: 2 },
		});
	});
});
