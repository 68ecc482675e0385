/**
 * A route that takes its options in a JSON body ignored the query string, so an option of that
 * body given in the URL was silently dropped: `POST /v1/lookup?max_staleness=0` answered as if no
 * bound had been asked (values up to KV's lag behind D1 reported present to the dataset's ttl), and
 * `POST /v1/keys?expires_at=...` made a key that never expires. Such a parameter is now a 400
 * saying it belongs in the body; other parameters (a cache-buster) are still ignored.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem } from "./helpers";

describe("an option of the JSON body given in the query string", () => {
	it("POST /v1/lookup?max_staleness=0 is a 400 naming it and saying it goes in the body", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		const body = { requests: [{ dataset: ds, keys: ["k"] }] };
		const p = await expectProblem(await call("POST", "/v1/lookup?max_staleness=0", { json: body }), 400);
		expect(p.detail).toMatch(/max_staleness.*body/);
		expect(p.errors).toEqual([{ pointer: "max_staleness", detail: expect.stringMatching(/body/) }]);
		await expectProblem(await call("POST", "/v1/lookup?if_stale=omit", { json: body }), 400);
		// A parameter no body member is named like is still ignored, as on every route that takes none.
		await expectJson(await call("POST", "/v1/lookup?t=1", { json: body }), 200);
	});

	it("POST /v1/keys?expires_at=... is a 400, not a key that never expires", async () => {
		const at = new Date(Date.now() + 3600_000).toISOString();
		const p = await expectProblem(await call("POST", `/v1/keys?expires_at=${encodeURIComponent(at)}`, { json: { name: "q", scopes: ["read"] } }), 400);
		expect(p.errors?.[0]?.pointer).toBe("expires_at");
	});

	it("POST /v1/datasets/:name/search?max_staleness=0 is a 400", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" } });
		const p = await expectProblem(await call("POST", `/v1/datasets/${ds}/search?max_staleness=0`, { json: { q: "x" } }), 400);
		expect(p.errors?.[0]?.pointer).toBe("max_staleness");
	});

	it("PUT /v1/datasets/:name?ttl_seconds=5 is a 400, not a spec with the default ttl", async () => {
		const p = await expectProblem(await call("PUT", "/v1/datasets/q_ttl_in_query?ttl_seconds=5", { json: { key: "id", fields: { a: "int" } } }), 400);
		expect(p.errors?.[0]?.pointer).toBe("ttl_seconds");
		await expectProblem(await call("GET", "/v1/datasets/q_ttl_in_query"), 404);
	});

	it("a route that takes a list (events, import rows, log records) refuses any query parameter: ?op=patch would have replaced whole values", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int", b: "int" } });
		const imported = await call("POST", `/v1/datasets/${ds}/import?op=patch`, { json: [{ id: "k", a: 1 }] });
		const p = await expectProblem(imported, 400);
		expect(p.errors).toEqual([{ pointer: "op", detail: expect.stringMatching(/takes none \(its options are in the body\)/) }]);
		// Nothing of the refused request was applied.
		await expectProblem(await call("GET", `/v1/datasets/${ds}/records/k`), 404);
		const events = await expectProblem(await call("POST", "/v1/events?dataset=x", { json: [{ dataset: ds, key: "k", op: "upsert", value: { a: 1 } }] }), 400);
		expect(events.errors?.[0]?.pointer).toBe("dataset");
		const logs = await createDataset({ key: "id", fields: { a: "int" }, ingest: { key: "/id", fields: { a: "/a" } } } as never);
		const shipped = await expectProblem(await call("POST", `/v1/datasets/${logs}/ingest?key=/id`, { json: [{ id: "k", a: 1 }] }), 400);
		expect(shipped.errors?.[0]?.pointer).toBe("key");
	});
});
