/**
 * A query parameter given twice is a 400 problem on every route but /ping (README: "a parameter
 * given twice is still a 400", even on routes that take no options). The OpenAPI document listed no
 * 400 for a dozen of those routes (GET /v1/datasets, /v1/stats, /healthz, DELETE /v1/keys/{id},
 * ...), so a client generated from it met an answer it was told could not happen.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, userSpec } from "./helpers";

interface Document {
	paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
}

describe("a query parameter given twice", () => {
	it("is a 400 problem the document lists, on every documented route", async () => {
		const ds = await createDataset(userSpec());
		const doc = (await (await call("GET", "/openapi.json", { key: null })).json()) as Document;
		const found: string[] = [];
		for (const [path, methods] of Object.entries(doc.paths)) {
			if (path === "/ping") continue;
			for (const [method, op] of Object.entries(methods)) {
				const url = path.replace("{name}", ds).replace("{key}", "k1").replace("{id}", "1");
				const res = await call(method.toUpperCase(), `${url}?t=1&t=2`);
				const what = `${method.toUpperCase()} ${path}`;
				expect(res.status, what).toBe(400);
				expect(res.headers.get("content-type"), what).toMatch(/^application\/problem\+json/);
				if (!op.responses["400"]?.content?.["application/problem+json"]) found.push(what);
			}
		}
		expect(found, "routes whose document lists no 400 problem").toEqual([]);
	});
});
