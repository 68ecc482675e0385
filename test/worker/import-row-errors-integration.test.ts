/**
 * POST /v1/datasets/:name/import names a bad row's problem in the row's own terms: its key field,
 * not the `key` and `value` of an event, which an import row does not have.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson, expectProblem, uniqueName } from "./helpers";

interface ImportResult {
	imported: number;
	unchanged: number;
	rejected: { index: number; error: string }[];
}

describe("import row errors", () => {
	let ds = "";
	beforeAll(async () => {
		ds = await createDataset({ key: "user_id", fields: { age: "int" }, ttl_seconds: 3600 });
	});

	it("name the key field for a bad key, a key too long, a lone surrogate and an empty patch", async () => {
		const res = await expectJson<ImportResult>(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ user_id: "ok", age: 1 },
					{ user_id: 2 ** 60, age: 2 },
					{ user_id: { id: 1 }, age: 3 },
					{ user_id: "", age: 4 },
					{ user_id: "k".repeat(401), age: 5 },
					{ user_id: "a\ud800", age: 6 },
					{ user_id: "p", _op: "patch" },
				],
			}),
			200,
		);
		expect(res.imported).toBe(1);
		expect(res.rejected).toEqual([
			{ index: 1, error: '"user_id" must be a non-empty string or a safe integer' },
			{ index: 2, error: '"user_id" must be a non-empty string or a safe integer' },
			{ index: 3, error: '"user_id" must be a non-empty string or a safe integer' },
			{ index: 4, error: '"user_id" is longer than 400 bytes' },
			{ index: 5, error: '"user_id" must be well-formed Unicode (it holds a lone surrogate)' },
			{ index: 6, error: 'a patch needs at least one field besides "user_id"' },
		]);
		for (const r of res.rejected) expect(r.error).not.toMatch(/\bkey is|\bin value\b/);
	});
});

describe("import counts rows, not keys", () => {
	it("a row overridden whole in the same request, or by what the record holds, is unchanged; one that shows is imported", async () => {
		const ds = await createDataset({ key: "user_id", fields: { age: "int", name: "string" }, ttl_seconds: 3600 });
		const first = await expectJson<ImportResult>(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					// Two upserts of u1: only the newer shows.
					{ user_id: "u1", age: 2, name: "new", _event_time: 2000, _id: "a" },
					{ user_id: "u1", age: 1, name: "old", _event_time: 1000, _id: "b" },
					// A patch newer than a late upsert shows on top of it: both count.
					{ user_id: "u2", age: 9, _op: "patch", _event_time: 3000, _id: "c" },
					{ user_id: "u2", age: 1, name: "base", _event_time: 1000, _id: "d" },
					// The same row twice counts once.
					{ user_id: "u3", age: 3, _event_time: 1000, _id: "e" },
					{ user_id: "u3", age: 3, _event_time: 1000, _id: "e" },
				],
			}),
			200,
		);
		expect(first).toEqual({ imported: 4, unchanged: 2, rejected: [] });
		// Against what D1 holds: a patch older than u1's base changes nothing; a newer one does.
		const second = await expectJson<ImportResult>(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ user_id: "u1", age: 5, _op: "patch", _event_time: 1500, _id: "f" },
					{ user_id: "u1", age: 6, _op: "patch", _event_time: 2500, _id: "g" },
				],
			}),
			200,
		);
		expect(second).toEqual({ imported: 1, unchanged: 1, rejected: [] });
		const u1 = await expectJson<{ value: Record<string, unknown> }>(await call("GET", `/v1/datasets/${ds}/records/u1`), 200);
		expect(u1.value).toEqual({ age: 6, name: "new" });
	});
});

describe("import rows and names starting with _", () => {
	it("a field or key whose name starts with _ is loaded and exported like any other", async () => {
		const ds = await createDataset({ key: "_key", fields: { _ts: "int", v: "int" }, ttl_seconds: 3600 });
		const res = await expectJson<ImportResult>(
			await call("POST", `/v1/datasets/${ds}/import`, {
				json: [
					{ _key: "a", _ts: 3, v: 1, _event_time: 1000, _id: "r1" },
					// A misspelt row property is still named as one.
					{ _key: "b", v: 2, _evnt_time: 1000 },
				],
			}),
			200,
		);
		expect(res.imported).toBe(1);
		expect(res.rejected).toEqual([{ index: 1, error: `unknown property "_evnt_time"; a row's own properties are _event_time, _op, _id` }]);
		const page = await expectJson<{ records: { key: string; value: unknown }[] }>(await call("GET", `/v1/datasets/${ds}/records`), 200);
		expect(page.records).toMatchObject([{ key: "a", value: { _ts: 3, v: 1 } }]);
	});

	it("a field or key named like a row property is refused: it could be neither loaded nor exported", async () => {
		for (const [spec, pointer] of [
			[{ key: "id", fields: { _op: "string", v: "int" } }, "/fields/_op"],
			[{ key: "id", fields: { _event_time: "int" } }, "/fields/_event_time"],
			[{ key: "_id", fields: { v: "int" } }, "/key"],
		] as const) {
			const problem = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json: spec }), 400);
			expect(problem.errors).toContainEqual({ pointer, detail: expect.stringMatching(/is reserved: bulk-import rows use it/) });
		}
	});
});

describe("an import whose cache refresh can be neither done nor queued", () => {
	it("is a 503 unavailable saying the rows are in D1, not a server fault", async () => {
		const { env } = await import("cloudflare:test");
		const { servicesFor } = await import("../../src/services");
		const { importRows } = await import("../../src/ingest/import");
		const { HotpathError } = await import("../../src/errors");
		const { RedisTier } = await import("../../src/serving/redis-tier");
		const { RedisStore } = await import("../../src/storage/redis");
		const { CircuitBreaker } = await import("../../src/serving/breaker");
		const ds = await createDataset({ key: "user_id", fields: { age: "int" }, ttl_seconds: 3600 });
		const base = servicesFor(env as never);
		// Nothing listens on port 1: every Redis write fails; and the queue refuses the refresh.
		const deadRedis = new RedisTier(new RedisStore("http://127.0.0.1:1", "t"), new CircuitBreaker(3, 500), 1000, 2, 200, 3600);
		const refusing = {
			send: async () => Promise.reject(new Error("queue over its limit")),
			sendBatch: async () => Promise.reject(new Error("queue over its limit")),
		};
		const services = { ...base, redis: deadRedis, env: { ...base.env, EVENTS_QUEUE: refusing as unknown as Queue<unknown> } };
		const err = await importRows(services, await base.registry.require(ds), [{ index: 0, raw: { user_id: "k1", age: 7 } }], { principalId: "p" }).catch(
			(e) => e,
		);
		expect(err).toBeInstanceOf(HotpathError);
		expect((err as InstanceType<typeof HotpathError>).code).toBe("unavailable");
		expect((err as Error).message).toMatch(/applied to D1 \(1 imported, 0 unchanged, 0 rejected\)/);
		// The row is in D1 all the same.
		const row = await env.DB.prepare("SELECT value FROM records WHERE dataset = ?1 AND key = 'k1'").bind(ds).first<{ value: string }>();
		expect(JSON.parse(row?.value ?? "null")).toEqual({ age: 7 });
	});
});

describe("an NDJSON body sent as application/json", () => {
	// `curl -H 'content-type: application/json' --data-binary @rows.ndjson` got only "Unexpected
	// non-whitespace character after JSON at position 17", which does not say what to change.
	it("is a 400 that says to send it as application/x-ndjson, on the import and the events routes", async () => {
		const ds = await createDataset({ key: "user_id", fields: { age: "int" }, ttl_seconds: 3600 });
		const bodies: [string, string][] = [
			[`/v1/datasets/${ds}/import`, '{"user_id":"a","age":1}\n{"user_id":"b","age":2}\n'],
			["/v1/events", `{"dataset":"${ds}","key":"a","op":"upsert","value":{"age":1}}\n\n{"dataset":"${ds}","key":"b","op":"upsert","value":{"age":2}}\n`],
		];
		for (const [path, body] of bodies) {
			const problem = await expectProblem(await call("POST", path, { body, headers: { "content-type": "application/json" } }), 400);
			expect(problem.detail).toMatch(
				/^body is not valid JSON: .*; it looks like NDJSON \(one JSON document per line\): send it with Content-Type: application\/x-ndjson$/,
			);
		}
		// Broken JSON that is not one document per line gets no such hint.
		const broken = await expectProblem(
			await call("POST", `/v1/datasets/${ds}/import`, { body: '[{"user_id":"a",', headers: { "content-type": "application/json" } }),
			400,
		);
		expect(broken.detail).toMatch(/^body is not valid JSON: /);
		expect(broken.detail).not.toContain("NDJSON");
		// Sent as NDJSON, the same rows import.
		const ok = await expectJson<ImportResult>(
			await call("POST", `/v1/datasets/${ds}/import`, { body: bodies[0]?.[1], headers: { "content-type": "application/x-ndjson" } }),
			200,
		);
		expect(ok.imported).toBe(2);
	});
});
