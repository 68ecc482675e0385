/**
 * The headers a client acts on, against GET /openapi.json. The document declared none: a 429's and
 * a 503's Retry-After, a 401's WWW-Authenticate and a record read's ETag and Cache-Control were
 * only in prose, so a client generated from the document had no accessor for them and /docs did not
 * show them. Each is now declared on the responses that carry it, and the real answers carry what
 * is declared.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, postEvents, waitForRecord } from "./helpers";

interface Operation {
	responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, unknown> }>;
}
let doc: { paths: Record<string, Record<string, Operation>> };

beforeAll(async () => {
	doc = (await (await call("GET", "/openapi.json", { key: null })).json()) as typeof doc;
});

const declared = (path: string, method: string, status: number) =>
	Object.keys(doc.paths[path]?.[method]?.responses[String(status)]?.headers ?? {}).map((h) => h.toLowerCase());

/** Asserts that `res` has the status and carries each of `headers`, and that the document declares them for that status. */
function expectDeclaredAndSent(res: Response, path: string, method: string, status: number, headers: string[]) {
	expect(res.status).toBe(status);
	for (const h of headers) {
		expect(res.headers.get(h), `${status} carries ${h}`).toBeTruthy();
		expect(declared(path, method, status), `${method.toUpperCase()} ${path} ${status} declares ${h}`).toContain(h);
	}
}

describe("OpenAPI response headers", () => {
	it("every 401 problem declares WWW-Authenticate, every 429 and 503 problem Retry-After", () => {
		const missing: string[] = [];
		for (const [path, methods] of Object.entries(doc.paths)) {
			for (const [method, op] of Object.entries(methods)) {
				for (const [status, header] of [
					["401", "www-authenticate"],
					["429", "retry-after"],
					["503", "retry-after"],
				] as const) {
					// /healthz's 503 is its health document, not a problem: it has no Retry-After.
					const problem = op.responses[status]?.content?.["application/problem+json"];
					if (problem && !declared(path, method, Number(status)).includes(header)) missing.push(`${method} ${path} ${status} ${header}`);
				}
			}
		}
		expect(missing).toEqual([]);
	});

	it("the real answers carry what is declared: a 401, a 429, a record's 200 and 304", async () => {
		const path = "/v1/datasets/{name}/records/{key}";
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		await postEvents([{ dataset: ds, key: "k", op: "upsert", value: { a: 1 } }]);
		await waitForRecord(ds, "k");

		expectDeclaredAndSent(await call("GET", `/v1/datasets/${ds}/records/k`, { key: null }), path, "get", 401, ["www-authenticate"]);

		const ok = await call("GET", `/v1/datasets/${ds}/records/k`);
		expectDeclaredAndSent(ok, path, "get", 200, ["etag", "cache-control", "x-hotpath-tier", "server-timing"]);
		const etag = ok.headers.get("etag") as string;
		await ok.body?.cancel();
		expectDeclaredAndSent(await call("GET", `/v1/datasets/${ds}/records/k`, { headers: { "if-none-match": etag } }), path, "get", 304, [
			"etag",
			"cache-control",
		]);

		const limited = await call("POST", "/v1/keys", { json: { name: "rl", scopes: ["read"], rate_limit: { requests: 1, period_seconds: 3600 } } });
		const { key } = (await limited.json()) as { key: string };
		await (await call("GET", `/v1/datasets/${ds}/records/k`, { key })).body?.cancel();
		expectDeclaredAndSent(await call("GET", `/v1/datasets/${ds}/records/k`, { key }), path, "get", 429, ["retry-after"]);
	});
});
