/**
 * The rendering fast path (src/graphql/render.ts), differentially: every operation is run twice
 * through runGraphql, once as the route runs it (records fields written as JSON text where the
 * operation allows) and once with `render: false` (graphql-js completing every field), and the
 * response texts must be identical, byte for byte: key order, aliases, __typename, nulls, scalars,
 * errors with their path, locations and extensions. Each case also says whether the fast path must
 * be taken, so a change that quietly narrows it (or widens it to what it cannot write) fails here.
 * Reads are stubbed with fixed record views, the same for both runs, honouring `fields` and
 * `if_stale` as the real batch does (test/worker/graphql-render-integration.test.ts does the
 * same over real tiers).
 */
import type { GraphQLSchema } from "graphql";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HotpathError } from "../../src/errors";
import type { GraphqlContext, ReadBatch, RecordRead } from "../../src/graphql/batch";
import { runGraphql } from "../../src/graphql/execute";
import { RawJson, responseJson } from "../../src/graphql/render";
import { buildSchema } from "../../src/graphql/schema";
import type { DatasetSpec, FieldSpec } from "../../src/registry/spec";
import type { RecordView } from "../../src/serving/freshness";

const users: DatasetSpec = {
	name: "users",
	key: "user_id",
	ttl_seconds: 3600,
	history_days: 7,
	fields: {
		name: { type: "string" },
		age: { type: "int" },
		score: { type: "float" },
		tags: { type: "string[]" },
		weights: { type: "float[]" },
		meta: { type: "json" },
		emb: { type: "vector", dim: 3 },
		ok: { type: "bool" },
	},
};
const plain: DatasetSpec = { name: "plain", key: "id", ttl_seconds: 3600, history_days: 7, fields: {} };
/** Field names that are also Object.prototype's: a value without them must still give null. */
const odd: DatasetSpec = {
	name: "odd",
	key: "id",
	ttl_seconds: 3600,
	history_days: 7,
	// Built from entries: TypeScript reads a `constructor` member of an object literal as Object's own.
	fields: Object.fromEntries([
		["constructor", { type: "string" }],
		["toString", { type: "int" }],
		["valueOf", { type: "json" }],
		["hasOwnProperty", { type: "bool" }],
	] satisfies [string, FieldSpec][]),
};
/** Searchable: its search field sits beside records fields (it answers UNAVAILABLE here: the stub context has no services). */
const items: DatasetSpec = {
	name: "items",
	key: "sku",
	ttl_seconds: 3600,
	history_days: 7,
	fields: { title: { type: "string" } },
	search: { text: ["title"] },
};
/** Every read of it fails as a tier outage does. */
const down: DatasetSpec = { name: "down", key: "id", ttl_seconds: 3600, history_days: 7, fields: { x: { type: "int" } } };

const views: Record<string, RecordView> = {
	// Every field, in the spec's order: spliced from the value's text.
	a: {
		key: "a",
		status: "present",
		value: {
			name: 'ada "q" \u00fc \u2028 \\ </script>',
			age: 2 ** 53 - 1,
			score: -0.5,
			tags: ["x", "y"],
			weights: [1e21, -0, 3e-7],
			meta: { n: [1, { m: null }], s: "t", __proto__x: 1, "": "" },
			emb: [0.1, -2, 3e-7],
			ok: true,
		},
		event_time: "2026-11-01T00:00:00.000Z",
		age_ms: 1234,
	},
	// Some fields missing, others null.
	b: { key: "b", status: "present", value: { score: 1, name: null, ok: false, age: -(2 ** 53 - 1) }, event_time: "2026-11-02T00:00:00.000Z", age_ms: 0 },
	// As many keys as a full selection, in another order.
	e: {
		key: "e",
		status: "present",
		value: { ok: true, name: "e", age: 1, score: 2, tags: [], weights: [], meta: null, emb: [1, 2, 3] },
		event_time: "2026-11-04T00:00:00.000Z",
		age_ms: 7,
	},
	// Stale, with its value (served unless if_stale: omit).
	s: { key: "s", status: "stale", value: { name: "old", age: 3 }, event_time: "2026-10-01T00:00:00.000Z", age_ms: 99_999_999 },
	"d\n\u00e9\"'\\": { key: "d\n\u00e9\"'\\", status: "not_found", value: null, event_time: null, age_ms: null },
	p: { key: "p", status: "present", value: { anything: [1, "two", { three: 3 }] }, event_time: "2026-11-03T00:00:00.000Z", age_ms: 5 },
	o1: { key: "o1", status: "present", value: {}, event_time: "2026-11-03T00:00:00.000Z", age_ms: 5 },
	o2: {
		key: "o2",
		status: "present",
		value: { constructor: "c", toString: 4, valueOf: { v: 1 }, hasOwnProperty: true },
		event_time: "2026-11-03T00:00:00.000Z",
		age_ms: 5.5,
	},
};

/** What the real batch does to a view (src/graphql/batch.ts, src/serving/freshness.ts): if_stale omit empties a stale value; fields projects, missing fields null. */
function viewFor(read: RecordRead, key: string): RecordView {
	const v = views[key] ?? { key, status: "not_found", value: null, event_time: null, age_ms: null };
	let value = v.status === "stale" && read.ifStale === "omit" ? null : v.value;
	if (value && read.fields)
		value = Object.fromEntries(read.fields.map((f) => [f, Object.hasOwn(value as object, f) ? (value as Record<string, unknown>)[f] : null]));
	return { ...v, value };
}

const context = (): GraphqlContext => ({
	batch: {
		tiers: new Set(),
		records: async (read: RecordRead) => {
			if (read.spec.name === "down") throw new HotpathError("unavailable", "no tier could read", { retryAfterSeconds: 1 });
			return read.keys.map((k) => viewFor(read, k));
		},
		versions: async () => ({
			versions: [
				{ event_time: "2026-11-01T00:00:00.000Z", event_id: "e1", op: "upsert", value: views.a?.value ?? null },
				{ event_time: "2026-11-02T00:00:00.000Z", event_id: "e2", op: "delete", value: null },
			],
			next: null,
			historyBeginsAt: 0,
		}),
	} as unknown as ReadBatch,
});

/** The response text, and whether any records field was written by the fast path. */
async function run(schema: GraphQLSchema, query: string, variables: Record<string, unknown>, render: boolean, operationName: string | null = null) {
	const outcome = await runGraphql(schema, { query, variables, operationName }, "POST", context(), { render });
	const data = outcome.body.data ?? {};
	return { kind: outcome.kind, text: responseJson(outcome.body), fast: Object.values(data).some((v) => v instanceof RawJson) };
}

interface Case {
	what: string;
	query: string;
	variables?: Record<string, unknown>;
	operationName?: string;
	/** Whether the fast path must write a records field of it. */
	fast: boolean;
	/** Whether the response must hold errors. */
	errors?: boolean;
}

const ALL = "key status event_time age_ms value { name age score tags weights meta emb ok }";
const UNICODE_KEY = "d\n\u00e9\"'\\";

const cases: Case[] = [
	// ------------------------------------------------------------ taken
	{
		what: "every field, keys by variable",
		query: `query($k: [String!]!) { users(keys: $k) { ${ALL} } }`,
		variables: { k: ["a", "b", "e", "s", UNICODE_KEY, "zz"] },
		fast: true,
	},
	{
		what: "value fields in another order, some of them, aliased, __typename, key aliased",
		query: '{ users(keys: ["a", "b", "s"]) { age_ms v: value { ok n: name __typename tags } __typename k: key } }',
		fast: true,
	},
	{ what: "one field of the value", query: '{ users(keys: ["a", "b"]) { value { meta } } }', fast: true },
	{ what: "the same value field under two aliases", query: '{ users(keys: ["a", "b"]) { value { x: age y: age age } } }', fast: true },
	{
		what: "value twice under aliases, different selections",
		query: '{ users(keys: ["a", "b", "zz"]) { v1: value { name } key v2: value { age score } } }',
		fast: true,
	},
	{ what: "no value", query: '{ users(keys: ["a", "zz"]) { status key } }', fast: true },
	{ what: "no keys", query: "{ users(keys: []) { key value { name } } }", fast: true },
	{ what: "a key twice", query: '{ users(keys: ["a", "b", "a"]) { key value { age } } }', fast: true },
	{
		what: "a dataset without fields, _datasets and __typename beside",
		query: '{ plain(keys: ["p", "a"]) { key value } users(keys: ["b"]) { key } _datasets __typename }',
		fast: true,
	},
	{ what: "the same dataset under two aliases", query: '{ x: users(keys: ["a"]) { key } y: users(keys: ["b", "a"]) { value { age score } } }', fast: true },
	{
		what: "field names of Object.prototype, missing and present",
		query: '{ odd(keys: ["o1", "o2", "zz"]) { key value { constructor toString valueOf hasOwnProperty } } }',
		fast: true,
	},
	{ what: "Object.prototype names, some of them", query: '{ odd(keys: ["o1", "o2"]) { value { toString __typename } } }', fast: true },
	{ what: "projection: fields narrower than the selection", query: '{ users(keys: ["a", "b"], fields: ["name"]) { value { name age } } }', fast: true },
	{
		what: "projection: the same fields as the selection, in its order",
		query: '{ users(keys: ["a", "b"], fields: ["age", "name"]) { value { age name } } }',
		fast: true,
	},
	{ what: "projection: the same fields in another order", query: '{ users(keys: ["a", "b"], fields: ["name", "age"]) { value { age name } } }', fast: true },
	{ what: "if_stale omit", query: '{ users(keys: ["a", "s"], if_stale: omit, max_staleness: 5) { key status value { name } } }', fast: true },
	{
		what: "every argument by variable",
		query:
			"query($k: [String!]!, $f: [String!], $m: Float, $i: IfStale, $t: String) { users(keys: $k, fields: $f, max_staleness: $m, if_stale: $i, as_of: $t) { key value { name age } } }",
		variables: { k: ["a", "s"], f: ["name"], m: 10, i: "omit", t: null },
		fast: true,
	},
	{
		what: "history beside, after",
		query: '{ users(keys: ["a"]) { key } users_history(key: "a") { versions { event_id op value { name } } next_cursor } }',
		fast: true,
	},
	{
		what: "history beside, before",
		query: '{ h: users_history(key: "a", limit: 5) { history_begins_at versions { value { age } } } users(keys: ["b"]) { value { age } } }',
		fast: true,
	},
	{
		what: "a root @skip, skipping one of two",
		query: 'query($s: Boolean!) { users(keys: ["a"]) @skip(if: $s) { key } plain(keys: ["p"]) { key } }',
		variables: { s: true },
		fast: true,
	},
	{ what: "a root @skip, keeping", query: 'query($s: Boolean!) { users(keys: ["a"]) @skip(if: $s) { key } }', variables: { s: false }, fast: true },
	{ what: "a root @include", query: '{ users(keys: ["a"]) @include(if: true) { key } plain(keys: ["p"]) @include(if: false) { key } }', fast: true },
	{
		what: "a named operation among several",
		query: 'query A { users(keys: ["a"]) { key } } query B { users(keys: ["b"]) { value { name } } }',
		operationName: "B",
		fast: true,
	},

	// ------------------------------------------------------------ taken, with errors
	{ what: "a bad key: data null, the field's path", query: '{ plain(keys: ["p"]) { key }\n  users(keys: ["ok", ""]) { key } }', fast: true, errors: true },
	{
		what: "a bad key by variable",
		query: "query($k: [String!]!) { u: users(keys: $k) { key } }",
		variables: { k: ["a", "x\ud800"] },
		fast: true,
		errors: true,
	},
	{ what: "an unknown field in fields", query: '{ users(keys: ["a"], fields: ["name", "nope"]) { key } }', fast: true, errors: true },
	{ what: "a negative max_staleness", query: '{ users(keys: ["a"], max_staleness: -1) { key } }', fast: true, errors: true },
	{ what: "a bad as_of", query: '{ users(keys: ["a"], as_of: "yesterday") { key } }', fast: true, errors: true },
	{ what: "as_of before the history kept", query: '{ users(keys: ["a"], as_of: "2001-01-01T00:00:00Z") { key } }', fast: true, errors: true },
	{
		what: "two failing fields: a failing history field first",
		query: '{ h: users_history(key: "") { next_cursor } u: users(keys: [""]) { key } }',
		fast: true,
		errors: true,
	},
	{ what: "two failing records fields", query: '{ a: users(keys: [""]) { key } b: users(keys: ["a"], fields: ["nope"]) { key } }', fast: true, errors: true },
	{ what: "a tier outage", query: '{ users(keys: ["a"]) { key } down(keys: ["x"]) { value { x } } }', fast: true, errors: true },
	{
		what: "search beside (unavailable without services)",
		query: '{ users(keys: ["a"]) { key } items_search(q: "x") { hits { key } } }',
		fast: true,
		errors: true,
	},

	// ------------------------------------------------------------ left to graphql-js
	{ what: "a fragment", query: '{ users(keys: ["a"]) { ...F } } fragment F on UsersRecord { key value { name } }', fast: false },
	{ what: "a fragment on the value", query: '{ users(keys: ["a"]) { value { ...V } } } fragment V on Users { name }', fast: false },
	{ what: "an inline fragment", query: '{ users(keys: ["a", "b"]) { key ... on UsersRecord { value { age } } } }', fast: false },
	{ what: "a root inline fragment", query: '{ ... on Query { users(keys: ["a"]) { key } } }', fast: false },
	{ what: "a directive under the records field", query: '{ users(keys: ["a"]) { key value @include(if: true) { name } } }', fast: false },
	{
		what: "a directive on a value field",
		query: 'query($s: Boolean!) { users(keys: ["a"]) { value { name @skip(if: $s) age } } }',
		variables: { s: true },
		fast: false,
	},
	{ what: "the same response name twice in a record", query: '{ users(keys: ["a"]) { key key value { name } } }', fast: false },
	{ what: "the same response name twice in a value", query: '{ users(keys: ["a"]) { value { name name } } }', fast: false },
	{ what: "the same root field twice (merged)", query: '{ users(keys: ["a"]) { key } users(keys: ["a"]) { value { name } } }', fast: false },
	{ what: "introspection beside", query: '{ users(keys: ["a"]) { key } __type(name: "Users") { name } }', fast: false },
];

describe("the rendering fast path, against graphql-js", () => {
	const schema = buildSchema([users, plain, odd, items, down]);
	// A held clock: some messages name times derived from now (as_of before the history kept).
	beforeEach(() => void vi.spyOn(Date, "now").mockReturnValue(Date.UTC(2026, 10, 20)));
	afterEach(() => vi.restoreAllMocks());

	for (const c of cases) {
		it(`${c.fast ? "writes" : "leaves to graphql-js"}, with the same text: ${c.what}`, async () => {
			const vars = c.variables ?? {};
			const fast = await run(schema, c.query, vars, true, c.operationName);
			const ref = await run(schema, c.query, vars, false, c.operationName);
			expect(ref.fast).toBe(false);
			expect(fast.text).toBe(ref.text);
			expect(fast.kind).toBe("executed");
			expect(fast.fast).toBe(c.fast && !c.errors);
			const body = JSON.parse(fast.text) as { data: unknown; errors?: { path?: unknown[]; extensions: { code: string } }[] };
			if (c.errors) {
				expect(body.errors?.length).toBeGreaterThan(0);
				for (const e of body.errors ?? []) {
					expect(e.extensions.code).toMatch(/^[A-Z_]+$/);
					expect(e.extensions.code).not.toBe("INTERNAL_SERVER_ERROR");
					expect(e.path).toBeDefined();
				}
			} else expect(body.errors, fast.text).toBeUndefined();
		});
	}

	it("takes the fast path for an operation whose errors are all per field (the path is what writes them)", async () => {
		// A failing records field is written through the same resolver: the fast path was taken, it only had nothing to write.
		const outcome = await runGraphql(schema, { query: '{ users(keys: [""]) { key } }', variables: {}, operationName: null }, "POST", context());
		expect(outcome.body.data).toBeNull();
		expect(outcome.body.errors?.[0]).toMatchObject({ path: ["users"], locations: [{ line: 1, column: 3 }], extensions: { code: "BAD_USER_INPUT" } });
	});

	it("gives the same request errors either way: variables that do not coerce, validation", async () => {
		for (const [query, variables] of [
			["query($k: [String!]!) { users(keys: $k) { key } }", { k: [1, null] }],
			["query($i: IfStale) { users(keys: [], if_stale: $i) { key } }", { i: "never" }],
			["{ users(keys: []) { nope } }", {}],
		] as const) {
			const fast = await run(schema, query, variables, true);
			const ref = await run(schema, query, variables, false);
			expect(fast.kind).toBe("request_error");
			expect(fast.text).toBe(ref.text);
		}
	});

	it("keeps its text when a body is serialised without responseJson", () => {
		const raw = new RawJson('[{"key":"a","n":1}]');
		expect(JSON.stringify({ data: { users: raw } })).toBe('{"data":{"users":[{"key":"a","n":1}]}}');
		expect(responseJson({ data: { users: raw, x: 1 } })).toBe('{"data":{"users":[{"key":"a","n":1}],"x":1}}');
		expect(responseJson({ data: null, errors: [{ message: "m" }] })).toBe('{"data":null,"errors":[{"message":"m"}]}');
		expect(responseJson({ errors: [{ message: "m" }] })).toBe('{"errors":[{"message":"m"}]}');
	});
});
