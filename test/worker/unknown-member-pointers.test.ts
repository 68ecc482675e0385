/**
 * A body with an unknown member got a problem item pointing at the object holding it (`/` for a
 * spec's `colour`, `/0` for an event's `ttl`), so a client had to read the detail to learn which
 * member was wrong. Each unknown member now gets its own item, pointing at the member itself
 * (`/colour`, `/0/ttl`), its name escaped per RFC 6901 (`~` as `~0`, `/` as `~1`). The answers of
 * a partly accepted body still list their rejects as {index, error}.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem, uniqueName } from "./helpers";

let ds: string;

beforeAll(async () => {
	const searchable = { key: "id", fields: { a: "int", title: "string" }, search: { text: ["title"] } };
	ds = await createDataset(searchable);
});

describe("an unknown member is pointed at, not the object holding it", () => {
	it("PUT /v1/datasets: top-level and nested members, one item each, names escaped", async () => {
		const spec = { key: "id", fields: { a: "int" }, colour: "blue", "a/b~c": 1, search: { text: ["a"], facets: ["a"] } };
		const p = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json: spec }), 400);
		expect(p.errors).toEqual(
			expect.arrayContaining([
				{ pointer: "/colour", detail: 'unknown property "colour"' },
				{ pointer: "/a~1b~0c", detail: 'unknown property "a/b~c"' },
				{ pointer: "/search/facets", detail: 'unknown property "facets"' },
			]),
		);
		expect(p.errors?.map((e) => e.pointer)).not.toContain("/");
		expect(p.detail).toContain('/colour: unknown property "colour"');
	});

	it("POST /v1/keys: in the body and in rate_limit", async () => {
		const body = { name: "k", scopes: ["read"], colour: 1, rate_limit: { requests: 1, period_seconds: 60, burst: 2 } };
		const p = await expectProblem(await call("POST", "/v1/keys", { json: body }), 400);
		expect(p.errors).toEqual([
			{ pointer: "/rate_limit/burst", detail: 'unknown property "burst"' },
			{ pointer: "/colour", detail: 'unknown property "colour"' },
		]);
	});

	it("POST /v1/lookup: in a request and at the top level", async () => {
		const body = { requests: [{ dataset: ds, keys: ["a"], limit: 5 }], consistency: "strong" };
		const p = await expectProblem(await call("POST", "/v1/lookup", { json: body }), 400);
		expect(p.errors).toEqual(
			expect.arrayContaining([
				{ pointer: "/requests/0/limit", detail: 'unknown property "limit"' },
				{ pointer: "/consistency", detail: 'unknown property "consistency"' },
			]),
		);
	});

	it("POST search: in the query and in its vector", async () => {
		const p = await expectProblem(await call("POST", `/v1/datasets/${ds}/search`, { json: { q: "x", page: 2, vector: { key: "k", n: 1 } } }), 400);
		expect(p.errors).toEqual(
			expect.arrayContaining([
				{ pointer: "/page", detail: 'unknown property "page"' },
				{ pointer: "/vector/n", detail: 'unknown property "n"' },
			]),
		);
	});

	it("POST /v1/events: each unknown member of an event, under its index; a 202 lists rejects as {index, error}", async () => {
		const good = { dataset: ds, key: "k", op: "upsert", value: { a: 1 } };
		const p = await expectProblem(await call("POST", "/v1/events", { json: [{ ...good, ttl: 5, "x/y": 1 }] }), 400);
		expect(p.errors).toEqual([
			{ pointer: "/0/ttl", detail: 'unknown property "ttl"; an event has id, dataset, key, op, value, event_time' },
			{ pointer: "/0/x~1y", detail: 'unknown property "x/y"; an event has id, dataset, key, op, value, event_time' },
		]);

		const mixed = await expectJson<{ accepted: number; rejected: unknown[] }>(await call("POST", "/v1/events", { json: [good, { ...good, ttl: 5 }] }), 202);
		expect(mixed).toEqual({
			accepted: 1,
			rejected: [{ index: 1, error: 'unknown property "ttl"; an event has id, dataset, key, op, value, event_time' }],
		});
	});

	it("POST import: a row's unknown _ property, under its index; a 200 lists rejects as {index, error}", async () => {
		const p = await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { json: [{ id: "r1", a: 1, _evnt_time: 5 }] }), 400);
		expect(p.errors).toEqual([{ pointer: "/0/_evnt_time", detail: `unknown property "_evnt_time"; a row's own properties are _event_time, _op, _id` }]);

		const mixed = await expectJson<{ rejected: unknown[] }>(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ id: "r2", a: 1 },
					{ id: "r3", a: 1, _evnt_time: 5 },
				],
			}),
			200,
		);
		expect(mixed.rejected).toEqual([{ index: 1, error: `unknown property "_evnt_time"; a row's own properties are _event_time, _op, _id` }]);
	});
});

describe("a problem with the whole body", () => {
	it('points at "" (RFC 6901: the whole document), not "/" (the member named ""), and its detail names the body', async () => {
		for (const [method, path] of [
			["PUT", `/v1/datasets/${uniqueName()}`],
			["POST", `/v1/datasets/${ds}/search`],
			["POST", "/v1/lookup"],
		] as const) {
			const p = await expectProblem(await call(method, path, { json: [] }), 400);
			expect(p.errors, path).toEqual([{ pointer: "", detail: expect.stringMatching(/expected object/) }]);
			expect(p.detail, path).toMatch(/^body: .*expected object/);
		}
	});
});
