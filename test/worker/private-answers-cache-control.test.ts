/**
 * Answers that need a key (dataset specs, keys, dead letters, stats, rebuild progress, records
 * pages...) carried no Cache-Control: a browser or shared cache could keep one and answer it again
 * after a spec was applied or a key revoked, or to another key. Every such answer now says
 * `private, no-store` unless its route set its own policy (a record read's freshness-derived one,
 * no-store on history and search), and /openapi.json declares it on their successes.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, env, postEvents, waitForRecord } from "./helpers";

interface Operation {
	security?: unknown[];
	responses: Record<string, { headers?: Record<string, unknown> }>;
}
let doc: { paths: Record<string, Record<string, Operation>> };
let ds: string;
let letterId: number;

beforeAll(async () => {
	doc = (await (await call("GET", "/openapi.json", { key: null })).json()) as typeof doc;
	const searchable = { key: "id", fields: { a: "int", title: "string" }, search: { text: ["title"] } };
	ds = await createDataset(searchable);
	await postEvents([{ dataset: ds, key: "k", op: "upsert", value: { a: 1, title: "hello" } }]);
	await waitForRecord(ds, "k");
	// A dead letter of the dataset, for the route that shows one.
	const letter = await env.DB.prepare(
		"INSERT INTO dead_letters (queue, message_id, body, error, attempts, datasets) VALUES ('q', ?1, '{}', 'test', 1, json_array(?2)) RETURNING id",
	)
		.bind(crypto.randomUUID(), ds)
		.first<{ id: number }>();
	letterId = letter?.id ?? 0;
});

/** Each GET that needs a key, as a request that succeeds, and the Cache-Control its answer carries. */
const keyedGets: [documented: string, request: () => string, cacheControl: string][] = [
	["/v1/datasets", () => "/v1/datasets", "private, no-store"],
	["/v1/datasets/{name}", () => `/v1/datasets/${ds}`, "private, no-store"],
	["/v1/datasets/{name}/schema", () => `/v1/datasets/${ds}/schema`, "private, no-store"],
	["/v1/datasets/{name}/records", () => `/v1/datasets/${ds}/records`, "private, no-store"],
	["/v1/datasets/{name}/records/{key}/history", () => `/v1/datasets/${ds}/records/k/history`, "no-store"],
	["/v1/datasets/{name}/search", () => `/v1/datasets/${ds}/search`, "no-store"],
	["/v1/datasets/{name}/rebuild", () => `/v1/datasets/${ds}/rebuild`, "private, no-store"],
	["/v1/keys", () => "/v1/keys", "private, no-store"],
	["/v1/dead-letters", () => "/v1/dead-letters", "private, no-store"],
	["/v1/dead-letters/{id}", () => `/v1/dead-letters/${letterId}`, "private, no-store"],
	["/v1/stats", () => "/v1/stats", "private, no-store"],
	["/graphql", () => "/graphql?query=%7B__typename%7D", "no-store"],
];

describe("answers that need a key are not to be stored", () => {
	it("the table above covers every GET the document says needs a key, record reads aside", () => {
		const documented = Object.entries(doc.paths)
			.filter(([path, methods]) => methods.get?.security?.length && path !== "/v1/datasets/{name}/records/{key}")
			.map(([path]) => path)
			.sort();
		expect(documented).toEqual(keyedGets.map(([path]) => path).sort());
	});

	it.each(keyedGets)("GET %s: private, no-store (or its route's own no-store), and the document says so", async (path, request, cacheControl) => {
		const res = await call("GET", request());
		expect(res.status, await res.clone().text()).toBe(200);
		expect(res.headers.get("cache-control")).toBe(cacheControl);
		await res.body?.cancel();
		const declared = Object.keys(doc.paths[path]?.get?.responses["200"]?.headers ?? {}).map((h) => h.toLowerCase());
		expect(declared).toContain("cache-control");
	});

	it("a record read keeps its own freshness-derived policy and ETag", async () => {
		const res = await call("GET", `/v1/datasets/${ds}/records/k`);
		expect(res.status).toBe(200);
		expect(res.headers.get("cache-control")).toMatch(/^private, max-age=\d+$/);
		expect(res.headers.get("etag")).toBeTruthy();
		await res.body?.cancel();
	});

	it("a keyless answer is left as it was", async () => {
		const res = await call("GET", "/openapi.json", { key: null });
		expect(res.headers.get("cache-control")).toBeNull();
		await res.body?.cancel();
	});
});
