/**
 * Regressions found by fuzzing every route with hostile input: each case answered a 5xx, accepted
 * something it should have refused (and stored or destroyed data on the strength of it), or
 * refused without saying what was wrong and where.
 */
import { describe, expect, it } from "vitest";
import { call, createDataset, d1Record, env, expectJson, expectProblem, staysFalse, uniqueName, userSpec } from "./helpers";

describe("times past the last Date", () => {
	it("an expires_at past +275760-09-13 is a 400 at /expires_at, no key is stored, and the key list still answers", async () => {
		const name = uniqueName("far");
		for (const expires_at of [8.64e15 + 1, 9e15]) {
			const p = await expectProblem(await call("POST", "/v1/keys", { json: { name, scopes: ["read"], expires_at } }), 400);
			expect(p.errors?.[0]?.pointer).toBe("/expires_at");
			expect(p.detail).toMatch(/past the latest time/);
		}
		const listed = await expectJson<{ keys: { name: string }[] }>(await call("GET", "/v1/keys?include_revoked=true"), 200);
		expect(listed.keys.filter((k) => k.name === name)).toEqual([]);
	});
});

describe("json field values", () => {
	it("a number too large for JSON (1e400) is refused by index, not stored as null", async () => {
		const ds = await createDataset(userSpec());
		for (const meta of ["1e400", '{"a":[1,-1e400]}']) {
			const body = `[{"dataset":"${ds}","key":"big","op":"upsert","value":{"meta":${meta}}}]`;
			const p = await expectProblem(await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } }), 400);
			expect(p.errors).toEqual([{ pointer: "/0/value/meta", detail: expect.stringMatching(/meta: .*too large/) }]);
			const imported = `[{"user_id":"big","meta":${meta}}]`;
			const q = await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { body: imported, headers: { "content-type": "application/json" } }), 400);
			expect(q.errors?.[0]?.detail).toMatch(/meta: .*too large/);
		}
		await staysFalse(async () => (await d1Record(ds, "big")) !== null, 1500, "a record of a refused value");
	});
});

describe("problem pointers of schema errors", () => {
	it("a bad field name says why, at its own pointer (the empty name too)", async () => {
		for (const bad of ["a-b", ""]) {
			const res = await call("PUT", `/v1/datasets/${uniqueName()}`, { json: { key: "id", fields: { [bad]: "int" } } });
			const p = await expectProblem(res, 400);
			expect(p.errors).toEqual([{ pointer: `/fields/${bad}`, detail: expect.stringMatching(/identifiers/) }]);
			expect(p.detail).not.toMatch(/Invalid key in record/);
		}
	});
});

describe("keys limited to names no dataset can have", () => {
	it("are a 400 at /datasets/i, and no key is created", async () => {
		const name = uniqueName("badds");
		for (const datasets of [["NOT A NAME"], ["ok_name", "\ud800"], ["a/b"]]) {
			const p = await expectProblem(await call("POST", "/v1/keys", { json: { name, scopes: ["read"], datasets } }), 400);
			expect(p.errors?.[0]?.pointer).toBe(`/datasets/${datasets.length - 1}`);
		}
		const listed = await expectJson<{ keys: { name: string }[] }>(await call("GET", "/v1/keys"), 200);
		expect(listed.keys.filter((k) => k.name === name)).toEqual([]);
	});
});

describe("true/false query parameters", () => {
	it("replayed=yes on DELETE /v1/dead-letters is a 400, not a purge of every letter", async () => {
		const ds = await createDataset();
		const insert = (id: string, replayedAt: number | null) =>
			env.DB.prepare(
				"INSERT INTO dead_letters (queue, message_id, body, error, attempts, datasets, replayed_at) VALUES ('hotpath-events', ?1, '{}', 'test', 1, ?2, ?3)",
			)
				.bind(id, JSON.stringify([ds]), replayedAt)
				.run();
		await insert(uniqueName("unreplayed"), null);
		await insert(uniqueName("replayed"), Date.now());
		for (const v of ["yes", "1", "TRUE", ""]) {
			const p = await expectProblem(await call("DELETE", `/v1/dead-letters?dataset=${ds}&replayed=${v}`), 400);
			expect(p.errors).toEqual([{ pointer: "replayed", detail: "true or false" }]);
		}
		const left = await expectJson<{ dead_letters: unknown[] }>(await call("GET", `/v1/dead-letters?dataset=${ds}`), 200);
		expect(left.dead_letters).toHaveLength(2);
		// true still purges only the replayed one.
		expect(await expectJson(await call("DELETE", `/v1/dead-letters?dataset=${ds}&replayed=true`), 200)).toEqual({ purged: 1 });
	});

	it("include_deleted and include_revoked take only true or false", async () => {
		const ds = await createDataset();
		await expectProblem(await call("GET", `/v1/datasets/${ds}/records?include_deleted=1`), 400);
		await expectProblem(await call("GET", "/v1/keys?include_revoked=yes"), 400);
		await expectJson(await call("GET", `/v1/datasets/${ds}/records?include_deleted=false`), 200);
		await expectJson(await call("GET", "/v1/keys?include_revoked=true"), 200);
	});
});

describe("limit query parameters", () => {
	it("take decimal digits only: 0x10, ' 5', 1e2 and 5.0 are 400s naming limit on every paged route", async () => {
		const ds = await createDataset(userSpec());
		const paths = [`/v1/datasets/${ds}/records`, `/v1/datasets/${ds}/records/k1/history`, "/v1/dead-letters"];
		for (const path of paths) {
			for (const limit of ["0x10", " 5", "1e2", "5.0", "+5", "0", ""]) {
				const p = await expectProblem(await call("GET", `${path}?limit=${encodeURIComponent(limit)}`), 400);
				expect(p.errors?.[0]?.pointer, `${path} limit=${limit}`).toBe("limit");
			}
			expect((await call("GET", `${path}?limit=5`)).status, path).not.toBe(400);
		}
	});
});

describe("key rows stored before expires_at was bounded", () => {
	it("a row whose expires_at is past the last Date is listed (as that date), and the listing still answers", async () => {
		const name = uniqueName("old");
		const created = await expectJson<{ id: string }>(await call("POST", "/v1/keys", { json: { name, scopes: ["read"] } }), 201);
		await env.DB.prepare("UPDATE api_keys SET expires_at = ?1 WHERE id = ?2").bind(9e15, created.id).run();
		const listed = await expectJson<{ keys: { id: string; expires_at: string | null }[] }>(await call("GET", "/v1/keys"), 200);
		expect(listed.keys.find((k) => k.id === created.id)?.expires_at).toBe("+275760-09-13T00:00:00.000Z");
	});
});
