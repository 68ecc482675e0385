/**
 * The rendering fast path over real data (records read through L0, Redis, KV and D1, history from
 * the event log, search from SEARCH_DB): each operation runs through runGraphql as the route runs
 * it, then again with `render: false`, and the two response texts must be identical. The second
 * run is given the very views the first one read (a replay of its batch), and the clocks are held
 * still for both (search's took_ms and age_ms), so any difference is the writing's. The unit test
 * beside it (graphql-render-unit.test.ts) covers the writing case by case; this one checks that
 * values as the tiers hand them over (with their cached JSON text) write the same.
 */
import { type GraphQLSchema, getNamedType } from "graphql";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { GraphqlContext } from "../../src/graphql/batch";
import { ReadBatch, type RecordRead } from "../../src/graphql/batch";
import { runGraphql } from "../../src/graphql/execute";
import { RawJson, responseJson } from "../../src/graphql/render";
import { buildSchema } from "../../src/graphql/schema";
import { ServerTiming } from "../../src/observability/timing";
import { servicesFor } from "../../src/services";
import type { RecordView } from "../../src/serving/freshness";
import { applyDirect, createDataset, env, settle, uniqueName, userSpec } from "./helpers";
import { importProducts, makeProducts, productSpec, waitIndexReady } from "./search-oracle";

let users = "";
let stale = "";
let products = "";
const t0 = Date.now() - 60_000;
const odd = 'k "q" \u00e9\n\u2028';

beforeAll(async () => {
	users = await createDataset(userSpec(3600));
	stale = await createDataset({ key: "id", fields: { a: "int", b: "string" }, ttl_seconds: 1 });
	products = await createDataset(productSpec() as never);
	await applyDirect([
		{
			id: uniqueName("e"),
			dataset: users,
			key: "u1",
			op: "upsert",
			value: {
				age: 2 ** 40,
				name: 'one "é" \u2028',
				score: 0.25,
				active: true,
				meta: { nested: [1, { x: null }], s: "é" },
				tags: ["a"],
				weights: [1.5, -2, 1e21],
				emb: [0.1, 0.2, 0.3],
			},
			time: t0,
		},
		{ id: uniqueName("e"), dataset: users, key: "u1", op: "patch", value: { score: 0.5 }, time: t0 + 1 },
		{ id: uniqueName("e"), dataset: users, key: "u2", op: "upsert", value: { age: -(2 ** 40), name: null, tags: [], weights: [] }, time: t0 + 2 },
		{ id: uniqueName("e"), dataset: users, key: odd, op: "upsert", value: { meta: "just a string" }, time: t0 + 3 },
		{ id: uniqueName("e"), dataset: users, key: "gone", op: "upsert", value: { age: 9 }, time: t0 },
		{ id: uniqueName("e"), dataset: users, key: "gone", op: "delete", time: t0 + 10 },
		{ id: uniqueName("e"), dataset: stale, key: "s1", op: "upsert", value: { a: 1, b: "x" }, time: t0 },
	]);
	await importProducts(products, makeProducts(30, 11));
	await waitIndexReady(products);
	// Read once through the route, so some copies sit in the upper tiers (L0, Redis, KV) with their texts.
	await settle();
});

afterEach(() => vi.restoreAllMocks());

/**
 * Runs `query` both ways. The first run reads for real and records what each read answered; the
 * second is answered from that record, in the same order (the same root fields ask in the same order).
 */
async function both(schema: GraphQLSchema, query: string, variables: Record<string, unknown> = {}) {
	const services = servicesFor(env);
	// Held clocks: search's took_ms and the hits' age_ms come out the same in both runs.
	const now = Date.now();
	vi.spyOn(Date, "now").mockReturnValue(now);
	vi.spyOn(performance, "now").mockReturnValue(1000);
	const readCtx = { timing: new ServerTiming(), waitUntil: (p: Promise<unknown>) => void p.catch(() => {}) };
	const real = new ReadBatch(services.reader, env.DB, readCtx);
	const answers: Promise<unknown>[] = [];
	const recording = {
		tiers: real.tiers,
		ctx: readCtx,
		records: (read: RecordRead) => {
			const p = real.records(read);
			answers.push(p);
			return p;
		},
		versions: (...args: Parameters<ReadBatch["versions"]>) => {
			const p = real.versions(...args);
			answers.push(p);
			return p;
		},
	} as unknown as ReadBatch;
	const fast = await runGraphql(schema, { query, variables, operationName: null }, "POST", { batch: recording, services } as GraphqlContext);
	let i = 0;
	const replay = {
		tiers: new Set(),
		ctx: readCtx,
		records: () => answers[i++] as Promise<RecordView[]>,
		versions: () => answers[i++],
	} as unknown as ReadBatch;
	const ref = await runGraphql(schema, { query, variables, operationName: null }, "POST", { batch: replay, services } as GraphqlContext, { render: false });
	expect(i).toBe(answers.length);
	return {
		fast: responseJson(fast.body),
		ref: responseJson(ref.body),
		rendered: Object.values(fast.body.data ?? {}).some((v) => v instanceof RawJson),
	};
}

describe("the rendering fast path over real reads", () => {
	let schema: GraphQLSchema;
	beforeAll(async () => {
		const registry = servicesFor(env).registry;
		schema = buildSchema(await Promise.all([users, stale, products].map((n) => registry.require(n))));
	});

	const ALL = "key status event_time age_ms value { age name score active meta tags weights emb }";
	const cases: { what: string; query: () => string; variables?: () => Record<string, unknown>; fast: boolean; errors?: boolean }[] = [
		{
			what: "every field: present, patched, partial, deleted, unknown, an odd key",
			query: () => `query($k: [String!]!) { ${users}(keys: $k) { ${ALL} } }`,
			variables: () => ({ k: ["u1", "u2", "gone", "nope", odd, "u1"] }),
			fast: true,
		},
		{
			what: "aliases, __typename, some fields in another order",
			query: () => `{ r: ${users}(keys: ["u1", "u2"]) { __typename v: value { __typename emb n: name age } k: key age_ms } }`,
			fast: true,
		},
		{ what: "a projection by fields", query: () => `{ ${users}(keys: ["u1", "u2"], fields: ["name", "age"]) { key value { name age score } } }`, fast: true },
		{
			what: "a projection in the selection's order",
			query: () => `{ ${users}(keys: ["u1", "u2"], fields: ["age", "name"]) { value { age name } } }`,
			fast: true,
		},
		{
			what: "stale: served, omitted, tightened",
			query: () =>
				`{ s: ${stale}(keys: ["s1"]) { ${"key status event_time age_ms value { a b }"} } o: ${stale}(keys: ["s1"], if_stale: omit) { status value { a } } m: ${users}(keys: ["u1"], max_staleness: 0.001) { status value { name } } }`,
			fast: true,
		},
		{
			what: "as_of",
			query: () => `{ ${users}(keys: ["u1", "u2"], as_of: "${new Date(t0 + 1).toISOString()}") { key event_time value { score age } } }`,
			fast: true,
		},
		{
			what: "history beside",
			query: () =>
				`{ ${users}(keys: ["u1"]) { key value { score } } ${users}_history(key: "u1") { versions { event_time op value { score name } } next_cursor } }`,
			fast: true,
		},
		{
			what: "search beside, and the same records",
			query: () =>
				`{ p: ${products}(keys: ["p0001", "p0002", "nope"]) { key value { title price tags } } s: ${products}_search(q: "red", limit: 5) { hits { key score status value { title price } } next_cursor took_ms } f: ${products}_search(filter: {price: {lt: 50}}, sort: ["-price"], limit: 3) { hits { key age_ms event_time } } }`,
			fast: true,
		},
		{
			what: "a fragment (graphql-js)",
			query: () => `{ ${users}(keys: ["u1", "u2"]) { ...R } } fragment R on ${recordTypeOf(schema, users)} { key value { name } }`,
			fast: false,
		},
		{ what: "a bad key", query: () => `{ ${products}_search(q: "red") { next_cursor } ${users}(keys: ["u1", ""]) { key } }`, fast: true, errors: true },
		{ what: "a bad search", query: () => `{ ${users}(keys: ["u1"]) { key } ${products}_search(filter: {nope: 1}) { next_cursor } }`, fast: true, errors: true },
	];

	for (const c of cases) {
		it(`the same text either way: ${c.what}`, async () => {
			const got = await both(schema, c.query(), c.variables?.());
			expect(got.fast).toBe(got.ref);
			expect(got.rendered).toBe(c.fast && !c.errors);
			const body = JSON.parse(got.fast) as { errors?: unknown[] };
			expect(body.errors === undefined, got.fast).toBe(!c.errors);
		});
	}
});

/** The record type of a records root field. */
const recordTypeOf = (schema: GraphQLSchema, field: string): string => getNamedType(schema.getQueryType()?.getFields()[field]?.type)?.name ?? "";
