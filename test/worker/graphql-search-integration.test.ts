/**
 * The `<dataset>_search` GraphQL root field: the same answers as POST /v1/datasets/:name/search
 * (text, filters, sorts, vectors, hybrid, projection, highlights, freshness options, paging, with
 * cursors that work across both APIs), its cost and limits, key scoping, and bad input as GraphQL
 * errors carrying extensions.code (and REST's JSON Pointers), never a 5xx.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { type CallOptions, call, createDataset, createKey, expectProblem } from "./helpers";
import { type Hit, importProducts, makeProducts, type Product, productSpec, type SearchBody, search, searchOk, waitIndexReady } from "./search-oracle";

interface GqlError {
	message: string;
	path?: (string | number)[];
	extensions: { code: string; errors?: { pointer: string; detail: string }[]; [k: string]: unknown };
}
interface GqlBody<T = Record<string, unknown>> {
	data?: T | null;
	errors?: GqlError[];
}

const gql = (query: string, variables?: Record<string, unknown>, opts: CallOptions = {}) => call("POST", "/graphql", { ...opts, json: { query, variables } });

/** The body of a GraphQL answer: always a 200 with JSON, whatever went wrong. */
async function gqlBody<T = Record<string, unknown>>(res: Response): Promise<GqlBody<T>> {
	const text = await res.text();
	expect(res.status, text.slice(0, 500)).toBe(200);
	return JSON.parse(text) as GqlBody<T>;
}

const FIELDS = ["title", "tags", "category", "price", "stock", "active", "note", "emb"] as const;
type Page = { hits: Hit[]; next_cursor: string | null; took_ms: number };

/** One search through GraphQL, every argument by variable (null when absent, which search takes as absent). */
const SEARCH = (
	field: string,
) => `query($q: String, $filter: JSON, $sort: [String!], $vector: SearchVector, $limit: Int, $cursor: String, $fields: [String!], $highlight: Boolean, $ms: Float, $is: IfStale) {
	r: ${field}(q: $q, filter: $filter, sort: $sort, vector: $vector, limit: $limit, cursor: $cursor, fields: $fields, highlight: $highlight, max_staleness: $ms, if_stale: $is) {
		hits { key score status event_time age_ms value { ${FIELDS.join(" ")} } highlights }
		next_cursor took_ms
	}
}`;

const variablesOf = (body: Record<string, unknown>) => ({
	q: body.q ?? null,
	filter: body.filter ?? null,
	sort: body.sort ?? null,
	vector: body.vector ?? null,
	limit: body.limit ?? null,
	cursor: body.cursor ?? null,
	fields: body.fields ?? null,
	highlight: body.highlight ?? null,
	ms: body.max_staleness ?? null,
	is: body.if_stale ?? null,
});

async function gqlSearch(ds: string, body: Record<string, unknown>, opts: CallOptions = {}): Promise<GqlBody<{ r: Page }>> {
	return gqlBody<{ r: Page }>(await gql(SEARCH(`${ds}_search`), variablesOf(body), opts));
}

async function gqlSearchOk(ds: string, body: Record<string, unknown>): Promise<Page> {
	const res = await gqlSearch(ds, body);
	expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
	return (res.data as { r: Page }).r;
}

/** A hit as both APIs can be compared: every field present (REST leaves a missing field out, GraphQL answers null), age_ms left out (it moves between two reads). */
function comparable(h: Hit) {
	const value = h.value === null ? null : Object.fromEntries(FIELDS.map((f) => [f, h.value?.[f] ?? null]));
	return { key: h.key, score: h.score, status: h.status, event_time: h.event_time, value, highlights: h.highlights ?? null };
}

let ds = "";
let plainDs = "";
let products: Product[] = [];

beforeAll(async () => {
	ds = await createDataset(productSpec() as never);
	plainDs = await createDataset(productSpec(null) as never);
	products = makeProducts(60, 23);
	products.push({ sku: "zz_far", title: "red far", emb: [0, 0, 0, 1], price: 1 });
	await importProducts(ds, products);
	await waitIndexReady(ds);
});

describe("the search field answers as REST does", () => {
	const bodies: Record<string, unknown>[] = [
		{ q: "red" },
		{ q: "red shoe", highlight: true, limit: 20 },
		{ q: "blue", fields: ["title", "price"], max_staleness: 3600, if_stale: "omit" },
		{ filter: { price: { lt: 50 }, category: { in: ["a", "b"] } }, sort: ["-price"], limit: 15 },
		{ filter: { or: [{ tags: { contains: "sale" } }, { active: false }], stock: { exists: true } }, sort: ["stock", "-price"] },
		{ filter: {}, limit: 100 },
		{ vector: { value: [1, 0, 0, 0], k: 10 }, limit: 10 },
		{ vector: { key: "zz_far" }, limit: 5 },
		{ q: "red", vector: { value: [0.2, 0.9, -0.1, 0.4] }, limit: 12 },
		{ q: "nothingmatches" },
	];
	for (const body of bodies) {
		it(`for ${JSON.stringify(body)}`, async () => {
			const [rest, graph] = await Promise.all([searchOk(ds, body), gqlSearchOk(ds, body)]);
			expect(graph.hits.map(comparable)).toEqual(rest.hits.map(comparable));
			// The same query hashes alike over either API: the same cursor.
			expect(graph.next_cursor).toBe(rest.next_cursor);
			expect(graph.took_ms).toEqual(expect.any(Number));
			if (body.q !== "nothingmatches") expect(graph.hits.length).toBeGreaterThan(0);
		});
	}

	it("pages with cursors, with no hit twice and none missed, and a cursor of either API continues on the other", async () => {
		const body = { filter: { price: { gte: 10 } }, sort: ["price"], limit: 7 };
		const all = [] as Hit[];
		let cursor: string | null = null;
		let pages = 0;
		do {
			const page: Page = await gqlSearchOk(ds, { ...body, cursor });
			all.push(...page.hits);
			cursor = page.next_cursor;
			pages++;
		} while (cursor && pages < 50);
		const want = products.filter((p) => typeof p.price === "number" && p.price >= 10).length;
		expect(pages).toBeGreaterThan(2);
		expect(all.map((h) => h.key)).toEqual([...new Set(all.map((h) => h.key))]);
		expect(all.length).toBe(want);

		const first = await gqlSearchOk(ds, body);
		const [restSecond, graphSecond] = await Promise.all([
			searchOk(ds, { ...body, cursor: first.next_cursor }),
			gqlSearchOk(ds, { ...body, cursor: first.next_cursor }),
		]);
		expect(graphSecond.hits.map(comparable)).toEqual(restSecond.hits.map(comparable));
		const restFirst = await searchOk(ds, body);
		expect((await gqlSearchOk(ds, { ...body, cursor: restFirst.next_cursor })).hits.map((h) => h.key)).toEqual(restSecond.hits.map((h) => h.key));
	});

	it("sits beside records fields in one operation", async () => {
		const res = await gqlBody<{ p: { key: string; value: { title: string | null } | null }[]; s: Page }>(
			await gql(`{ p: ${ds}(keys: ["p0001", "nope"]) { key value { title } } s: ${ds}_search(q: "red", limit: 3) { hits { key } next_cursor } }`),
		);
		expect(res.errors).toBeUndefined();
		expect(res.data?.p.map((r) => r.key)).toEqual(["p0001", "nope"]);
		expect(res.data?.s.hits.map((h) => h.key)).toEqual((await searchOk(ds, { q: "red", limit: 3 })).hits.map((h) => h.key));
	});
});

describe("limits and cost", () => {
	it("a limit outside 1-100 is BAD_USER_INPUT naming /limit, as REST's 400 does", async () => {
		for (const limit of [0, 101, 5000, -1]) {
			const res = await gqlSearch(ds, { q: "red", limit });
			expect(res.data).toBeNull();
			expect(res.errors?.[0]).toMatchObject({ path: ["r"], extensions: { code: "BAD_USER_INPUT", errors: [{ pointer: "/limit" }] } });
			const p = await expectProblem(await search(ds, { q: "red", limit }), 400);
			expect(p.errors?.map((e) => e.pointer)).toEqual(["/limit"]);
		}
	});

	it("a page counts its hits as keys: past the keys an operation may read it is TOO_COMPLEX, before anything runs", async () => {
		const fields = Array.from({ length: 11 }, (_, i) => `s${i}: ${ds}_search(q: "red", limit: 100) { hits { key } }`).join(" ");
		const res = await gqlBody(await gql(`{ ${fields} }`));
		expect(res.data).toBeUndefined();
		expect(res.errors?.[0]?.extensions.code).toBe("TOO_COMPLEX");
		expect(res.errors?.[0]?.message).toMatch(/1100 keys/);
		// With records fields: 950 keys and a default page of 10 pass the keys bound, 100 more do not.
		const keys = JSON.stringify(Array.from({ length: 950 }, (_, i) => `k${i}`));
		const over = await gqlBody(await gql(`{ ${ds}(keys: ${keys}) { key } ${ds}_search(q: "red", limit: 51) { hits { key } } }`));
		expect(over.errors?.[0]?.extensions.code).toBe("TOO_COMPLEX");
		// Cost: hits times the fields selected under the field.
		const wide = Array.from({ length: 120 }, (_, i) => `k${i}: key`).join(" ");
		const costly = await gqlBody(
			await gql(`{ ${Array.from({ length: 9 }, (_, i) => `s${i}: ${ds}_search(limit: 100) { hits { ${wide} value { ${FIELDS.join(" ")} } } }`).join(" ")} }`),
		);
		expect(costly.errors?.[0]).toMatchObject({ extensions: { code: "TOO_COMPLEX" } });
		expect(costly.errors?.[0]?.message).toMatch(/costs/);
	});
});

describe("key scoping", () => {
	it("a key limited to other datasets does not see the field; one limited to the dataset does", async () => {
		const other = await createKey(["read"], [plainDs]);
		const hidden = await gqlSearch(ds, { q: "red" }, { key: other.key });
		expect(hidden.data).toBeUndefined();
		expect(hidden.errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
		// (Its SearchVector type is not in that schema either: no dataset it sees is searchable.)
		expect(hidden.errors?.map((e) => e.message)).toContainEqual(expect.stringMatching(new RegExp(`Cannot query field "${ds}_search"`)));
		const fields = await gqlBody<{ __schema: { queryType: { fields: { name: string }[] } } }>(
			await gql("{ __schema { queryType { fields { name } } } }", undefined, { key: other.key }),
		);
		const names = fields.data?.__schema.queryType.fields.map((f) => f.name) ?? [];
		expect(names).toContain(plainDs);
		expect(names.some((n) => n.startsWith(ds))).toBe(false);

		const mine = await createKey(["read"], [ds]);
		const seen = await gqlSearch(ds, { q: "red", limit: 3 }, { key: mine.key });
		expect(seen.errors).toBeUndefined();
		expect(seen.data?.r.hits.length).toBe(3);
	});

	it("a dataset without search has no search field", async () => {
		const res = await gqlBody(await gql(`{ ${plainDs}_search(q: "red") { next_cursor } }`));
		expect(res.errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
		const t = await gqlBody<{ __type: { fields: { name: string }[] } }>(await gql('{ __type(name: "Query") { fields { name } } }'));
		expect(t.data?.__type.fields.map((f) => f.name)).toEqual(expect.arrayContaining([`${ds}_search`, plainDs, `${plainDs}_history`]));
		expect(t.data?.__type.fields.map((f) => f.name)).not.toContain(`${plainDs}_search`);
	});
});

describe("bad input", () => {
	const bad: [what: string, body: Record<string, unknown>, code: string, pointers?: string[]][] = [
		["an unknown filter field", { filter: { nope: 1 } }, "BAD_USER_INPUT", ["/filter/nope"]],
		["an unknown operator", { filter: { price: { near: 3 } } }, "BAD_USER_INPUT", ["/filter/price/near"]],
		["a filter that is not an object", { filter: "cheap" }, "BAD_USER_INPUT", ["/filter"]],
		["a filter that is a list", { filter: [1, 2] }, "BAD_USER_INPUT", ["/filter"]],
		["a json field as a filter", { filter: { note: { lt: "x" } } }, "BAD_USER_INPUT"],
		["both vector value and key", { vector: { value: [1, 0, 0, 0], key: "p0001" } }, "BAD_USER_INPUT", ["/vector"]],
		["neither vector value nor key", { vector: { k: 3 } }, "BAD_USER_INPUT", ["/vector"]],
		["a vector of the wrong dim", { vector: { value: [1, 0] } }, "BAD_USER_INPUT", ["/vector/value"]],
		["a zero vector", { vector: { value: [0, 0, 0, 0] } }, "BAD_USER_INPUT", ["/vector/value"]],
		["a vector k out of range", { vector: { value: [1, 0, 0, 0], k: 0 } }, "BAD_USER_INPUT", ["/vector/k"]],
		["an unknown vector key", { vector: { key: "no-such-product" } }, "NOT_FOUND"],
		["a vector key longer than any key", { vector: { key: "k".repeat(401) } }, "BAD_USER_INPUT", ["/vector/key"]],
		["a vector key of more than 400 bytes", { vector: { key: "é".repeat(300) } }, "BAD_USER_INPUT", ["/vector/key"]],
		["a forged cursor", { q: "red", cursor: "!!!" }, "BAD_USER_INPUT", ["/cursor"]],
		["q without words", { q: "!!! ---" }, "BAD_USER_INPUT", ["/q"]],
		["q too long", { q: "a ".repeat(600) }, "BAD_USER_INPUT", ["/q"]],
		["an unknown projection field", { q: "red", fields: ["title", "nope"] }, "BAD_USER_INPUT", ["/fields/1"]],
		["a sort by an unknown field", { sort: ["-nope"] }, "BAD_USER_INPUT"],
		["a negative max_staleness", { q: "red", max_staleness: -1 }, "BAD_USER_INPUT", ["/max_staleness"]],
	];
	for (const [what, body, code, pointers] of bad) {
		it(`${what}: ${code}, data null, as REST's 4xx`, async () => {
			const res = await gqlSearch(ds, body);
			expect(res.data).toBeNull();
			expect(res.errors).toHaveLength(1);
			const e = res.errors?.[0] as GqlError;
			expect(e.path).toEqual(["r"]);
			expect(e.extensions.code).toBe(code);
			const restRes = await search(ds, body);
			expect(restRes.status).toBeGreaterThanOrEqual(400);
			expect(restRes.status).toBeLessThan(500);
			const problem = (await restRes.json()) as { errors?: { pointer: string }[] };
			if (pointers) {
				expect(e.extensions.errors?.map((x) => x.pointer)).toEqual(pointers);
				// REST refuses some of these earlier (its body schema), with the same pointer.
				expect(problem.errors?.map((x) => x.pointer)).toEqual(pointers);
			}
		});
	}

	it("a cursor of another query is BAD_USER_INPUT; arguments of the wrong GraphQL type are refused before anything runs", async () => {
		const first = await gqlSearchOk(ds, { filter: {}, limit: 3 });
		const foreign = await gqlSearch(ds, { filter: { price: { lt: 5 } }, limit: 3, cursor: first.next_cursor });
		expect(foreign.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", errors: [{ pointer: "/cursor" }] });
		for (const vars of [{ limit: "ten" }, { vector: { value: ["x"] } }, { vector: { nope: 1 } }, { is: "always" }, { sort: [1] }]) {
			const res = await gqlBody(await gql(SEARCH(`${ds}_search`), { ...variablesOf({}), ...vars }));
			expect(res.data).toBeUndefined();
			expect(res.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
		}
		const literal = await gqlBody(await gql(`{ ${ds}_search(limit: "ten") { next_cursor } }`));
		expect(literal.errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
	});

	it("hits a searchable dataset before its index exists: an error with a code, not a 5xx", async () => {
		const fresh = await createDataset(productSpec() as never);
		const res = await gqlBody(await gql(`{ ${fresh}_search(q: "red") { next_cursor } }`));
		// The first build starts about 2 s after the PUT: until then there is no index (a conflict, as REST's 409).
		if (res.errors) expect(res.errors[0]?.extensions.code).toMatch(/^(BAD_USER_INPUT|UNAVAILABLE)$/);
		else expect((res.data as Record<string, SearchBody>)[`${fresh}_search`]?.next_cursor).toBeNull();
	});
});

describe("hostile input", () => {
	it("deeply nested filters, as a literal or a variable, are errors with a code, never a 5xx", async () => {
		for (const depth of [100, 1000, 2000, 3000, 4900]) {
			const literal = `${"{a: ".repeat(depth)}1${"}".repeat(depth)}`;
			const lit = await gqlBody(await gql(`{ ${ds}_search(filter: ${literal}) { next_cursor } }`));
			expect(lit.data ?? null).toBeNull();
			expect(lit.errors?.[0]?.extensions.code).toMatch(/^(BAD_USER_INPUT|TOO_COMPLEX)$/);
			const lists = await gqlBody(await gql(`{ ${ds}_search(sort: ${"[".repeat(depth)}"x"${"]".repeat(depth)}) { next_cursor } }`));
			expect(lists.errors?.[0]?.extensions.code).toMatch(/^(GRAPHQL_VALIDATION_FAILED|TOO_COMPLEX)$/);
			const vars = await gqlBody(
				await gql(`query($f: JSON) { ${ds}_search(filter: $f) { next_cursor } }`, { f: JSON.parse(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`) }),
			);
			expect(vars.errors?.[0]?.extensions.code).toBe("BAD_USER_INPUT");
		}
		// Deeper than JSON.stringify goes: the body written by hand.
		const deep = `${'{"and":['.repeat(20_000)}1${"]}".repeat(20_000)}`;
		const query = JSON.stringify(`query($f: JSON) { ${ds}_search(filter: $f) { next_cursor } }`);
		const res = await call("POST", "/graphql", { body: `{"query":${query},"variables":{"f":${deep}}}`, headers: { "content-type": "application/json" } });
		const text = await res.text();
		expect(res.status, text.slice(0, 300)).toBeLessThan(500);
		expect((JSON.parse(text) as GqlBody).errors?.[0]?.extensions.code).toMatch(/^(BAD_USER_INPUT|BAD_REQUEST)$/);
	});
});
