/**
 * Search against bad and hostile input: unknown fields and operators named by JSON pointers,
 * FTS5 syntax in the text, huge and deeply nested filters, bad vectors, forged cursors and
 * oversized bodies are all 4xx, never 5xx; and keys see only their datasets.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, createKey, expectProblem, uniqueName } from "./helpers";
import { importProducts, makeProducts, matchesText, type Product, productSpec, search, searchAll, searchOk, waitIndexReady } from "./search-oracle";

let ds = "";
let products: Product[] = [];

beforeAll(async () => {
	ds = await createDataset(productSpec() as never);
	products = makeProducts(60, 13);
	await importProducts(ds, products);
	await waitIndexReady(ds);
});

/** A 4xx problem+json, whatever the exact status. */
async function expect4xx(res: Response): Promise<{ status: number; errors?: { pointer: string; detail: string }[]; detail: string }> {
	const text = await res.text();
	expect(res.status, `expected a 4xx, got ${res.status}: ${text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
	expect(res.status, text.slice(0, 300)).toBeLessThan(500);
	expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
	return JSON.parse(text);
}

describe("null members", () => {
	it("mean not given, as in POST /v1/lookup and GraphQL: a client's None is not a 400", async () => {
		const word = ((products[0] as Product).title ?? "shoe").split(" ")[0] as string;
		const plain = await searchOk(ds, { q: word, limit: 5 });
		const nulls = await searchOk(ds, {
			q: word,
			limit: 5,
			filter: null,
			sort: null,
			vector: null,
			cursor: null,
			fields: null,
			highlight: null,
			max_staleness: null,
			if_stale: null,
		});
		expect(nulls.hits.map((h) => h.key)).toEqual(plain.hits.map((h) => h.key));
		expect(nulls.next_cursor === null).toBe(plain.next_cursor === null);
		// The vector's members too: a key given, its value null.
		const byKey = await searchOk(ds, { vector: { key: products[0]?.sku, k: 3 }, limit: 3 });
		const byKeyNulls = await searchOk(ds, { vector: { key: products[0]?.sku, value: null, k: null }, limit: 3, q: null });
		expect(byKeyNulls.hits.map((h) => h.key)).toEqual(byKey.hits.slice(0, 3).map((h) => h.key));
		// A cursor continues the query it came from, whether the first page's members were null or absent.
		if (plain.next_cursor) expect((await searchOk(ds, { q: word, limit: 5, cursor: plain.next_cursor, filter: null })).hits.length).toBeGreaterThan(0);
	});
});

describe("unknown fields and operators", () => {
	it("are 400s naming each with a JSON pointer into the body", async () => {
		const p = await expectProblem(
			await search(ds, {
				filter: { nope: { eq: 1 }, price: { like: 2, lt: 5 }, "we/ird~": 1, or: [{ stock: { gt: 1 } }, { tags: { lt: "a" } }, { active: { gt: true } }] },
				sort: ["nope", "tags"],
				fields: ["title", "nope"],
			}),
			400,
		);
		expect(p.errors).toEqual([
			{ pointer: "/filter/nope", detail: expect.stringMatching(/"nope" is not a filter field .* its filter fields are category, price, stock, active, tags/) },
			{ pointer: "/filter/price/like", detail: expect.stringMatching(/unknown operator "like"; operators are eq, ne, lt, lte, gt, gte, in, contains, exists/) },
			{ pointer: "/filter/we~1ird~0", detail: expect.stringMatching(/"we\/ird~" is not a filter field/) },
			{ pointer: "/filter/or/1/tags/lt", detail: '"lt" does not apply to a string[] field; it takes contains, exists' },
			{ pointer: "/filter/or/2/active/gt", detail: '"gt" does not apply to a bool field; it takes eq, ne, in, exists' },
			{ pointer: "/sort/0", detail: expect.stringMatching(/"nope" is not a filter field/) },
			{ pointer: "/sort/1", detail: expect.stringMatching(/string\[\] field: it filters \(contains\) but does not sort/) },
			{ pointer: "/fields/1", detail: expect.stringMatching(/unknown field "nope"/) },
		]);
	});

	it("a bare null (no value to compare with) is a 400 that says how to ask for a missing value", async () => {
		const p = await expectProblem(await search(ds, { filter: { price: null } }), 400);
		expect(p.errors).toEqual([
			{ pointer: "/filter/price", detail: expect.stringMatching(/^null is no value to compare with: \{"exists": false\} matches a missing value/) },
		]);
	});

	it("a filter field named __proto__ is unknown like any other: a 400 naming it, not silently dropped", async () => {
		// JSON.parse makes "__proto__" an own property; copying the filter into a new object would lose it.
		const body = '{"filter": {"__proto__": {"eq": 1}}, "limit": 1}';
		const p = await expectProblem(await call("POST", `/v1/datasets/${ds}/search`, { body, headers: { "content-type": "application/json" } }), 400);
		expect(p.errors).toEqual([{ pointer: "/filter/__proto__", detail: expect.stringMatching(/"__proto__" is not a filter field/) }]);
		const arr = await expectProblem(await search(ds, { filter: [] }), 400);
		expect(arr.errors?.map((e) => e.pointer)).toEqual(["/filter"]);
	});

	it("operands of the wrong type, and top-level properties the body does not have, are 400s", async () => {
		const p = await expectProblem(
			await search(ds, { filter: { price: { lt: "cheap" }, category: { in: ["a", 3] }, active: "yes", stock: { exists: 1 }, tags: { contains: 5 } } }),
			400,
		);
		expect(p.errors?.map((e) => e.pointer)).toEqual([
			"/filter/price/lt",
			"/filter/category/in/1",
			"/filter/active/eq",
			"/filter/stock/exists",
			"/filter/tags/contains",
		]);
		const q = await expectProblem(await search(ds, { q: "red", query: "red" }), 400);
		expect(q.errors?.[0]?.pointer).toBe("/query");
		await expectProblem(await search(ds, { sort: "-_score" }), 400);
		await expectProblem(await search(ds, { vector: { value: [1, 0, 0, 0] }, sort: "price" }), 400);
	});

	it("an int field compared for equality with what no int can be (1.5, 2^53) is a 400, as the same value written to it would be; ranges take any number", async () => {
		const p = await expectProblem(
			await search(ds, { filter: { stock: { eq: 1.5 }, or: [{ stock: { in: [1, 2.5] } }, { stock: { ne: 2 ** 53 } }, { stock: 3.25 }] } }),
			400,
		);
		expect(p.errors?.map((e) => e.pointer)).toEqual(["/filter/stock/eq", "/filter/or/0/stock/in/1", "/filter/or/1/stock/ne", "/filter/or/2/stock/eq"]);
		expect(p.errors?.[0]?.detail).toMatch(/integer/);
		const range = await searchOk(ds, { filter: { stock: { lt: 2.5, gte: -0.5 } }, limit: 100 });
		expect(range.hits.map((h) => h.key)).toEqual(
			products
				.filter((x) => typeof x.stock === "number" && x.stock < 2.5 && x.stock >= 0)
				.map((x) => x.sku)
				.sort(),
		);
	});

	it("text or vector on a dataset without such fields is a 400 saying so", async () => {
		const plain = await createDataset(productSpec({ filters: ["price"] }) as never);
		expect((await expectProblem(await search(plain, { q: "red" }), 400)).errors?.[0]).toEqual({
			pointer: "/q",
			detail: expect.stringMatching(/no text fields/),
		});
		expect((await expectProblem(await search(plain, { vector: { value: [1, 0, 0, 0] } }), 400)).errors?.[0]).toEqual({
			pointer: "/vector",
			detail: expect.stringMatching(/no vector field/),
		});
	});
});

describe("hostile text", () => {
	it("FTS5 syntax is never syntax: quotes, NEAR(, *, ^, column filters, operators are plain words or separators", async () => {
		const attempts = [
			'"',
			'red"',
			'"red',
			"NEAR(red shoe",
			"NEAR(red, shoe)",
			"red*",
			"*",
			"^red",
			"title:red",
			"tags:sale",
			"{title tags}:red",
			"red AND NOT shoe",
			"red OR blue",
			"- red",
			"red +shoe",
			"(red",
			"red)",
			"'); DROP TABLE x; --",
			"\u0000red",
			"red\u2029shoe",
			"🔥 red",
			"r".repeat(1000),
		];
		for (const q of attempts) {
			const res = await search(ds, { q, limit: 100 });
			if (res.status !== 200) {
				await expect4xx(res);
				continue;
			}
			const body = (await res.json()) as { hits: { key: string }[]; next_cursor: string | null };
			// Whatever came back is exactly what the words of q find (all of them, as plain words).
			const all = body.next_cursor ? await searchAll(ds, { q, limit: 100 }) : body.hits;
			const words = q.match(/[\p{L}\p{N}]+/gu)?.join(" ") ?? "";
			const want = products.filter((p) => matchesText(p, words)).map((p) => p.sku);
			expect(all.map((h) => h.key).sort(), `q=${JSON.stringify(q)}`).toEqual(want.sort());
		}
	});

	it("a word finds the docs holding it in any Unicode compatibility form: full-width, half-width kana, ligatures, super- and subscripts", async () => {
		const own = await createDataset(productSpec() as never);
		const docs: Product[] = [
			{ sku: "wide", title: "ＰＣ ｶﾀｶﾅ ﬁle x²" },
			{ sku: "plain", title: "PC カタカナ file x2" },
		];
		await importProducts(own, docs);
		await waitIndexReady(own);
		// The query is folded to compatibility form (NFKC), so the indexed text must be too: else
		// a word copied from a record finds the other record and never its own.
		for (const q of ["ＰＣ", "PC", "ｶﾀｶﾅ", "カタカナ", "ﬁle", "file", "x²", "x2"]) {
			const body = await searchOk(own, { q });
			expect(body.hits.map((h) => h.key).sort(), `q=${q}`).toEqual(["plain", "wide"]);
		}
	});

	it("text without a word, too long, or with too many words is a 400 at /q", async () => {
		for (const q of ['"', "*", "^:()", ""]) expect((await expectProblem(await search(ds, { q }), 400)).errors?.[0]?.pointer).toBe("/q");
		expect((await expectProblem(await search(ds, { q: "a".repeat(1001) }), 400)).errors?.[0]?.pointer).toBe("/q");
		expect((await expectProblem(await search(ds, { q: Array.from({ length: 33 }, (_, i) => `w${i}`).join(" ") }), 400)).errors?.[0]?.pointer).toBe("/q");
	});
});

describe("hostile filters", () => {
	it("a huge in list is a 400 (or 413 past the body limit), never a 5xx", async () => {
		const p = await expectProblem(await search(ds, { filter: { category: { in: Array.from({ length: 1001 }, (_, i) => `c${i}`) } } }), 400);
		expect(p.errors).toEqual([{ pointer: "/filter/category/in", detail: "in takes at most 1000 values, not 1001" }]);
		const ok = await searchOk(ds, { filter: { category: { in: Array.from({ length: 1000 }, (_, i) => (i === 999 ? "a" : `c${i}`)) } } });
		expect(ok.hits.length).toBeGreaterThan(0);
		await expectProblem(await search(ds, { filter: { category: { in: Array.from({ length: 100_000 }, (_, i) => `category-${i}`) } } }), 413);
		await expect4xx(await search(ds, { filter: { category: { in: [] } } }));
	});

	it("deep nesting and too many conditions are 400s, however deep the JSON", async () => {
		const nest = (depth: number): Record<string, unknown> => {
			let f: Record<string, unknown> = { price: { lt: 10 } };
			for (let i = 0; i < depth; i++) f = { and: [f] };
			return f;
		};
		await searchOk(ds, { filter: nest(7) });
		const p = await expectProblem(await search(ds, { filter: nest(8) }), 400);
		expect(p.errors?.[0]?.detail).toMatch(/nest at most 8 levels/);
		// 20,000 levels of JSON, within the body limit: never parsed recursively.
		const deep = `{"filter":${'{"or":['.repeat(20_000)}{}${"]}".repeat(20_000)}}`;
		await expect4xx(await call("POST", `/v1/datasets/${ds}/search`, { body: deep, headers: { "content-type": "application/json" } }));
		const many = { or: Array.from({ length: 65 }, (_, i) => ({ stock: { eq: i } })) };
		expect((await expectProblem(await search(ds, { filter: many }), 400)).errors?.[0]?.detail).toMatch(/at most 64 conditions/);
		// (filter: null is no filter: see "null members".)
		for (const filter of [[], "x", 5, { or: "x" }, { and: [] }, { price: null }, { price: {} }, { price: [1] }]) {
			await expect4xx(await search(ds, { filter }));
		}
	});

	it("a body past the limit is a 413 before it is read; malformed JSON is a 400", async () => {
		await expectProblem(
			await call("POST", `/v1/datasets/${ds}/search`, { body: `{"q":"${"a".repeat(300 * 1024)}"}`, headers: { "content-type": "application/json" } }),
			413,
		);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/search`, { body: "{q:", headers: { "content-type": "application/json" } }), 400);
	});
});

describe("bad vectors", () => {
	it("the wrong dimension, NaN, Infinity, a zero vector or a bad k are 400s at /vector", async () => {
		const cases: [unknown, string][] = [
			[{ value: [1, 2, 3] }, "/vector/value"],
			[{ value: [1, 2, 3, 4, 5] }, "/vector/value"],
			[{ value: [0, 0, 0, 0] }, "/vector/value"],
			[{ value: [1e39, 0, 0, 0] }, "/vector/value"],
			[{ value: [1, 0, 0, 0], key: "p0001" }, "/vector"],
			[{}, "/vector"],
			[{ value: [1, 0, 0, 0], k: 0 }, "/vector/k"],
			[{ value: [1, 0, 0, 0], k: 5000 }, "/vector/k"],
			[{ value: ["1", 0, 0, 0] }, "/vector/value/0"],
			[{ value: [1, 0, 0, 0], extra: true }, "/vector/extra"],
		];
		for (const [vector, pointer] of cases) {
			const p = await expectProblem(await search(ds, { vector }), 400);
			expect(
				p.errors?.map((e) => e.pointer),
				JSON.stringify(vector),
			).toContain(pointer);
		}
		for (const raw of ['{"vector":{"value":[NaN,0,0,0]}}', '{"vector":{"value":[1e999,0,0,0]}}', '{"vector":{"value":[Infinity,0,0,0]}}']) {
			await expect4xx(await call("POST", `/v1/datasets/${ds}/search`, { body: raw, headers: { "content-type": "application/json" } }));
		}
		const many = Array.from({ length: 4097 }, () => 1);
		await expectProblem(await search(ds, { vector: { value: many } }), 400);
	});

	it("vector.key of no record is a 404; of a record without a vector a 400", async () => {
		await expectProblem(await search(ds, { vector: { key: "no-such-key" } }), 404);
		const bare = products.find((p) => !p.emb) as Product;
		expect((await expectProblem(await search(ds, { vector: { key: bare.sku } }), 400)).errors).toEqual([
			{ pointer: "/vector/key", detail: "the record has no vector" },
		]);
	});
});

describe("cursors and limits", () => {
	it("a forged, truncated or foreign cursor is a 400; limits outside 1-100 are 400s", async () => {
		const page = await searchOk(ds, { filter: {}, limit: 5 });
		const cursor = page.next_cursor as string;
		for (const bad of ["", "!!!", "AAAA", cursor.slice(0, -3), `${cursor}AAAA`, "x".repeat(40)]) {
			const p = await expectProblem(await search(ds, { filter: {}, limit: 5, cursor: bad }), 400);
			expect(p.errors?.[0]?.pointer).toBe("/cursor");
		}
		const foreign = await expectProblem(await search(ds, { filter: { price: { lt: 50 } }, limit: 5, cursor }), 400);
		expect(foreign.detail).toMatch(/another query/);
		const other = await createDataset(productSpec() as never);
		await importProducts(other, makeProducts(10, 1));
		await waitIndexReady(other);
		await expect4xx(await search(other, { filter: {}, limit: 5, cursor }));
		for (const limit of [0, 101, 1.5, -1]) expect((await expectProblem(await search(ds, { q: "red", limit }), 400)).errors?.[0]?.pointer).toBe("/limit");
	});
});

describe("security", () => {
	it("no key is a 401; a key without the read scope a 403; the reindex needs admin", async () => {
		await expectProblem(await search(ds, { q: "red" }, null as unknown as string), 401);
		const writer = await createKey(["write"]);
		await expectProblem(await search(ds, { q: "red" }, writer.key), 403);
		await expectProblem(await call("GET", `/v1/datasets/${ds}/search`, { key: writer.key }), 403);
		const reader = await createKey(["read"]);
		expect((await search(ds, { q: "red" }, reader.key)).status).toBe(200);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/search/reindex`, { key: reader.key }), 403);
	});

	it("a key limited to other datasets cannot search this one, see its index or rebuild it (403 naming it)", async () => {
		const other = await createDataset(productSpec() as never);
		const limitedRead = await createKey(["read"], [other]);
		const p = await expectProblem(await search(ds, { q: "red" }, limitedRead.key), 403);
		expect(p.detail).toContain(ds);
		await expectProblem(await call("GET", `/v1/datasets/${ds}/search`, { key: limitedRead.key }), 403);
		const limitedAdmin = await createKey(["admin"], [other]);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/search/reindex`, { key: limitedAdmin.key }), 403);
		expect((await search(other, { filter: {} }, limitedRead.key)).status).toBe(200);
		await expectProblem(await search(uniqueName("nope"), { q: "red" }, limitedRead.key), 403);
	});
});
