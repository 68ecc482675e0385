/**
 * Search, end to end: the spec's search part, exact results of text, filter, sort, vector and
 * hybrid queries checked against a brute-force oracle, hits read like any read, updates and
 * deletes followed, paging without duplicates or gaps under concurrent writes, and a spec change
 * re-indexing in the background with its progress.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, eventually, expectJson, expectProblem, postEvents, uniqueName, waitForD1 } from "./helpers";
import {
	type Hit,
	importProducts,
	indexStatus,
	makeProducts,
	matchesFilter,
	matchesText,
	nearest,
	type Product,
	productSpec,
	search,
	searchAll,
	searchOk,
	sortBy,
	waitIndexReady,
} from "./search-oracle";

const keysOf = (hits: Hit[]) => hits.map((h) => h.key);
const sorted = (xs: string[]) => [...xs].sort();

describe("the search part of a spec", () => {
	it("is validated like the rest: each field declared and of a type its role takes, named by JSON pointers", async () => {
		const bad = {
			...productSpec(),
			search: { text: ["title", "price"], filters: ["category", "nope", "note", "emb"], vector: "title" },
		};
		const p = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json: bad }), 400);
		expect(p.errors).toEqual(
			expect.arrayContaining([
				{ pointer: "/search/text/1", detail: expect.stringMatching(/"price" is float: a text field must be a string or string\[\] field/) },
				{ pointer: "/search/filters/1", detail: expect.stringMatching(/"nope" is not a field/) },
				{ pointer: "/search/filters/3", detail: expect.stringMatching(/"emb" is vector\(4\)|"emb" is vector/) },
				{ pointer: "/search/vector", detail: expect.stringMatching(/"title" is string: the vector field must be a vector field/) },
			]),
		);
		expect(p.errors?.map((e) => e.pointer)).not.toContain("/search/filters/2"); // note: a string, a valid filter
		const json = { ...productSpec(), fields: { ...productSpec().fields, meta: "json" }, search: { filters: ["meta"] } };
		const q = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json }), 400);
		expect(q.errors).toEqual([{ pointer: "/search/filters/0", detail: expect.stringMatching(/"meta" is json/) }]);
		const extra = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json: productSpec({ text: ["title"], facets: ["category"] }) }), 400);
		expect(extra.errors?.map((e) => e.pointer)).toEqual(["/search/facets"]);
	});

	it("refuses filter fields named like a filter's own words (and, or, _score): they could never be filtered or sorted by", async () => {
		const spec = { key: "sku", fields: { and: "string", or: "int", _score: "float", ok: "bool" }, search: { filters: ["ok", "and", "or", "_score"] } };
		const p = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json: spec }), 400);
		expect(p.errors).toEqual([
			{ pointer: "/search/filters/1", detail: expect.stringMatching(/"and" .*filter/) },
			{ pointer: "/search/filters/2", detail: expect.stringMatching(/"or" .*filter/) },
			{ pointer: "/search/filters/3", detail: expect.stringMatching(/"_score" .*sort/) },
		]);
		// As text fields they are harmless: only filters and sorts name fields by those words.
		await createDataset({ key: "sku", fields: { and: "string" }, search: { text: ["and"] } } as never);
	});

	it("is stored and shown with the spec", async () => {
		const ds = await createDataset(productSpec({ text: ["title"], vector: "emb" }) as never);
		const spec = await expectJson<{ search: unknown }>(await call("GET", `/v1/datasets/${ds}`), 200);
		expect(spec.search).toEqual({ text: ["title"], vector: "emb" });
	});

	it("a dataset without one is not searchable (400), and an unknown dataset is a 404", async () => {
		const ds = await createDataset(productSpec(null) as never);
		const p = await expectProblem(await search(ds, { q: "red" }), 400);
		expect(p.detail).toMatch(/not searchable/);
		expect((await indexStatus(ds)).status).toBe("none");
		await expectProblem(await search(uniqueName("missing"), { q: "red" }), 404);
	});
});

describe("queries against a brute-force oracle", () => {
	let ds = "";
	let products: Product[] = [];
	beforeAll(async () => {
		ds = await createDataset(productSpec() as never);
		products = makeProducts(160);
		// A word with diacritics, and one product with no text at all.
		products.push({ sku: "z_cafe", title: "Café Crème", category: "a", price: 3.5, stock: 1, active: true, emb: [1, 0, 0, 0] });
		products.push({ sku: "z_blank", category: "b" });
		await importProducts(ds, products);
		const status = await waitIndexReady(ds);
		expect(status.docs).toBe(products.length);
	});

	it("text: exactly the docs holding every word (any case, any diacritics), best BM25 first", async () => {
		for (const q of ["red", "red shoe", "SALE", "wool coat hat", "cafe", "crème", "nothing-here"]) {
			const hits = await searchAll(ds, { q, limit: 100 });
			const want = products.filter((p) => matchesText(p, q)).map((p) => p.sku);
			expect(sorted(keysOf(hits)), `q=${q}`).toEqual(sorted(want));
			for (let i = 1; i < hits.length; i++) expect((hits[i - 1] as Hit).score).toBeGreaterThanOrEqual((hits[i] as Hit).score);
		}
		expect((await searchOk(ds, { q: "red" })).hits.every((h) => h.score > 0)).toBe(true);
	});

	it("filters: exactly the docs the oracle passes, in key order when no sort is given", async () => {
		const filters: Record<string, unknown>[] = [
			{ price: { lt: 20 } },
			{ price: { gte: 10, lte: 50 }, category: { in: ["a", "b"] } },
			{ category: "c" },
			{ category: { ne: "c" } },
			{ stock: { gt: 10 }, active: true },
			{ active: { eq: false } },
			{ active: { in: [true] } },
			{ tags: { contains: "sale" } },
			{ tags: { exists: false } },
			{ price: { exists: false } },
			{ or: [{ price: { lt: 5 } }, { and: [{ category: "d" }, { stock: { lte: 3 } }] }] },
			{ or: [{ tags: { contains: "new" } }, { tags: { contains: "red" } }], active: { ne: true } },
			{ category: { in: ["a", "zzz"] }, price: { gt: 1000 } },
			{},
		];
		for (const filter of filters) {
			const hits = await searchAll(ds, { filter, limit: 100 });
			const want = products.filter((p) => matchesFilter(p, filter)).map((p) => p.sku);
			expect(keysOf(hits), JSON.stringify(filter)).toEqual(sorted(want));
			expect(hits.every((h) => h.score === 0)).toBe(true);
		}
	});

	it("sorts by filter fields (null lowest, ties by key), and text with filters and sorts", async () => {
		const byPrice = await searchAll(ds, { sort: "-price", limit: 50 });
		expect(keysOf(byPrice)).toEqual(sortBy(products, [{ field: "price", desc: true }]).map((p) => p.sku));
		const two = await searchAll(ds, { filter: { category: { in: ["a", "b"] } }, sort: [{ field: "stock" }, { field: "price", order: "desc" }], limit: 100 });
		expect(keysOf(two)).toEqual(
			sortBy(
				products.filter((p) => p.category === "a" || p.category === "b"),
				[
					{ field: "stock", desc: false },
					{ field: "price", desc: true },
				],
			).map((p) => p.sku),
		);
		const textFilter = { q: "red", filter: { price: { lt: 60 } }, sort: ["stock"] };
		const hits = await searchAll(ds, { ...textFilter, limit: 100 });
		const want = sortBy(
			products.filter((p) => matchesText(p, "red") && matchesFilter(p, textFilter.filter)),
			[{ field: "stock", desc: false }],
		);
		expect(keysOf(hits).length).toBe(want.length);
		// Ties on stock are broken by score, then key: check the stock order and the set.
		expect(hits.map((h) => h.value?.stock ?? null)).toEqual(want.map((p) => p.stock ?? null));
		expect(sorted(keysOf(hits))).toEqual(sorted(want.map((p) => p.sku)));
		expect(hits.every((h) => h.score > 0)).toBe(true);
	});

	it("vector: exact cosine k-nearest neighbours, by a value or by a record's own vector, within filters", async () => {
		for (const q of [
			[1, 0, 0, 0],
			[0.3, -0.2, 0.9, 0.1],
			[-1, -1, 1, 0.5],
		]) {
			const res = await searchOk(ds, { vector: { value: q, k: 12 }, limit: 12 });
			const want = nearest(products, q, 12);
			expect(keysOf(res.hits)).toEqual(want.map((w) => w.sku));
			for (const [i, h] of res.hits.entries()) expect(h.score).toBeCloseTo((want[i] as { score: number }).score, 4);
		}
		const self = products.find((p) => p.emb && p.sku !== "z_cafe") as Product;
		const byKey = await searchOk(ds, { vector: { key: self.sku, k: 5 }, limit: 5 });
		expect(keysOf(byKey.hits)).toEqual(
			nearest(
				products.filter((p) => p.sku !== self.sku),
				self.emb as number[],
				5,
			).map((w) => w.sku),
		);
		const filter = { category: { in: ["a", "c"] }, price: { lt: 70 } };
		const within = await searchAll(ds, { vector: { value: [0.5, 0.5, -0.5, 0], k: 30 }, filter, limit: 7 });
		expect(keysOf(within)).toEqual(
			nearest(
				products.filter((p) => matchesFilter(p, filter)),
				[0.5, 0.5, -0.5, 0],
				30,
			).map((w) => w.sku),
		);
	});

	it("hybrid: the text and vector rankings fused by reciprocal rank (k = 60)", async () => {
		const q = "red";
		const value = [0.2, 0.9, -0.1, 0.4];
		const text = await searchAll(ds, { q, limit: 100 });
		const vector = await searchAll(ds, { vector: { value, k: 40 }, limit: 100 });
		const fused = new Map<string, number>();
		for (const ranking of [text, vector]) for (const [i, h] of ranking.entries()) fused.set(h.key, (fused.get(h.key) ?? 0) + 1 / (60 + i + 1));
		const hits = await searchAll(ds, { q, vector: { value, k: 40 }, limit: 100 });
		expect(sorted(keysOf(hits))).toEqual(sorted([...fused.keys()]));
		for (const h of hits) expect(h.score).toBeCloseTo(fused.get(h.key) as number, 5);
		for (let i = 1; i < hits.length; i++) expect((hits[i - 1] as Hit).score).toBeGreaterThanOrEqual((hits[i] as Hit).score);
	});

	it("hybrid by a record's own vector leaves the record out of the results, though its text matches", async () => {
		const self = products.find((p) => p.emb && matchesText(p, "red")) as Product;
		const text = (await searchAll(ds, { q: "red", limit: 100 })).filter((h) => h.key !== self.sku);
		const vector = await searchAll(ds, { vector: { key: self.sku, k: 40 }, limit: 100 });
		const fused = new Map<string, number>();
		for (const ranking of [text, vector]) for (const [i, h] of ranking.entries()) fused.set(h.key, (fused.get(h.key) ?? 0) + 1 / (60 + i + 1));
		const hits = await searchAll(ds, { q: "red", vector: { key: self.sku, k: 40 }, limit: 100 });
		expect(keysOf(hits)).not.toContain(self.sku);
		expect(sorted(keysOf(hits))).toEqual(sorted([...fused.keys()]));
		for (const h of hits) expect(h.score).toBeCloseTo(fused.get(h.key) as number, 5);
	});

	it("highlights mark the matched words in each text field (string[] fields: the matching items)", async () => {
		const res = await searchOk(ds, { q: "sale", highlight: true, limit: 100 });
		expect(res.hits.length).toBeGreaterThan(0);
		for (const h of res.hits) {
			const p = products.find((x) => x.sku === h.key) as Product;
			const marks = h.highlights as Record<string, string | string[]>;
			if (p.title?.split(" ").includes("sale")) expect(marks.title).toBe(p.title.replaceAll(/\bsale\b/g, "<mark>sale</mark>"));
			else expect(marks.title).toBeUndefined();
			if (p.tags?.includes("sale")) expect(marks.tags).toEqual(p.tags.filter((t) => t === "sale").map(() => "<mark>sale</mark>"));
		}
		const cafe = await searchOk(ds, { q: "cafe", highlight: true });
		expect(cafe.hits[0]?.highlights).toEqual({ title: "<mark>Café</mark> Crème" });
		expect((await searchOk(ds, { filter: { category: "a" }, highlight: true })).hits[0]?.highlights).toBeUndefined();
	});

	it("hits carry values and freshness like any read: projection, event_time, age_ms, max_staleness", async () => {
		const res = await searchOk(ds, { q: "cafe", fields: ["title", "price"] });
		expect(res.hits).toEqual([
			{
				key: "z_cafe",
				score: expect.any(Number),
				status: "present",
				value: { title: "Café Crème", price: 3.5 },
				event_time: expect.any(String),
				age_ms: expect.any(Number),
			},
		]);
		expect(res.hits[0]?.age_ms).toBeGreaterThanOrEqual(59_000);
		expect(res.took_ms).toEqual(expect.any(Number));
		const stale = await searchOk(ds, { q: "cafe", max_staleness: 1, if_stale: "omit" });
		expect(stale.hits).toEqual([expect.objectContaining({ key: "z_cafe", status: "stale", value: null })]);
		const r = await search(ds, { q: "cafe" });
		expect(r.headers.get("x-hotpath-tier")).toMatch(/^(l0|redis|kv|d1)(,(l0|redis|kv|d1))*$/);
		expect(r.headers.get("server-timing")).toMatch(/search;dur=/);
		expect(r.headers.get("cache-control")).toBe("no-store");
	});
});

describe("the index follows writes", () => {
	it("updates, deletes and new records are searchable once the consumer applied them", async () => {
		const ds = await createDataset(productSpec() as never);
		const products = makeProducts(40, 11);
		await importProducts(ds, products);
		await waitIndexReady(ds);
		const red = products.filter((p) => matchesText(p, "red"));
		const [gone, changed] = red;
		if (!gone || !changed) throw new Error("fixture: too few red products");
		await postEvents([
			{ dataset: ds, key: gone.sku, op: "delete" },
			{ dataset: ds, key: changed.sku, op: "upsert", value: { title: "zebra", price: 1234.5, category: "z", emb: [0, 0, 0, 1] } },
			{ dataset: ds, key: "fresh", op: "upsert", value: { title: "zebra red", price: 1, category: "z" } },
		]);
		await waitForD1(ds, gone.sku, (r) => r.value === null);
		await waitForD1(ds, changed.sku, (r) => r.rev >= 2);
		await waitForD1(ds, "fresh");
		const want = [...red.filter((p) => p !== gone && p !== changed).map((p) => p.sku), "fresh"];
		// Within the freshness bound: the index write lands right after D1's commit, before the consumer acks.
		await eventually(async () => (sorted(keysOf(await searchAll(ds, { q: "red", limit: 100 }))).join() === sorted(want).join() ? true : undefined), {
			timeoutMs: 5000,
			what: "the index to follow the writes",
		});
		expect(sorted(keysOf((await searchOk(ds, { q: "zebra" })).hits))).toEqual(sorted([changed.sku, "fresh"]));
		expect(keysOf((await searchOk(ds, { filter: { category: "z" }, sort: "-price" })).hits)).toEqual([changed.sku, "fresh"]);
		expect((await searchOk(ds, { vector: { value: [0, 0, 0, 1], k: 1 } })).hits[0]?.key).toBe(changed.sku);
		expect(keysOf(await searchAll(ds, { filter: {}, limit: 100 }))).not.toContain(gone.sku);
	});
});

describe("paging", () => {
	it("pages through every hit once, for text, filter, sort, vector and hybrid queries", async () => {
		const ds = await createDataset(productSpec() as never);
		const products = makeProducts(120, 3);
		await importProducts(ds, products);
		await waitIndexReady(ds);
		const queries: [Record<string, unknown>, string[]][] = [
			[{ q: "red" }, products.filter((p) => matchesText(p, "red")).map((p) => p.sku)],
			[{ filter: { price: { lt: 70 } } }, products.filter((p) => matchesFilter(p, { price: { lt: 70 } })).map((p) => p.sku)],
			[{ sort: "-stock" }, products.map((p) => p.sku)],
			[{ vector: { value: [1, 1, 0, 0], k: 50 } }, nearest(products, [1, 1, 0, 0], 50).map((w) => w.sku)],
		];
		for (const [query, want] of queries) {
			const one = await searchAll(ds, { ...query, limit: 100 });
			const paged = await searchAll(ds, { ...query, limit: 7 });
			expect(keysOf(paged), JSON.stringify(query)).toEqual(keysOf(one));
			expect(sorted(keysOf(paged))).toEqual(sorted(want));
		}
	});

	it("has no duplicates and no gaps under writes between pages: re-ranked, re-sorted, deleted and new docs", async () => {
		const ds = await createDataset(productSpec() as never);
		const products = makeProducts(100, 5);
		await importProducts(ds, products);
		await waitIndexReady(ds);
		const first = await searchOk(ds, { sort: "price", limit: 10 });
		const served = new Set(keysOf(first.hits));
		const rest = sortBy(products, [{ field: "price", desc: false }])
			.map((p) => p.sku)
			.filter((k) => !served.has(k));
		// Before the second page: a doc not served yet is deleted, two move to the front of the sort,
		// a served one moves to the back, and new docs that would sort first arrive.
		const deleted = rest[5] as string;
		const moved = [rest[20], rest[40]] as string[];
		await importProducts(
			ds,
			[
				...moved.map((sku) => ({ sku, price: -1 })),
				{ sku: [...served][0] as string, price: 99_999 },
				{ sku: "new1", price: -5 },
				{ sku: "new2", price: -6 },
			].map((p) => p as Product),
			Date.now(),
		);
		await call("POST", `/v1/datasets/${ds}/import`, { json: [{ sku: deleted, _op: "delete" }] });
		const hits = [...first.hits];
		let cursor = first.next_cursor;
		while (cursor) {
			const page = await searchOk(ds, { sort: "price", limit: 10, cursor });
			hits.push(...page.hits);
			cursor = page.next_cursor;
		}
		const keys = keysOf(hits);
		expect(new Set(keys).size).toBe(keys.length);
		const everyThroughout = products.map((p) => p.sku).filter((k) => k !== deleted);
		expect(sorted(keys)).toEqual(sorted(everyThroughout));
		expect(keys).not.toContain("new1");
		// The second and later pages read values fresh: a moved doc shows its new price at its old place.
		expect(hits.find((h) => h.key === moved[0])?.value?.price).toBe(-1);
	});

	it("a cursor holds at most the first 1,000 hits of a query", async () => {
		const ds = await createDataset(productSpec({ filters: ["stock"] }) as never);
		const rows = Array.from({ length: 1100 }, (_, i) => ({ sku: `k${String(i).padStart(5, "0")}`, stock: i }));
		await importProducts(ds, rows);
		await waitIndexReady(ds);
		const all = await searchAll(ds, { filter: { stock: { gte: 0 } }, limit: 100 });
		expect(all.length).toBe(1000);
		expect(all.at(-1)?.key).toBe("k00999");
	});
});

describe("a changed search spec re-indexes in the background", () => {
	it("reports progress, serves the old index meanwhile, then the new one; removing search drops the index", async () => {
		const spec = productSpec({ text: ["title"] });
		const ds = await createDataset(spec as never);
		const products = makeProducts(1200, 9);
		await importProducts(ds, products);
		const first = await waitIndexReady(ds);
		expect(first).toMatchObject({ status: "ready", docs: 1200, indexed: 1200, total: 1200 });
		const redBefore = await searchAll(ds, { q: "red", limit: 100 });

		const updated = await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: productSpec({ text: ["title", "tags"], filters: ["price"] }) }), 200);
		expect(updated).toMatchObject({ search: { text: ["title", "tags"], filters: ["price"] } });
		const building = await indexStatus(ds);
		expect(building).toMatchObject({ status: "building", total: 1200 });
		expect(Date.parse(building.started_at as string)).toBeGreaterThan(Date.parse(first.started_at as string));
		// Meanwhile: queries answer from the previous generation, which does not have the new filter yet.
		expect(sorted(keysOf(await searchAll(ds, { q: "red", limit: 100 })))).toEqual(sorted(keysOf(redBefore)));
		const p = await expectProblem(await search(ds, { filter: { price: { lt: 10 } } }), 400);
		expect(p.errors).toEqual([{ pointer: "/filter/price", detail: expect.stringMatching(/being built/) }]);

		const seen: number[] = [];
		const done = await eventually(
			async () => {
				const s = await indexStatus(ds);
				seen.push(s.indexed);
				return s.status === "ready" ? s : undefined;
			},
			{ timeoutMs: 30_000, intervalMs: 100, what: "the re-index" },
		);
		expect(done).toMatchObject({ status: "ready", docs: 1200, indexed: 1200, total: 1200 });
		expect(seen).toEqual([...seen].sort((a, b) => a - b));
		const cheap = await searchAll(ds, { filter: { price: { lt: 10 } }, limit: 100 });
		expect(keysOf(cheap)).toEqual(sorted(products.filter((p) => matchesFilter(p, { price: { lt: 10 } })).map((p) => p.sku)));
		const redNow = await searchAll(ds, { q: "red", limit: 100 });
		expect(sorted(keysOf(redNow))).toEqual(sorted(products.filter((p) => matchesText(p, "red")).map((p) => p.sku)));

		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: { ...spec, search: undefined } }), 200);
		expect((await indexStatus(ds)).status).toBe("none");
		await expectProblem(await search(ds, { q: "red" }), 400);
	});

	it("POST .../search/reindex rebuilds into a new generation; a cursor of the old one is refused", async () => {
		const ds = await createDataset(productSpec() as never);
		await importProducts(ds, makeProducts(30, 2));
		await waitIndexReady(ds);
		const page = await searchOk(ds, { filter: {}, limit: 5 });
		const started = await expectJson<{ status: string }>(await call("POST", `/v1/datasets/${ds}/search/reindex`), 202);
		expect(started.status).toBe("building");
		await waitIndexReady(ds);
		const p = await expectProblem(await search(ds, { filter: {}, limit: 5, cursor: page.next_cursor }), 409);
		expect(p.detail).toMatch(/rebuilt/);
		expect(keysOf((await searchOk(ds, { filter: {}, limit: 5 })).hits)).toEqual(keysOf(page.hits));
	});
});

describe("OpenAPI", () => {
	it("documents the search routes with their body schema", async () => {
		const doc = await expectJson<{ paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } }>(
			await call("GET", "/openapi.json", { key: null }),
			200,
		);
		expect(Object.keys(doc.paths["/v1/datasets/{name}/search"] ?? {}).sort()).toEqual(["get", "post"]);
		expect(Object.keys(doc.paths["/v1/datasets/{name}/search/reindex"] ?? {})).toEqual(["post"]);
		expect(doc.components.schemas.SearchQuery).toBeDefined();
	});
});
