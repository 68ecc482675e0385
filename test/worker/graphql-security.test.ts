/**
 * GraphQL's edges: keys (none, unknown, expired, without the read scope, past their rate limit),
 * keys limited to datasets (the schema shows only theirs), every bound on a request (tokens,
 * depth, cost, keys, body size) as a clear error with extensions.code, and bad arguments as
 * BAD_USER_INPUT naming where. Nothing answers a 5xx.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { MAX_COST, MAX_DEPTH, MAX_KEYS, MAX_TOKENS } from "../../src/graphql/limits";
import {
	applyDirect,
	type CallOptions,
	type CreatedKey,
	call,
	createDataset,
	createKey,
	expectJson,
	expectProblem,
	sleep,
	uniqueName,
	userSpec,
} from "./helpers";

interface GqlBody {
	data?: Record<string, unknown> | null;
	errors?: { message: string; path?: (string | number)[]; extensions: { code: string; [k: string]: unknown } }[];
}

const gql = (query: string, variables?: Record<string, unknown>, opts: CallOptions = {}) => call("POST", "/graphql", { ...opts, json: { query, variables } });
const getGql = (query: string, opts: CallOptions = {}) => call("GET", `/graphql?query=${encodeURIComponent(query)}`, opts);

async function gqlJson(res: Response, status = 200): Promise<GqlBody> {
	const text = await res.text();
	expect(res.status, `expected ${status}, got ${res.status}: ${text.slice(0, 500)}`).toBe(status);
	expect(res.headers.get("content-type")).toMatch(/^application\/(graphql-response\+)?json\b/);
	return JSON.parse(text) as GqlBody;
}

/** A request that did not run: no data, and the one error's code. */
async function refused(res: Response, code: string, status = 200): Promise<string> {
	const body = await gqlJson(res, status);
	expect(body.data, JSON.stringify(body)).toBeUndefined();
	expect(body.errors?.map((e) => e.extensions.code)).toContain(code);
	return body.errors?.find((e) => e.extensions.code === code)?.message ?? "";
}

/** An operation that ran, with a field error: data null (root fields are non-null), and the error's code and path. */
async function fieldError(res: Response, code: string): Promise<GqlBody["errors"]> {
	const body = await gqlJson(res, 200);
	expect(body.data, JSON.stringify(body)).toBeNull();
	expect(body.errors?.[0]?.extensions.code, JSON.stringify(body.errors)).toBe(code);
	return body.errors;
}

let a = "";
let b = "";
beforeAll(async () => {
	a = await createDataset(userSpec(3600));
	b = await createDataset({ key: "id", fields: { secret: "string" }, ttl_seconds: 3600 });
	await applyDirect([
		{ id: uniqueName("e"), dataset: a, key: "k", op: "upsert", value: { age: 1 }, time: Date.now() - 1000 },
		{ id: uniqueName("e"), dataset: b, key: "k", op: "upsert", value: { secret: "s" }, time: Date.now() - 1000 },
	]);
});

describe("keys", () => {
	it("no key, a malformed header or an unknown key is a 401 problem, on POST and on GET", async () => {
		for (const res of [
			await gql("{ _datasets }", undefined, { key: null }),
			await getGql("{ _datasets }", { key: null }),
			await gql("{ _datasets }", undefined, { key: "not-a-key" }),
			await call("POST", "/graphql", { json: { query: "{ _datasets }" }, key: null, headers: { authorization: "Basic x" } }),
		]) {
			await expectProblem(res, 401);
			expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
		}
	});

	it("a key without the read scope is a 403 problem; read and admin keys are answered", async () => {
		const write = await createKey(["write"]);
		await expectProblem(await gql("{ _datasets }", undefined, { key: write.key }), 403);
		await expectProblem(await getGql("{ _datasets }", { key: write.key }), 403);
		const read = await createKey(["read"]);
		expect((await gqlJson(await gql(`{ ${a}(keys: ["k"]) { value { age } } }`, undefined, { key: read.key }))).data).toEqual({ [a]: [{ value: { age: 1 } }] });
	});

	it("an expired key is a 401, and a key past its rate limit a 429 with Retry-After", async () => {
		const expiring = await expectJson<CreatedKey>(
			await call("POST", "/v1/keys", { json: { name: uniqueName("key"), scopes: ["read"], expires_at: new Date(Date.now() + 1000).toISOString() } }),
			201,
		);
		await sleep(1100);
		await expectProblem(await gql("{ _datasets }", undefined, { key: expiring.key }), 401);
		const limited = await expectJson<CreatedKey>(
			await call("POST", "/v1/keys", { json: { name: uniqueName("key"), scopes: ["read"], rate_limit: { requests: 1, period_seconds: 3600 } } }),
			201,
		);
		await gqlJson(await gql("{ _datasets }", undefined, { key: limited.key }));
		const res = await gql("{ _datasets }", undefined, { key: limited.key });
		await expectProblem(res, 429);
		expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
	});

	it("a key limited to dataset A sees only A in the schema, and cannot query B", async () => {
		const limited = await createKey(["read"], [a]);
		const opts = { key: limited.key };
		const schema = (await gqlJson(await gql("{ __schema { queryType { fields { name } } types { name fields { name } } } }", undefined, opts))).data as {
			__schema: { queryType: { fields: { name: string }[] }; types: { name: string; fields: { name: string }[] | null }[] };
		};
		const rootFields = schema.__schema.queryType.fields.map((f) => f.name).sort();
		expect(rootFields).toEqual(["_datasets", a, `${a}_history`].sort());
		const text = JSON.stringify(schema);
		expect(text).not.toContain(b);
		expect(text).not.toContain("secret");
		// The unlimited admin key does see B, with its type.
		const adminTypes = (await gqlJson(await gql("{ __schema { types { name fields { name } } } }"))).data as {
			__schema: { types: { name: string; fields: { name: string }[] | null }[] };
		};
		const bType = adminTypes.__schema.types.find((t) => t.fields?.some((f) => f.name === "secret"))?.name as string;
		expect(bType).toBeTruthy();
		expect((await gqlJson(await gql(`{ __type(name: "${bType}") { name } }`, undefined, opts))).data).toEqual({ __type: null });

		expect((await gqlJson(await gql("{ _datasets }", undefined, opts))).data).toEqual({ _datasets: [a] });
		const msg = await refused(await gql(`{ ${b}(keys: ["k"]) { value { secret } } }`, undefined, opts), "GRAPHQL_VALIDATION_FAILED");
		expect(msg).toMatch(/Cannot query field/);
		expect(msg).not.toContain("secret");
		expect((await gqlJson(await gql(`{ ${a}(keys: ["k"]) { value { age } } }`, undefined, opts))).data).toEqual({ [a]: [{ value: { age: 1 } }] });
	});
});

describe("limits", () => {
	it("too many tokens is refused while parsing, with TOO_COMPLEX", async () => {
		const query = `{ _datasets ${"__typename ".repeat(MAX_TOKENS)} }`;
		expect(await refused(await gql(query), "TOO_COMPLEX")).toMatch(new RegExp(`more than ${MAX_TOKENS} tokens`));
		await refused(await call("POST", "/graphql", { json: { query }, headers: { accept: "application/graphql-response+json" } }), "TOO_COMPLEX", 400);
		// Comments are not tokens, and are bounded on their own.
		await refused(await gql(`{ _datasets ${"#c\n".repeat(1001)} }`), "TOO_COMPLEX");
	});

	it("too deep is refused before anything runs, with TOO_COMPLEX; GraphiQL's own introspection passes", async () => {
		const deep = `{ __type(name: "Query") { fields { type { ${"ofType { ".repeat(MAX_DEPTH)}name${" }".repeat(MAX_DEPTH)} } } } }`;
		expect(await refused(await gql(deep), "TOO_COMPLEX")).toMatch(/depth limit of 10 exceeded/);
		// The full introspection query GraphiQL sends is deeper through __schema, which graphql's own rule bounds instead.
		const { getIntrospectionQuery } = await import("graphql");
		const body = await gqlJson(
			await gql(getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, inputValueDeprecation: true })),
		);
		expect(body.errors).toBeUndefined();
		// ...and a deeper crawl of __schema is refused by it, as TOO_COMPLEX too.
		const crawl = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
		expect(await refused(await gql(crawl), "TOO_COMPLEX")).toMatch(/introspection depth/);
	});

	it("too costly or too many keys is refused before any read, with TOO_COMPLEX", async () => {
		const keys = Array.from({ length: MAX_KEYS + 1 }, (_, i) => `k${i}`);
		expect(await refused(await gql(`query($k: [String!]!) { ${a}(keys: $k) { key } }`, { k: keys }), "TOO_COMPLEX")).toMatch(
			new RegExp(`reads ${MAX_KEYS + 1} keys; the limit is ${MAX_KEYS}`),
		);
		// Split over aliases, the keys still add up.
		const half = keys.slice(0, 600);
		await refused(await gql(`query($k: [String!]!) { x: ${a}(keys: $k) { key } y: ${a}(keys: $k) { key } }`, { k: half }), "TOO_COMPLEX");
		// 1,000 keys of 120 selected fields each.
		const aliases = Array.from({ length: 120 }, (_, i) => `f${i}: age`).join(" ");
		expect(await refused(await gql(`query($k: [String!]!) { ${a}(keys: $k) { value { ${aliases} } } }`, { k: keys.slice(0, 1000) }), "TOO_COMPLEX")).toMatch(
			new RegExp(`the limit is ${MAX_COST}`),
		);
		// Introspection is costly too: ten copies of the schema are refused.
		await refused(await gql(`{ ${Array.from({ length: 10 }, (_, i) => `s${i}: __schema { types { name } }`).join(" ")} }`), "TOO_COMPLEX");
		// 1,000 keys of a few fields are fine.
		const ok = await gqlJson(await gql(`query($k: [String!]!) { ${a}(keys: $k) { key status value { age } } }`, { k: keys.slice(0, 1000) }));
		expect(ok.data?.[a]).toHaveLength(1000);
	});

	it("too large a body is a 413 problem before it is read", async () => {
		const body = JSON.stringify({ query: "{ _datasets }", variables: { pad: "x".repeat(1024 * 1024) } });
		await expectProblem(await call("POST", "/graphql", { body, headers: { "content-type": "application/json" } }), 413);
	});

	it("a parse error is GRAPHQL_PARSE_FAILED with its location", async () => {
		const body = await gqlJson(await gql("{ x("));
		expect(body.errors?.[0]).toMatchObject({ extensions: { code: "GRAPHQL_PARSE_FAILED" }, locations: [{ line: 1, column: 5 }] });
	});
});

describe("bad arguments", () => {
	it("are BAD_USER_INPUT errors that say what and where, as REST's 400s do", async () => {
		const cases: [string, RegExp][] = [
			[`${a}(keys: ["${"x".repeat(401)}"]) { key }`, /keys\[0\]: key is longer than 400 bytes/],
			[`${a}(keys: [""]) { key }`, /keys\[0\]: a key must not be empty/],
			[`${a}(keys: ["k"], fields: ["nope"]) { key }`, /unknown field\(s\) nope/],
			[`${a}(keys: ["k"], max_staleness: -1) { key }`, /max_staleness must be a non-negative number/],
			[`${a}(keys: ["k"], as_of: "yesterday") { key }`, /as_of "yesterday" is not a valid RFC 3339 time/],
			[`${a}(keys: ["k"], as_of: "${Date.now() - 30 * 86_400_000}") { key }`, /before the history of dataset/],
			[`${a}_history(key: "k", limit: 0) { next_cursor }`, /limit must be an integer from 1 to 1000/],
			[`${a}_history(key: "k", cursor: "%%") { next_cursor }`, /cursor is not one this API gave out/],
			[`${a}_history(key: "k", since: "soon") { next_cursor }`, /since "soon" is not a valid RFC 3339 time/],
		];
		for (const [field, message] of cases) {
			const errors = await fieldError(await gql(`{ r: ${field} }`), "BAD_USER_INPUT");
			expect(errors?.[0]?.message).toMatch(message);
			expect(errors?.[0]?.path).toEqual(["r"]);
		}
		// GraphQL strings cannot spell a lone surrogate; a JSON variable can.
		const errors = await fieldError(await gql(`query($k: [String!]!) { r: ${a}(keys: $k) { key } }`, { k: ["ok", "\ud800"] }), "BAD_USER_INPUT");
		expect(errors?.[0]?.message).toMatch(/keys\[1\]: key must be well-formed Unicode/);
	});

	it("variables of the wrong type are refused before anything runs", async () => {
		expect(await refused(await gql(`query($k: [String!]!) { ${a}(keys: $k) { key } }`, { k: [1] }), "BAD_USER_INPUT")).toMatch(/\$k/);
		await refused(await gql(`query($k: [String!]!) { ${a}(keys: $k) { key } }`), "BAD_USER_INPUT");
		await refused(await gql(`query($s: IfStale) { ${a}(keys: ["k"], if_stale: $s) { key } }`, { s: "never" }), "BAD_USER_INPUT");
	});
});
