/**
 * GET /openapi.json against the real answers: each route's success and problem answers are sent
 * for real, and each status, content type and body must be one the document describes for that
 * route, every member of the body declared in its schema (an answer the document does not describe
 * is a bug in one or the other).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { applyDirect, call, createDataset, createKey, DLQ, eventsBody, message, runQueue, type SpecInput, uniqueName } from "./helpers";

type Schema = Record<string, unknown>;
interface Operation {
	responses: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}
interface Document {
	paths: Record<string, Record<string, Operation>>;
	components: { schemas: Record<string, Schema> };
}

let doc: Document;

const resolve = (s: Schema): Schema => (typeof s.$ref === "string" ? resolve(doc.components.schemas[s.$ref.split("/").pop() as string] as Schema) : s);

const typeOf = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v);

/**
 * Where `value` breaks `schema`, in the subset of JSON Schema the document uses ($ref, type, enum,
 * properties, required, additionalProperties, items, allOf, anyOf). Strict: an object member that
 * no `properties` declares (and no `additionalProperties` allows) is a break too.
 */
function breaks(raw: Schema, value: unknown, at = ""): string[] {
	const s = resolve(raw);
	if (Array.isArray(s.anyOf)) {
		const branches = (s.anyOf as Schema[]).map((b) => breaks(b, value, at));
		if (!branches.some((b) => b.length === 0)) return [`${at}: matches no anyOf branch (${branches.map((b) => b[0]).join(" | ")})`];
	}
	const out: string[] = [];
	if (s.type !== undefined) {
		const types = ([] as unknown[]).concat(s.type);
		const t = typeOf(value);
		if (!types.includes(t) && !(t === "integer" && types.includes("number"))) return [`${at}: ${t}, not ${types.join("|")}`];
	}
	if (Array.isArray(s.enum) && !s.enum.includes(value)) out.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
	const parts = [s, ...((s.allOf as Schema[] | undefined) ?? []).map(resolve)];
	for (const p of parts.slice(1)) out.push(...breaks({ ...p, properties: undefined, required: undefined, additionalProperties: undefined }, value, at));
	if (Array.isArray(value) && s.items) for (const [i, v] of value.entries()) out.push(...breaks(s.items as Schema, v, `${at}/${i}`));
	if (typeOf(value) === "object") {
		const obj = value as Record<string, unknown>;
		const props: Record<string, Schema> = Object.assign({}, ...parts.map((p) => p.properties ?? {}));
		const declaresMembers = parts.some((p) => p.properties !== undefined);
		const additional = parts.find((p) => p.additionalProperties !== undefined)?.additionalProperties as Schema | boolean | undefined;
		for (const p of parts) for (const r of (p.required as string[] | undefined) ?? []) if (!(r in obj)) out.push(`${at}/${r}: required, absent`);
		for (const [k, v] of Object.entries(obj)) {
			if (props[k]) out.push(...breaks(props[k], v, `${at}/${k}`));
			else if (typeof additional === "object") out.push(...breaks(additional, v, `${at}/${k}`));
			else if (additional === false || (declaresMembers && additional === undefined)) out.push(`${at}/${k}: not in the schema`);
		}
	}
	return out;
}

/** Where the answer is not one the document gives for `method path`: [] when it is. */
async function undocumented(res: Response, method: string, path: string): Promise<string[]> {
	const op = doc.paths[path]?.[method.toLowerCase()];
	if (!op) return [`${method} ${path} is not in the document`];
	const text = await res.text();
	const what = `${method} ${path} -> ${res.status}`;
	const response = op.responses[String(res.status)];
	if (!response) return [`${what}: status not documented (${text.slice(0, 200)})`];
	if (!response.content) return text === "" ? [] : [`${what}: a body where none is documented`];
	const type = (res.headers.get("content-type") ?? "").split(";")[0] as string;
	const media = response.content[type];
	if (!media) return [`${what}: content type ${type} not documented`];
	if (!type.includes("json") || !media.schema) return [];
	return breaks(media.schema, JSON.parse(text)).map((b) => `${what}: ${b}`);
}

const expectDocumented = async (res: Response, method: string, path: string) => expect(await undocumented(res, method, path)).toEqual([]);

const json = (v: unknown) => ({ json: v });
const ndjson = (lines: unknown[]) => ({ body: lines.map((l) => JSON.stringify(l)).join("\n"), headers: { "content-type": "application/x-ndjson" } });

describe("the OpenAPI document describes every real answer", () => {
	let ds = "";
	let aggs = "";
	let logs = "";
	let reader = "";
	let elsewhere = "";
	let letterId = 0;
	const t = Date.now() - 60_000;

	beforeAll(async () => {
		doc = (await (await call("GET", "/openapi.json", { key: null })).json()) as Document;
		ds = await createDataset({
			key: "id",
			ttl_seconds: 3600,
			fields: { a: "int", s: "string", emb: { type: "vector", dim: 2 } },
			search: { text: ["s"], filters: ["a"], vector: "emb" },
		} as unknown as SpecInput);
		aggs = await createDataset({
			key: "u",
			ttl_seconds: 3600,
			fields: { amt: "float" },
			aggregates: { n: { fn: "count", window: "1h" }, last: { fn: "last_n", of: "amt", n: 2, window: "1h" } },
		} as unknown as SpecInput);
		logs = await createDataset({ key: "id", ttl_seconds: 3600, fields: { msg: "string" }, ingest: { key: "/id" } } as unknown as SpecInput);
		await applyDirect([
			{ id: uniqueName("e"), dataset: ds, key: "k1", op: "upsert", value: { a: 1, s: "hello world", emb: [1, 0] }, time: t },
			{ id: uniqueName("e"), dataset: aggs, key: "u1", op: "upsert", value: { amt: 2 }, time: Date.now() - 1000 },
		]);
		reader = (await createKey(["read"])).key;
		elsewhere = (await createKey(["read", "write", "admin"], [logs])).key;
		await runQueue(DLQ, [message(eventsBody([{ id: uniqueName("e"), dataset: ds, key: "dl", op: "upsert", value: { a: 1 }, time: t }]))]);
		const list = (await (await call("GET", `/v1/dead-letters?dataset=${ds}`)).json()) as { dead_letters: { id: number }[] };
		letterId = list.dead_letters[0]?.id ?? 0;
		expect(letterId).toBeGreaterThan(0);
	});

	// [method, documented path, path to call, call options]
	const cases = (): [string, string, string, Parameters<typeof call>[2]?][] => [
		["GET", "/healthz", "/healthz", { key: null }],
		["GET", "/", "/", { key: null }],
		["GET", "/openapi.json", "/openapi.json", { key: null }],
		["GET", "/docs", "/docs", { key: null }],
		["GET", "/ping", "/ping", { key: null }],
		[
			"PUT",
			"/v1/datasets/{name}",
			`/v1/datasets/${ds}`,
			json({
				key: "id",
				ttl_seconds: 3600,
				fields: { a: "int", s: "string", emb: { type: "vector", dim: 2 } },
				search: { text: ["s"], filters: ["a"], vector: "emb" },
			}),
		],
		["PUT", "/v1/datasets/{name}", `/v1/datasets/${uniqueName()}`, json({ key: "id", fields: {} })],
		["PUT", "/v1/datasets/{name}", `/v1/datasets/${ds}`, json({ key: "id", fields: { a: "string" } })],
		["PUT", "/v1/datasets/{name}", `/v1/datasets/${ds}`, json({ key: 1 })],
		["PUT", "/v1/datasets/{name}", `/v1/datasets/${ds}`, { body: " ".repeat(300 * 1024), headers: { "content-type": "application/json" } }],
		["PUT", "/v1/datasets/{name}", `/v1/datasets/${ds}`, { key: reader, json: {} }],
		["GET", "/v1/datasets", "/v1/datasets"],
		["GET", "/v1/datasets", "/v1/datasets", { key: "hp_unknown" }],
		["GET", "/v1/datasets/{name}", `/v1/datasets/${aggs}`],
		["GET", "/v1/datasets/{name}", `/v1/datasets/${logs}`],
		["GET", "/v1/datasets/{name}", "/v1/datasets/no_such_dataset"],
		["GET", "/v1/datasets/{name}", `/v1/datasets/${ds}`, { key: elsewhere }],
		["GET", "/v1/datasets/{name}/schema", `/v1/datasets/${aggs}/schema`],
		["GET", "/v1/datasets/{name}/records/{key}", `/v1/datasets/${ds}/records/k1`],
		["GET", "/v1/datasets/{name}/records/{key}", `/v1/datasets/${ds}/records/k1?fields=a&max_staleness=1`],
		["GET", "/v1/datasets/{name}/records/{key}", `/v1/datasets/${ds}/records/k1?max_staleness=0&if_stale=omit`],
		["GET", "/v1/datasets/{name}/records/{key}", `/v1/datasets/${ds}/records/k1?as_of=${Date.now()}`],
		["GET", "/v1/datasets/{name}/records/{key}", `/v1/datasets/${aggs}/records/u1`],
		["GET", "/v1/datasets/{name}/records/{key}", `/v1/datasets/${ds}/records/none`],
		["GET", "/v1/datasets/{name}/records/{key}", `/v1/datasets/${ds}/records/k1?fields=nope`],
		["GET", "/v1/datasets/{name}/records", `/v1/datasets/${ds}/records?include_deleted=true`],
		["GET", "/v1/datasets/{name}/records", `/v1/datasets/${ds}/records?limit=0`],
		["GET", "/v1/datasets/{name}/records/{key}/history", `/v1/datasets/${ds}/records/k1/history`],
		["GET", "/v1/datasets/{name}/records/{key}/history", `/v1/datasets/${ds}/records/k1/history?since=soon`],
		[
			"POST",
			"/v1/lookup",
			"/v1/lookup",
			json({
				requests: [
					{ dataset: ds, keys: ["k1", "none"] },
					{ dataset: aggs, keys: ["u1"] },
				],
				max_staleness: 100,
			}),
		],
		["POST", "/v1/lookup", "/v1/lookup", json({ requests: [{ dataset: ds, keys: Array.from({ length: 1001 }, (_, i) => `k${i}`) }] })],
		["POST", "/v1/lookup", "/v1/lookup", json({ requests: [] })],
		["POST", "/v1/lookup", "/v1/lookup", { key: elsewhere, json: { requests: [{ dataset: ds, keys: ["k1"] }] } }],
		[
			"POST",
			"/v1/events",
			"/v1/events",
			json([
				{ dataset: ds, key: "k2", op: "upsert", value: { a: 2 } },
				{ dataset: ds, op: "upsert" },
			]),
		],
		["POST", "/v1/events", "/v1/events", { body: "x", headers: { "content-type": "text/csv" } }],
		["POST", "/v1/events", "/v1/events", { key: reader, json: [] }],
		[
			"POST",
			"/v1/datasets/{name}/import",
			`/v1/datasets/${ds}/import`,
			ndjson([
				{ id: "i1", a: 1, _event_time: t },
				{ id: "i2", a: "x" },
			]),
		],
		["POST", "/v1/datasets/{name}/import", `/v1/datasets/${ds}/import`, json([{ a: 1 }])],
		["POST", "/v1/datasets/{name}/import", "/v1/datasets/no_such_dataset/import", json([{ a: 1 }])],
		["POST", "/v1/datasets/{name}/ingest", `/v1/datasets/${logs}/ingest`, json([{ id: "l1", msg: "m" }, { nothing: 1 }])],
		["POST", "/v1/datasets/{name}/ingest", `/v1/datasets/${ds}/ingest`, json([{ id: "l1" }])],
		["POST", "/v1/datasets/{name}/search", `/v1/datasets/${ds}/search`, json({ q: "hello", highlight: true })],
		["POST", "/v1/datasets/{name}/search", `/v1/datasets/${ds}/search`, json({ vector: { value: [1, 0] }, filter: { a: { gte: 0 } } })],
		["POST", "/v1/datasets/{name}/search", `/v1/datasets/${ds}/search`, json({ filter: { nope: 1 } })],
		["GET", "/v1/datasets/{name}/search", `/v1/datasets/${ds}/search`],
		["POST", "/v1/datasets/{name}/search/reindex", `/v1/datasets/${ds}/search/reindex`],
		["POST", "/v1/datasets/{name}/search/reindex", `/v1/datasets/${aggs}/search/reindex`],
		[
			"POST",
			"/v1/keys",
			"/v1/keys",
			json({ name: "k", scopes: ["read"], datasets: [ds], rate_limit: { requests: 5, period_seconds: 60 }, expires_at: Date.now() + 60_000 }),
		],
		["POST", "/v1/keys", "/v1/keys", json({ name: "k" })],
		["GET", "/v1/keys", "/v1/keys?include_revoked=true"],
		["GET", "/v1/keys", "/v1/keys?include_revoked=yes"],
		["DELETE", "/v1/keys/{id}", "/v1/keys/no_such_key"],
		["POST", "/v1/datasets/{name}/rebuild", `/v1/datasets/${ds}/rebuild?mode=drop`],
		["POST", "/v1/datasets/{name}/rebuild", `/v1/datasets/${ds}/rebuild?mode=sideways`],
		["GET", "/v1/datasets/{name}/rebuild", `/v1/datasets/${ds}/rebuild`],
		["GET", "/v1/datasets/{name}/rebuild", `/v1/datasets/${logs}/rebuild`],
		["POST", "/v1/rebuild", "/v1/rebuild", { key: elsewhere }],
		["GET", "/v1/stats", "/v1/stats"],
		["GET", "/v1/dead-letters", `/v1/dead-letters?dataset=${ds}`],
		["GET", "/v1/dead-letters", "/v1/dead-letters?limit=x"],
		["POST", "/v1/dead-letters/{id}/replay", `/v1/dead-letters/${letterId}/replay`],
		["POST", "/v1/dead-letters/{id}/replay", "/v1/dead-letters/999999999/replay"],
		["POST", "/v1/dead-letters/replay", `/v1/dead-letters/replay?dataset=${ds}`],
		["DELETE", "/v1/dead-letters", `/v1/dead-letters?dataset=${ds}&replayed=true`],
		["GET", "/v1/dead-letters/{id}", `/v1/dead-letters/${letterId}`],
		["GET", "/v1/dead-letters/{id}", "/v1/dead-letters/x"],
		["POST", "/v1/dead-letters/replay", `/v1/dead-letters/replay?dataset=${ds}&limit=1&before=999999999`],
		["DELETE", "/v1/dead-letters/{id}", `/v1/dead-letters/${letterId}`],
		["POST", "/graphql", "/graphql", json({ query: `{ ${ds}(keys: ["k1"]) { key status value { a } } }` })],
		["POST", "/graphql", "/graphql", json({ nothing: 1 })],
		["POST", "/graphql", "/graphql", { json: { query: "{ nope }" }, headers: { accept: "application/graphql-response+json" } }],
		["GET", "/graphql", `/graphql?query=${encodeURIComponent("mutation { x }")}`],
		["GET", "/graphql", "/graphql", { key: null, headers: { accept: "text/html" } }],
	];

	it("for every route: success and problem answers alike", async () => {
		const found: string[] = [];
		for (const [method, path, url, opts] of cases()) found.push(...(await undocumented(await call(method, url, opts), method, path)));
		expect(found).toEqual([]);
	});

	it("a 429 past a key's rate limit, on the fast lane and in the app", async () => {
		const limited = (await (
			await call("POST", "/v1/keys", json({ name: "rl", scopes: ["read"], rate_limit: { requests: 1, period_seconds: 3600 } }))
		).json()) as {
			key: string;
		};
		await expectDocumented(await call("GET", `/v1/datasets/${ds}/records/k1`, { key: limited.key }), "GET", "/v1/datasets/{name}/records/{key}");
		const res = await call("GET", `/v1/datasets/${ds}/records/k1`, { key: limited.key });
		expect(res.status).toBe(429);
		await expectDocumented(res, "GET", "/v1/datasets/{name}/records/{key}");
		await expectDocumented(await call("POST", "/v1/lookup", { key: limited.key, json: { requests: [{ dataset: ds, keys: ["k1"] }] } }), "POST", "/v1/lookup");
	});

	it("every route that takes a key documents 503: while D1 is down, a key this isolate has not seen cannot be checked", () => {
		for (const [path, methods] of Object.entries(doc.paths)) {
			for (const [method, op] of Object.entries(methods)) {
				if (!op.responses["401"]) continue;
				expect(op.responses["503"], `${method.toUpperCase()} ${path} documents 503`).toBeDefined();
			}
		}
	});

	it("a documented path asked with another method is a 405 problem with Allow; an unknown path a 404", async () => {
		const res = await call("DELETE", "/v1/lookup");
		expect(res.status).toBe(405);
		expect(res.headers.get("allow")).toBe("POST");
		expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
		expect(((await res.json()) as { detail: string }).detail).toMatch(/DELETE is not allowed on \/v1\/lookup; it takes POST/);
		const record = await call("POST", `/v1/datasets/${ds}/records/k1`, json({}));
		expect(record.status).toBe(405);
		expect(record.headers.get("allow")).toBe("GET, HEAD");
		await record.body?.cancel();
		const search = await call("PUT", `/v1/datasets/${ds}/search`);
		expect(search.headers.get("allow")?.split(", ").sort()).toEqual(["GET", "HEAD", "POST"]);
		await search.body?.cancel();
		const unknown = await call("GET", "/v1/nothing-here");
		expect(unknown.status).toBe(404);
		await unknown.body?.cancel();
		// A trailing slash is another path (the app routes strictly), not a method mismatch.
		const slash = await call("GET", "/v1/datasets/");
		expect(slash.status).toBe(404);
		await slash.body?.cancel();
	});
});
