/**
 * GraphQL over HTTP: the schema follows the registry, types round-trip, every records field of an
 * operation shares one pass through the tiers, answers equal REST's (current, projected, stale,
 * as_of, history), GET and GraphiQL, operations refused cleanly, and a tier outage as an error.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { servicesFor } from "../../src/services";
import {
	applyDirect,
	type CallOptions,
	call,
	createDataset,
	env,
	expectJson,
	holdInKv,
	type RecordBody,
	seedD1,
	settle,
	uniqueName,
	userSpec,
} from "./helpers";

interface GqlError {
	message: string;
	path?: (string | number)[];
	extensions: { code: string; [k: string]: unknown };
}
interface GqlBody<T = Record<string, unknown>> {
	data?: T | null;
	errors?: GqlError[];
}
interface GqlRecord {
	key: string;
	status: string;
	event_time: string | null;
	age_ms: number | null;
	value: Record<string, unknown> | null;
}

/** POSTs a GraphQL request. */
const gql = (query: string, variables?: Record<string, unknown>, opts: CallOptions & { operationName?: string } = {}) =>
	call("POST", "/graphql", { ...opts, json: { query, variables, operationName: opts.operationName } });

/** The GraphQL body of a 200, with the body in the failure message. */
async function gqlJson<T = Record<string, GqlRecord[]>>(res: Response, status = 200): Promise<GqlBody<T>> {
	const text = await res.text();
	expect(res.status, `expected ${status}, got ${res.status}: ${text.slice(0, 500)}`).toBe(status);
	expect(res.headers.get("content-type")).toMatch(/^application\/(graphql-response\+)?json\b/);
	return JSON.parse(text) as GqlBody<T>;
}

/** The data of a 200 without errors. */
async function gqlData<T = Record<string, GqlRecord[]>>(res: Response): Promise<T> {
	const body = await gqlJson<T>(res);
	expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
	return body.data as T;
}

const ALL = "key status event_time age_ms value { age name score active meta tags weights emb }";
const lookup = async (requests: unknown[], extra: Record<string, unknown> = {}) =>
	(await expectJson<{ results: { records: RecordBody[] }[] }>(await call("POST", "/v1/lookup", { json: { requests, ...extra } }), 200)).results;

/** A record as REST gives it, less age_ms (which moves between two reads). */
const sansAge = ({ age_ms: _, ...rest }: GqlRecord | RecordBody) => rest;

let users = "";
let items = "";
const t0 = Date.now() - 5000;
const full = {
	age: 2 ** 40,
	name: "one",
	score: 0.25,
	active: true,
	meta: { nested: [1, { x: null }], s: "é" },
	tags: ["a", "b"],
	weights: [1.5, -2],
	emb: [0.1, 0.2, 0.3],
};

beforeAll(async () => {
	users = await createDataset(userSpec(3600));
	items = await createDataset({ key: "item_id", fields: { price: "float", title: "string" }, ttl_seconds: 3600 });
	await applyDirect([
		{ id: uniqueName("e"), dataset: users, key: "u1", op: "upsert", value: full, time: t0 },
		{ id: uniqueName("e"), dataset: users, key: "u2", op: "upsert", value: { age: -(2 ** 40), name: null, tags: [], weights: [] }, time: t0 + 1 },
		{ id: uniqueName("e"), dataset: users, key: "gone", op: "upsert", value: { age: 9 }, time: t0 },
		{ id: uniqueName("e"), dataset: users, key: "gone", op: "delete", time: t0 + 10 },
		{ id: uniqueName("e"), dataset: items, key: "i1", op: "upsert", value: { price: 1.5, title: "first" }, time: t0 },
	]);
});

describe("schema from the registry", () => {
	it("follows a spec change on the next request: a new field, then a new dataset", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { a: 1 }, time: t0 }]);
		expect(await gqlData(await gql(`{ ${ds}(keys: ["k"]) { value { a } } }`))).toEqual({ [ds]: [{ value: { a: 1 } }] });
		const before = await gqlJson(await gql(`{ ${ds}(keys: ["k"]) { value { a b } } }`));
		expect(before.data).toBeUndefined();
		expect(before.errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
		expect(before.errors?.[0]?.message).toMatch(/Cannot query field "b"/);

		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: { key: "id", fields: { a: "int", b: "string" }, ttl_seconds: 3600 } }), 200);
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "patch", value: { b: "new" }, time: t0 + 1 }]);
		expect(await gqlData(await gql(`{ ${ds}(keys: ["k"]) { value { a b } } }`))).toEqual({ [ds]: [{ value: { a: 1, b: "new" } }] });

		const other = uniqueName();
		expect((await gqlJson(await gql(`{ ${other}(keys: ["k"]) { key } }`))).errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
		await createDataset({ key: "id", fields: { c: "bool" } }, other);
		expect(await gqlData(await gql(`{ ${other}(keys: ["k"]) { key status } }`))).toEqual({ [other]: [{ key: "k", status: "not_found" }] });
		const names = await gqlData<{ _datasets: string[] }>(await gql("{ _datasets }"));
		expect(names._datasets).toEqual(expect.arrayContaining([ds, other, users]));
	});

	it("types every field type as the issue says, and introspection shows them", async () => {
		const { __schema } = await gqlData<{
			__schema: {
				queryType: { fields: { name: string; type: unknown; args: { name: string; type: unknown }[] }[] };
				types: { name: string; fields: { name: string; type: unknown }[] | null }[];
			};
		}>(
			await gql(`{ __schema { queryType { fields { name type { ...T } args { name type { ...T } } } } types { name fields { name type { ...T } } } } }
				fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }`),
		);
		const typeText = (t: unknown): string => {
			const x = t as { kind: string; name: string | null; ofType: unknown };
			return x.kind === "NON_NULL" ? `${typeText(x.ofType)}!` : x.kind === "LIST" ? `[${typeText(x.ofType)}]` : (x.name as string);
		};
		const root = __schema.queryType.fields.find((f) => f.name === users);
		expect(typeText(root?.type)).toMatch(/^\[\w+Record!\]!$/);
		expect(Object.fromEntries(root?.args.map((a) => [a.name, typeText(a.type)]) ?? [])).toEqual({
			keys: "[String!]!",
			fields: "[String!]",
			max_staleness: "Float",
			if_stale: "IfStale",
			as_of: "String",
		});
		const history = __schema.queryType.fields.find((f) => f.name === `${users}_history`);
		expect(Object.fromEntries(history?.args.map((a) => [a.name, typeText(a.type)]) ?? [])).toEqual({
			key: "String!",
			since: "String",
			until: "String",
			limit: "Int",
			cursor: "String",
		});
		const recordType = __schema.types.find((t) => t.name === typeText(root?.type).slice(1, -3));
		const record = Object.fromEntries(recordType?.fields?.map((f) => [f.name, typeText(f.type)]) ?? []);
		expect(record).toMatchObject({ key: "String!", status: "RecordStatus!", event_time: "String", age_ms: "Float" });
		const value = Object.fromEntries(__schema.types.find((t) => t.name === record.value)?.fields?.map((f) => [f.name, typeText(f.type)]) ?? []);
		expect(value).toEqual({
			age: "SafeInt",
			name: "String",
			score: "Float",
			active: "Boolean",
			meta: "JSON",
			tags: "[String]",
			weights: "[Float]",
			emb: "Vector",
		});
	});
});

describe("values", () => {
	it("round-trip every type: 2^40 ints, vectors, JSON, lists and nulls, equal to REST's", async () => {
		const data = await gqlData(await gql(`{ r: ${users}(keys: ["u1", "u2"]) { ${ALL} } }`));
		expect(data.r?.[0]?.value).toEqual(full);
		expect(data.r?.[0]?.value?.age).toBe(1099511627776);
		expect(data.r?.[1]?.value).toEqual({ age: -(2 ** 40), name: null, score: null, active: null, meta: null, tags: [], weights: [], emb: null });
		const rest = await lookup([{ dataset: users, keys: ["u1", "u2"] }]);
		// REST omits fields never written; GraphQL answers null for them.
		expect(data.r?.map(sansAge)).toEqual(
			rest[0]?.records.map((r) => ({
				...sansAge(r),
				value: { age: null, name: null, score: null, active: null, meta: null, tags: null, weights: null, emb: null, ...r.value },
			})),
		);
	});
});

describe("one pass through the tiers per operation", () => {
	const restore: (() => void)[] = [];
	afterEach(() => {
		while (restore.length) restore.pop()?.();
	});

	/** Counts each lower tier's getMany calls from here on. */
	function countTierReads(): Record<string, number> {
		const calls: Record<string, number> = {};
		for (const tier of servicesFor(env).reader.tiers) {
			calls[tier.name] = 0;
			const original = tier.getMany.bind(tier);
			const spy = vi.spyOn(tier, "getMany").mockImplementation((refs) => {
				calls[tier.name] = (calls[tier.name] ?? 0) + 1;
				return original(refs);
			});
			restore.push(() => spy.mockRestore());
		}
		return calls;
	}
	const timingEntries = (res: Response) => (res.headers.get("server-timing") ?? "").split(", ").map((e) => e.split(";")[0]);

	it("batches aliases, several fields on one dataset and fields on two datasets into one read of each tier", async () => {
		// Keys only D1 holds: every tier below L0 is asked.
		const [a, b, c, d] = [uniqueName("b"), uniqueName("b"), uniqueName("b"), uniqueName("b")];
		await seedD1(users, a, { age: 1, name: "a" }, t0);
		await seedD1(users, b, { age: 2, name: "b" }, t0);
		await seedD1(items, c, { price: 3 }, t0);
		const calls = countTierReads();
		const res = await gql(`{
			x: ${users}(keys: ["${a}", "${b}"]) { key value { age } }
			y: ${users}(keys: ["${b}", "${d}"], fields: ["name"]) { key status value { name age } }
			${users}(keys: ["${a}"]) { key }
			z: ${items}(keys: ["${c}"]) { value { price } }
			...F
		}
		fragment F on Query { w: ${items}(keys: ["${c}", "${d}"]) { status } }`);
		expect(timingEntries(res)).toEqual(["l0", "redis", "kv", "d1"]);
		expect(calls).toEqual({ redis: 1, kv: 1, d1: 1 });
		expect(res.headers.get("x-hotpath-tier")).toBe("d1");
		expect(await gqlData(res)).toEqual({
			x: [
				{ key: a, value: { age: 1 } },
				{ key: b, value: { age: 2 } },
			],
			y: [
				{ key: b, status: "present", value: { name: "b", age: null } },
				{ key: d, status: "not_found", value: null },
			],
			[users]: [{ key: a }],
			z: [{ value: { price: 3 } }],
			w: [{ status: "present" }, { status: "not_found" }],
		});
		await settle();
	});

	it("makes one pass for fields with different freshness options (each answered by its own), and none for as_of", async () => {
		const [a, b] = [uniqueName("f"), uniqueName("f")];
		await seedD1(users, a, { age: 1 }, t0);
		await seedD1(users, b, { age: 2 }, t0);
		const calls = countTierReads();
		// t0 is 5 s ago: within the dataset's ttl (3600 s), past a max_staleness of 1 s.
		const res = await gql(`{
			p: ${users}(keys: ["${a}"]) { key status value { age } }
			q: ${users}(keys: ["${b}"], max_staleness: 3600) { key status value { age } }
			r: ${users}(keys: ["${a}"], max_staleness: 1, if_stale: omit) { key status value { age } }
			t: ${items}(keys: ["${b}"], max_staleness: 2) { key status }
			s: ${users}(keys: ["${a}"], as_of: "${new Date().toISOString()}") { key }
		}`);
		expect(timingEntries(res).filter((e) => e === "l0")).toHaveLength(1);
		expect(timingEntries(res).filter((e) => e === "history")).toHaveLength(1);
		// One read of D1 for every current field, whatever their options (DESIGN: all root fields share one tiered read).
		expect(calls.d1).toBe(1);
		expect(calls.redis).toBe(1);
		expect(await gqlData(res)).toEqual({
			p: [{ key: a, status: "present", value: { age: 1 } }],
			q: [{ key: b, status: "present", value: { age: 2 } }],
			r: [{ key: a, status: "stale", value: null }],
			t: [{ key: b, status: "not_found" }],
			s: [{ key: a }],
		});
		await settle();
	});

	it("reads a key several fields ask for within the tightest of their limits: a strict field never gets a laggier copy", async () => {
		const k = uniqueName("k");
		await seedD1(users, k, { age: 1 }, t0);
		await holdInKv(users, k);
		// D1 moves on; KV (up to 60 s behind) still holds age 1.
		await env.DB.prepare("UPDATE records SET value = ?1, rev = 2 WHERE dataset = ?2 AND key = ?3")
			.bind(JSON.stringify({ age: 2 }), users, k)
			.run();
		const data = await gqlData(
			await gql(`{ loose: ${users}(keys: ["${k}"]) { status value { age } } strict: ${users}(keys: ["${k}"], max_staleness: 30) { status value { age } } }`),
		);
		expect(data.strict).toEqual([{ status: "present", value: { age: 2 } }]);
		expect(data.loose).toEqual([{ status: "present", value: { age: 2 } }]);
		await settle();
	});

	it("reads a dataset's aggregates once per operation, whatever the fields' freshness options", async () => {
		const ds = await createDataset({
			key: "user_id",
			fields: { price: "float" },
			ttl_seconds: 3600,
			aggregates: { n_1h: { fn: "count", window: "1h" } },
		} as never);
		const now = Date.now();
		await expectJson(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ user_id: "a", price: 1, _event_time: now - 60_000 },
					{ user_id: "a", price: 2, _event_time: now - 30_000 },
					{ user_id: "b", price: 3, _event_time: now - 30_000 },
				],
			}),
			200,
		);
		let tileReads = 0;
		const original = env.DB.prepare.bind(env.DB);
		const spy = vi.spyOn(env.DB, "prepare").mockImplementation((sql: string) => {
			if (sql.includes("agg_tiles")) tileReads++;
			return original(sql);
		});
		restore.push(() => spy.mockRestore());
		const data = await gqlData<Record<string, { key: string; value: { n_1h: number } | null }[]>>(
			await gql(`{
				x: ${ds}(keys: ["a"]) { key value { n_1h } }
				y: ${ds}(keys: ["b"], max_staleness: 600) { key value { n_1h } }
				z: ${ds}(keys: ["a", "b"], max_staleness: 900, fields: ["n_1h"]) { key value { n_1h } }
			}`),
		);
		expect(data).toEqual({
			x: [{ key: "a", value: { n_1h: 2 } }],
			y: [{ key: "b", value: { n_1h: 1 } }],
			z: [
				{ key: "a", value: { n_1h: 2 } },
				{ key: "b", value: { n_1h: 1 } },
			],
		});
		expect(tileReads).toBe(1);
		await settle();
	});

	it("keeps an operation of many fields, each with its own max_staleness, to one pass", async () => {
		const keys = Array.from({ length: 40 }, () => uniqueName("m"));
		for (const k of keys) await seedD1(users, k, { age: 7 }, t0);
		const calls = countTierReads();
		const res = await gql(`{ ${keys.map((k, i) => `f${i}: ${users}(keys: ["${k}"], max_staleness: ${100 + i}) { key status }`).join(" ")} }`);
		const data = await gqlData(res);
		expect(Object.values(data).map((v) => v[0]?.status)).toEqual(keys.map(() => "present"));
		expect(calls.d1).toBe(1);
		await settle();
	});
});

describe("equal answers to REST", () => {
	it("for current reads, projections, missing keys and tombstones, in key order", async () => {
		const keys = ["u2", "nope", "u1", "gone", "u1"];
		const data = await gqlData(
			await gql(
				`query($k: [String!]!) { all: ${users}(keys: $k) { ${ALL} } some: ${users}(keys: $k, fields: ["age", "emb"]) { ${ALL} } i: ${items}(keys: ["i1"], fields: []) { ${"key status event_time age_ms value { price title }"} } }`,
				{ k: keys },
			),
		);
		const rest = await lookup([
			{ dataset: users, keys },
			{ dataset: users, keys, fields: ["age", "emb"] },
			{ dataset: items, keys: ["i1"], fields: [] },
		]);
		const fill = (fields: string[]) => (r: RecordBody) => ({
			...sansAge(r),
			value: r.value && { ...Object.fromEntries(fields.map((f) => [f, null])), ...r.value },
		});
		const all = ["age", "name", "score", "active", "meta", "tags", "weights", "emb"];
		expect(data.all?.map(sansAge)).toEqual(rest[0]?.records.map(fill(all)));
		expect(data.some?.map(sansAge)).toEqual(rest[1]?.records.map(fill(all)));
		expect(data.some?.[2]?.value).toMatchObject({ age: 2 ** 40, emb: [0.1, 0.2, 0.3], name: null });
		expect(data.i?.map(sansAge)).toEqual(rest[2]?.records.map(fill(["price", "title"])));
		expect(data.all?.map((r) => [r.key, r.status])).toEqual([
			["u2", "present"],
			["nope", "not_found"],
			["u1", "present"],
			["gone", "not_found"],
			["u1", "present"],
		]);
		for (const [i, r] of (data.all ?? []).entries()) {
			const restAge = rest[0]?.records[i]?.age_ms;
			if (r.age_ms === null || restAge === null || restAge === undefined) expect(r.age_ms).toBe(restAge);
			else expect(Math.abs(r.age_ms - restAge)).toBeLessThan(5000);
		}
	});

	it("for stale values, served or omitted", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 1 });
		await applyDirect([{ id: uniqueName("e"), dataset: ds, key: "k", op: "upsert", value: { a: 1 }, time: Date.now() - 10_000 }]);
		const data = await gqlData(
			await gql(
				`{ s: ${ds}(keys: ["k"]) { key status event_time value { a } } o: ${ds}(keys: ["k"], if_stale: omit) { key status event_time value { a } } f: ${ds}(keys: ["k"], max_staleness: 3600) { status } }`,
			),
		);
		const [served, omitted] = await Promise.all([lookup([{ dataset: ds, keys: ["k"] }]), lookup([{ dataset: ds, keys: ["k"] }], { if_stale: "omit" })]);
		expect(data.s?.[0]).toEqual(sansAge(served[0]?.records[0] as RecordBody));
		expect(data.o?.[0]).toEqual(sansAge(omitted[0]?.records[0] as RecordBody));
		expect(data.s?.[0]).toMatchObject({ status: "stale", value: { a: 1 } });
		expect(data.o?.[0]).toMatchObject({ status: "stale", value: null });
		// max_staleness only tightens the dataset's ttl.
		expect(data.f?.[0]?.status).toBe("stale");
	});

	it("for as_of reads and for history, whose cursors work across both", async () => {
		const k = uniqueName("h");
		const t = Date.now() - 600_000;
		await applyDirect([
			{ id: "h0", dataset: users, key: k, op: "upsert", value: { age: 1, name: "first" }, time: t },
			{ id: "h1", dataset: users, key: k, op: "patch", value: { name: "second" }, time: t + 1000 },
			{ id: "h2", dataset: users, key: k, op: "patch", value: { age: 3 }, time: t + 2000 },
			{ id: "h3", dataset: users, key: k, op: "delete", time: t + 3000 },
		]);
		const at = new Date(t + 1500).toISOString();
		const data = await gqlData(
			await gql(
				`{ a: ${users}(keys: ["${k}", "nobody"], as_of: "${at}") { ${ALL} } b: ${users}(keys: ["${k}"], as_of: "${t + 2500}", fields: ["age"]) { ${ALL} } }`,
			),
		);
		const rest = await lookup([
			{ dataset: users, keys: [k, "nobody"], as_of: at },
			{ dataset: users, keys: [k], as_of: t + 2500, fields: ["age"] },
		]);
		const all = ["age", "name", "score", "active", "meta", "tags", "weights", "emb"];
		const fill = (r: RecordBody) => ({ ...r, value: r.value && { ...Object.fromEntries(all.map((f) => [f, null])), ...r.value } });
		// As of a time, age is counted at that time: equal to the millisecond.
		expect(data.a).toEqual(rest[0]?.records.map(fill));
		expect(data.b).toEqual(rest[1]?.records.map(fill));
		expect(data.a?.[0]).toMatchObject({ status: "present", value: { age: 1, name: "second" }, age_ms: 500 });

		interface Page {
			versions: { event_time: string; event_id: string; op: string; value: Record<string, unknown> | null }[];
			next_cursor: string | null;
			history_begins_at: string;
		}
		const gqlPage = async (args: string) =>
			(
				await gqlData<{ h: Page }>(
					await gql(`{ h: ${users}_history(key: "${k}", ${args}) { versions { event_time event_id op value { age name } } next_cursor history_begins_at } }`),
				)
			).h;
		const restAll = await expectJson<Page>(await call("GET", `/v1/datasets/${users}/records/${k}/history`), 200);
		const gqlAll = await gqlPage("limit: 10");
		expect(gqlAll.versions).toEqual(restAll.versions.map((v) => ({ ...v, value: v.value && { age: null, name: null, ...v.value } })));
		expect(gqlAll.versions.map((v) => v.op)).toEqual(["upsert", "patch", "patch", "delete"]);
		expect(gqlAll.next_cursor).toBeNull();
		// Page 1 over GraphQL, page 2 over REST with GraphQL's cursor, page 3 over GraphQL with REST's.
		const p1 = await gqlPage(`limit: 1, since: "${t + 1000}"`);
		expect(p1.versions.map((v) => v.event_id)).toEqual(["h1"]);
		const p2 = await expectJson<Page>(await call("GET", `/v1/datasets/${users}/records/${k}/history?limit=1&since=${t + 1000}&cursor=${p1.next_cursor}`), 200);
		expect(p2.versions.map((v) => v.event_id)).toEqual(["h2"]);
		const p3 = await gqlPage(`limit: 5, since: "${t + 1000}", cursor: "${p2.next_cursor}"`);
		expect(p3.versions.map((v) => v.event_id)).toEqual(["h3"]);
		expect(p3.next_cursor).toBeNull();
	});
});

describe("HTTP", () => {
	it("GET runs a query from the query string, with variables and operationName", async () => {
		const query = `query A($k: [String!]!) { ${users}(keys: $k) { key value { age } } } query B { _datasets }`;
		const url = `/graphql?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(JSON.stringify({ k: ["u1"] }))}&operationName=A`;
		const res = await call("GET", url);
		expect(res.headers.get("cache-control")).toBe("no-store");
		expect(await gqlData(res)).toEqual({ [users]: [{ key: "u1", value: { age: 2 ** 40 } }] });
	});

	it("refuses a mutation, an unknown or unnamed operation, and a request that is not GraphQL, without running anything", async () => {
		const mutation = await gqlJson(await gql("mutation { x }"));
		expect(mutation.data).toBeUndefined();
		expect(mutation.errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
		expect(mutation.errors?.[0]?.message).toMatch(/read-only/);
		const viaGet = await call("GET", `/graphql?query=${encodeURIComponent("mutation { x }")}`);
		expect(viaGet.headers.get("allow")).toBe("POST");
		expect((await gqlJson(viaGet, 405)).errors?.[0]?.message).toMatch(/read-only/);
		const sub = await gqlJson(await gql("subscription { x }"));
		expect(sub.errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");

		const unknown = await gqlJson(await gql("query A { _datasets }", undefined, { operationName: "B" }));
		expect(unknown.errors?.[0]).toMatchObject({ message: 'the document holds no operation named "B"', extensions: { code: "OPERATION_RESOLUTION_FAILURE" } });
		const unnamed = await gqlJson(await gql("query A { _datasets } query B { _datasets }"));
		expect(unnamed.errors?.[0]?.extensions.code).toBe("OPERATION_RESOLUTION_FAILURE");
		expect((await gqlJson(await gql("fragment F on Query { _datasets }"))).errors?.[0]?.extensions.code).toBe("OPERATION_RESOLUTION_FAILURE");

		for (const body of [
			"{not json",
			"[]",
			JSON.stringify([{ query: "{ _datasets }" }]),
			JSON.stringify({ query: 5 }),
			JSON.stringify({ query: "{ _datasets }", variables: [1] }),
		]) {
			const res = await call("POST", "/graphql", { body, headers: { "content-type": "application/json" } });
			expect((await gqlJson(res, 400)).errors?.[0]?.extensions.code).toBe("BAD_REQUEST");
		}
		expect((await gqlJson(await call("GET", "/graphql?variables=%7B"), 400)).errors?.[0]?.extensions.code).toBe("BAD_REQUEST");
		expect((await gqlJson(await call("GET", "/graphql", { headers: { accept: "application/json" } }), 400)).errors?.[0]?.extensions.code).toBe("BAD_REQUEST");
		// A bare document under the old application/graphql type is told what to send, not "not valid JSON".
		const bare = await gqlJson(await call("POST", "/graphql", { body: "{ _datasets }", headers: { "content-type": "application/graphql" } }), 400);
		expect(bare.errors?.[0]?.extensions.code).toBe("BAD_REQUEST");
		expect(bare.errors?.[0]?.message).toMatch(/application\/graphql is not supported.*application\/json/);
	});

	it("answers a request that did not run with 400 under Accept: application/graphql-response+json, and 200 under application/json", async () => {
		const accept = "application/graphql-response+json";
		const modern = await call("POST", "/graphql", { json: { query: "{ nope }" }, headers: { accept } });
		expect(modern.headers.get("content-type")).toMatch(/^application\/graphql-response\+json/);
		expect((await gqlJson(modern, 400)).errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
		expect((await gqlJson(await gql("{ nope }"), 200)).errors?.[0]?.extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
		expect(await gqlData(await call("POST", "/graphql", { json: { query: "{ _datasets }" }, headers: { accept } }))).toHaveProperty("_datasets");
	});

	it("serves GraphiQL to a browser, without a key, loaded from a CDN", async () => {
		const res = await call("GET", "/graphql", { key: null, headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" } });
		expect(res.status).toBe(200);
		expect(res.headers.get("content-type")).toMatch(/^text\/html/);
		const html = await res.text();
		expect(html).toMatch(/<script crossorigin src="https:\/\/unpkg\.com\/graphiql@3\/graphiql\.min\.js"><\/script>/);
		expect(html).toContain("GraphiQL.createFetcher");
		// The URL also answers API GETs: a shared cache must not hand this page to a client asking for JSON.
		expect(res.headers.get("vary") ?? "").toMatch(/\baccept\b/i);
	});

	it("is in the OpenAPI document", async () => {
		const doc = (await (await call("GET", "/openapi.json")).json()) as { paths: Record<string, Record<string, unknown>> };
		expect(Object.keys(doc.paths["/graphql"] ?? {}).sort()).toEqual(["get", "post"]);
	});
});

describe("a tier outage", () => {
	const undo: string[] = [];
	afterEach(async () => {
		while (undo.length) await env.DB.prepare(undo.pop() as string).run();
	});

	it("is an UNAVAILABLE error with data null and Retry-After, never a 5xx", async () => {
		const cold = uniqueName("cold");
		await seedD1(users, cold, { age: 1 });
		await env.DB.prepare("ALTER TABLE records RENAME TO records_away").run();
		undo.push("ALTER TABLE records_away RENAME TO records");
		const res = await gql(`{ a: ${users}(keys: ["${cold}"]) { key } b: ${items}(keys: ["${cold}"]) { key } }`);
		expect(res.headers.get("retry-after")).toBe("1");
		const body = await gqlJson(res, 200);
		expect(body.data).toBeNull();
		// Root fields are non-null: the first failure nulls data (graphql-js reports that one).
		expect(body.errors?.length).toBeGreaterThan(0);
		for (const e of body.errors ?? []) expect(e.extensions.code).toBe("UNAVAILABLE");
		expect(body.errors?.[0]?.path?.[0]).toMatch(/^[ab]$/);
		expect(body.errors?.[0]?.extensions.retry_after_seconds).toBe(1);
		expect(body.errors?.[0]?.message).toMatch(/no storage tier could answer/);
	});

	it("of the event log is UNAVAILABLE too, for history and as_of", async () => {
		await env.DB.prepare("ALTER TABLE event_log RENAME TO event_log_away").run();
		undo.push("ALTER TABLE event_log_away RENAME TO event_log");
		const res = await gql(`{ h: ${users}_history(key: "u1") { next_cursor } }`);
		const body = await gqlJson(res, 200);
		expect(body.errors?.[0]?.extensions.code).toBe("UNAVAILABLE");
		const asOf = await gqlJson(await gql(`{ a: ${users}(keys: ["u1"], as_of: "${Date.now()}") { key } }`));
		expect(asOf.errors?.[0]?.extensions.code).toBe("UNAVAILABLE");
	});
});
