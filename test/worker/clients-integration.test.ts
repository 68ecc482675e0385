/**
 * The routes behind the clients: bulk import (happy, bad rows, limits, a race with live events),
 * record pages for export, rebuild (refill and drop, progress, every dataset), the value's JSON
 * Schema, and the OpenAPI document (every route in it) with its viewer.
 */

import { Redis } from "@upstash/redis/cloudflare";
import { beforeAll, describe, expect, it } from "vitest";
import { MAX_IMPORT_ROWS } from "../../src/ingest/import";
import { servicesFor } from "../../src/services";
import { decodeRecord, recordCacheKey } from "../../src/storage/cached-record";
import { RedisStore } from "../../src/storage/redis";
import {
	call,
	createDataset,
	createKey,
	d1Record,
	env,
	eventually,
	expectJson,
	expectProblem,
	getRecord,
	postEvents,
	type RecordBody,
	settle,
	uniqueName,
	waitForD1,
} from "./helpers";
import { type RebuildStatus, waitRebuildDone } from "./rebuilds";

const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string };
const inRedis = async (ds: string, key: string) =>
	decodeRecord((await new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN).getMany([recordCacheKey(ds, key)]))[0]);

interface ImportResult {
	imported: number;
	unchanged: number;
	rejected: { index: number; error: string }[];
}
const spec = { key: "user_id", fields: { age: "int", name: "string", tags: "string[]", emb: { type: "vector", dim: 2 } }, ttl_seconds: 3600 };
const importRows = (ds: string, rows: unknown[], headers: Record<string, string> = {}) => call("POST", `/v1/datasets/${ds}/import`, { json: rows, headers });

describe("POST /v1/datasets/:name/import", () => {
	let ds = "";
	beforeAll(async () => {
		ds = await createDataset(spec);
	});

	it("applies rows straight to D1 and answers once committed; a re-import of the same rows changes nothing", async () => {
		const t = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000).toISOString();
		const rows = Array.from({ length: 50 }, (_, i) => ({ user_id: `imp${i}`, age: i, name: `n${i}`, tags: ["a"], emb: [i, 0.5], _event_time: t }));
		const first = await expectJson<ImportResult>(await importRows(ds, rows), 200);
		expect(first).toEqual({ imported: 50, unchanged: 0, rejected: [] });
		// Committed before the answer: readable at once, from D1.
		for (const i of [0, 17, 49])
			expect(JSON.parse((await d1Record(ds, `imp${i}`))?.value ?? "null")).toEqual({ age: i, name: `n${i}`, tags: ["a"], emb: [i, 0.5] });
		const body = await expectJson<RecordBody>(await getRecord(ds, "imp17"), 200);
		expect(body).toMatchObject({ status: "present", value: { age: 17 }, event_time: t });
		const again = await expectJson<ImportResult>(await importRows(ds, rows), 200);
		expect(again).toEqual({ imported: 0, unchanged: 50, rejected: [] });
		expect((await d1Record(ds, "imp17"))?.rev).toBe(1);
	});

	it("takes NDJSON, _op patch and delete, and numbers rejects by line", async () => {
		const k = uniqueName("nd");
		const lines = [
			JSON.stringify({ user_id: k, age: 1, name: "a", _event_time: 1_700_000_000_000 }),
			JSON.stringify({ user_id: k, name: "b", _op: "patch", _event_time: 1_700_000_000_001 }),
			"{not json",
			JSON.stringify({ user_id: k, age: "x", _event_time: 1_700_000_000_002 }),
			"",
			JSON.stringify({ user_id: `${k}_gone`, age: 5, _event_time: 1_700_000_000_000 }),
			JSON.stringify({ user_id: `${k}_gone`, _op: "delete", _event_time: 1_700_000_000_001 }),
		];
		const res = await expectJson<ImportResult>(
			await call("POST", `/v1/datasets/${ds}/import`, { body: lines.join("\n"), headers: { "content-type": "application/x-ndjson" } }),
			200,
		);
		// The upsert of `_gone` is overridden whole by its delete in the same request: it shows in nothing, so it is unchanged.
		expect(res.imported).toBe(3);
		expect(res.unchanged).toBe(1);
		expect(res.rejected.map((r) => r.index)).toEqual([2, 3]);
		expect(res.rejected[1]?.error).toMatch(/^age: expected an integer/);
		expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ age: 1, name: "b" });
		expect(await d1Record(ds, `${k}_gone`)).toMatchObject({ value: null, base_deleted: 1 });
	});

	it("rejects bad rows by index and applies the rest; with no good row, a 400 problem listing each", async () => {
		const ok = uniqueName("ok");
		const res = await expectJson<ImportResult>(
			await importRows(ds, [
				{ user_id: ok, age: 3 },
				{ age: 4 },
				{ user_id: uniqueName("x"), unknown_field: 1 },
				{ user_id: uniqueName("x"), age: 1, _op: "merge" },
				{ user_id: uniqueName("x"), age: 1, _event_time: "yesterday" },
				{ user_id: uniqueName("x"), age: 1, _whatever: 1 },
				7,
				{ user_id: uniqueName("x"), emb: [1, 2, 3] },
			]),
			200,
		);
		expect(res.imported).toBe(1);
		expect(res.rejected.map((r) => [r.index, r.error])).toEqual([
			[1, expect.stringMatching(/no "user_id"/)],
			[2, expect.stringMatching(/unknown_field: unknown field/)],
			[3, expect.stringMatching(/_op must be one of upsert, patch, delete/)],
			[4, expect.stringMatching(/_event_time "yesterday" is not a valid RFC 3339/)],
			[5, expect.stringMatching(/unknown property "_whatever"/)],
			[6, expect.stringMatching(/must be a JSON object/)],
			[7, expect.stringMatching(/emb: expected 2 numbers, got 3/)],
		]);
		const p = await expectProblem(await importRows(ds, [{ age: 1 }, { user_id: 5, age: "no" }]), 400);
		expect(p.errors?.map((e) => e.pointer)).toEqual(["/0/user_id", "/1/age"]);
	});

	it("enforces its limits: rows per request and bytes (checked before the body is read), a 413 problem", async () => {
		const rows = Array.from({ length: MAX_IMPORT_ROWS + 1 }, (_, i) => ({ user_id: `l${i}` }));
		const p = await expectProblem(await importRows(ds, rows), 413);
		expect(p.detail).toMatch(/5001 rows in one request; the limit is 5000/);
		await expectProblem(
			await call("POST", `/v1/datasets/${ds}/import`, { body: "[".repeat(5 * 1024 * 1024 + 1), headers: { "content-type": "application/json" } }),
			413,
		);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { body: "a,b", headers: { "content-type": "text/csv" } }), 415);
		await expectProblem(await importRows(uniqueName("missing"), [{ user_id: "a" }]), 404);
	});

	it("a key limited to another dataset is refused (403); a read key lacks the scope (403)", async () => {
		const other = await createDataset(spec);
		const limited = await createKey(["write"], [other]);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { key: limited.key, json: [{ user_id: "a" }] }), 403);
		const reader = await createKey(["read"]);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { key: reader.key, json: [{ user_id: "a" }] }), 403);
	});

	it("an import racing live events for the same keys converges to applying each event once in time order", async () => {
		const keys = Array.from({ length: 20 }, (_, i) => `${uniqueName("race")}_${i}`);
		const base = Date.now() - 60_000;
		// Live events: an upsert at t+10 and a patch at t+30 per key; the import: an upsert at t+20 and a patch at t+40.
		const live = keys.flatMap((k) => [
			{ dataset: ds, key: k, op: "upsert", value: { age: 10, name: "live" }, event_time: base + 10 },
			{ dataset: ds, key: k, op: "patch", value: { tags: ["live"] }, event_time: base + 30 },
		]);
		const imported = keys.flatMap((k) => [
			{ user_id: k, age: 20, name: "import", _event_time: base + 20 },
			{ user_id: k, emb: [1, 1], _op: "patch", _event_time: base + 40 },
		]);
		const [, res] = await Promise.all([postEvents(live), importRows(ds, imported)]);
		expect(res.status).toBe(200);
		for (const k of keys) {
			// In time order: upsert@10, upsert@20 (replaces it), patch@30 (tags), patch@40 (emb).
			const row = await waitForD1(ds, k, (r) => JSON.parse(r.value ?? "{}").tags !== undefined);
			expect(JSON.parse(row.value ?? "null")).toEqual({ age: 20, name: "import", tags: ["live"], emb: [1, 1] });
			expect(row.event_time).toBe(base + 40);
		}
	});

	it("refreshes the cached copies of the keys it changed", async () => {
		const k = uniqueName("cached");
		await importRows(ds, [{ user_id: k, age: 1, _event_time: Date.now() - 5000 }]);
		expect((await getRecord(ds, k)).status).toBe(200); // L0 and, in the background, Redis and KV hold it now
		await settle();
		await eventually(async () => ((await inRedis(ds, k))?.r === 1 ? true : undefined), { what: "the Redis copy" });
		await importRows(ds, [{ user_id: k, age: 2, _event_time: Date.now() - 1000 }]);
		expect((await inRedis(ds, k))?.v).toEqual({ age: 2 });
		expect(servicesFor(env).reader.l0.get(recordCacheKey(ds, k), Number.POSITIVE_INFINITY, Date.now())?.rec.v).toEqual({ age: 2 });
		expect(((await (await getRecord(ds, k)).json()) as RecordBody).value).toEqual({ age: 2 });
	});

	it("Idempotency-Key makes a resend of rows without _id or _event_time a no-op", async () => {
		const k = uniqueName("idem");
		const rows = [{ user_id: k, age: 1 }];
		expect((await expectJson<ImportResult>(await importRows(ds, rows, { "idempotency-key": k }), 200)).imported).toBe(1);
		expect(await expectJson<ImportResult>(await importRows(ds, rows, { "idempotency-key": k }), 200)).toEqual({ imported: 0, unchanged: 1, rejected: [] });
		// Without the header each request is new.
		expect((await expectJson<ImportResult>(await importRows(ds, rows), 200)).imported).toBe(1);
	});
});

describe("GET /v1/datasets/:name/records (export pages)", () => {
	it("pages through every record in key order, tombstones only when asked", async () => {
		const ds = await createDataset(spec);
		const rows = Array.from({ length: 25 }, (_, i) => ({ user_id: `k${String(i).padStart(2, "0")}`, age: i, _event_time: 1_700_000_000_000 + i }));
		const res = await expectJson<ImportResult>(await importRows(ds, [...rows, { user_id: "k03", _op: "delete", _event_time: 1_700_000_001_000 }]), 200);
		expect(res.rejected).toEqual([]);
		const seen: { key: string; value: unknown; event_time: string }[] = [];
		let cursor: string | null = null;
		let pages = 0;
		do {
			const page: { records: typeof seen; next_cursor: string | null } = await expectJson(
				await call("GET", `/v1/datasets/${ds}/records?limit=10${cursor ? `&cursor=${cursor}` : ""}`),
				200,
			);
			seen.push(...page.records);
			cursor = page.next_cursor;
			pages++;
		} while (cursor);
		expect(pages).toBe(3);
		expect(seen.map((r) => r.key)).toEqual(rows.map((r) => r.user_id).filter((k) => k !== "k03"));
		expect(seen[0]).toEqual({ key: "k00", value: { age: 0 }, event_time: new Date(1_700_000_000_000).toISOString(), event_id: expect.any(String) });
		const all = await expectJson<{ records: { key: string; deleted: boolean }[] }>(
			await call("GET", `/v1/datasets/${ds}/records?limit=1000&include_deleted=true`),
			200,
		);
		expect(all.records.find((r) => r.key === "k03")).toMatchObject({ deleted: true, value: null });
		await expectProblem(await call("GET", `/v1/datasets/${ds}/records?limit=0`), 400);
		await expectProblem(await call("GET", `/v1/datasets/${ds}/records?limit=1001`), 400);
		await expectProblem(await call("GET", `/v1/datasets/${ds}/records?cursor=%%%`), 400);
	});
});

describe("rebuild", () => {
	it("with KV and Redis wiped, reads stay correct, and a rebuild refills both from D1, with progress", async () => {
		const ds = await createDataset(spec);
		// More than one page (400 keys) of records.
		const rows = Array.from({ length: 450 }, (_, i) => ({ user_id: `r${i}`, age: i, _event_time: 1_700_000_000_000 }));
		await importRows(ds, rows.slice(0, 300));
		await importRows(ds, rows.slice(300));
		expect(await expectJson<RebuildStatus>(await call("GET", `/v1/datasets/${ds}/rebuild`), 200)).toMatchObject({ status: "idle", keys_done: 0 });
		// Wipe every copy.
		for (const k of (await env.RECORDS_KV.list({ prefix: `r:${ds}:` })).keys) await env.RECORDS_KV.delete(k.name);
		await new Redis({ url: redisEnv.UPSTASH_REDIS_REST_URL, token: redisEnv.UPSTASH_REDIS_REST_TOKEN, enableAutoPipelining: false }).flushdb();
		servicesFor(env).reader.l0.clear();
		expect(((await (await getRecord(ds, "r7")).json()) as RecordBody).value).toEqual({ age: 7 });

		const started = await expectJson<RebuildStatus>(await call("POST", `/v1/datasets/${ds}/rebuild`), 202);
		expect(started).toMatchObject({ dataset: ds, mode: "refill", status: "running", total_keys: 450, keys_done: 0 });
		const done = await waitRebuildDone(ds);
		expect(done).toMatchObject({ keys_done: 450, pages_done: 2, total_keys: 450, finished_at: expect.any(String) });
		for (const i of [0, 123, 449]) {
			expect(JSON.parse((await env.RECORDS_KV.get(recordCacheKey(ds, `r${i}`))) ?? "null")).toMatchObject({ r: 1, v: { age: i } });
			expect((await inRedis(ds, `r${i}`))?.v).toEqual({ age: i });
		}
	});

	it("mode=drop deletes the copies; reads still come from D1", async () => {
		const ds = await createDataset(spec);
		await importRows(ds, [{ user_id: "d1", age: 1 }]);
		await call("POST", `/v1/datasets/${ds}/rebuild`);
		await waitRebuildDone(ds);
		expect(await inRedis(ds, "d1")).not.toBeNull();
		expect((await expectJson<RebuildStatus>(await call("POST", `/v1/datasets/${ds}/rebuild?mode=drop`), 202)).mode).toBe("drop");
		await waitRebuildDone(ds);
		expect(await inRedis(ds, "d1")).toBeNull();
		expect(await env.RECORDS_KV.get(recordCacheKey(ds, "d1"))).toBeNull();
		servicesFor(env).reader.l0.clear();
		expect((await getRecord(ds, "d1")).headers.get("x-hotpath-tier")).toBe("d1");
	});

	it("POST /v1/rebuild rebuilds every dataset, for an unlimited admin key only; bad modes and unknown datasets are refused", async () => {
		const ds = await createDataset(spec);
		const limited = await createKey(["admin"], [ds]);
		await expectProblem(await call("POST", "/v1/rebuild", { key: limited.key }), 403);
		// A limited admin may rebuild its own dataset.
		expect((await call("POST", `/v1/datasets/${ds}/rebuild`, { key: limited.key })).status).toBe(202);
		await expectProblem(await call("POST", `/v1/datasets/${ds}/rebuild?mode=fast`), 400);
		await expectProblem(await call("POST", `/v1/datasets/${uniqueName("missing")}/rebuild`), 404);
		const all = await expectJson<{ rebuilds: RebuildStatus[] }>(await call("POST", "/v1/rebuild?mode=refill"), 202);
		expect(all.rebuilds.map((r) => r.dataset)).toContain(ds);
		await waitRebuildDone(ds);
	});
});

describe("GET /v1/datasets/:name/schema", () => {
	it("is the JSON Schema of a record's value", async () => {
		const ds = await createDataset(spec);
		const schema = await expectJson<{ properties: Record<string, unknown>; additionalProperties: boolean }>(
			await call("GET", `/v1/datasets/${ds}/schema`),
			200,
		);
		expect(schema.additionalProperties).toBe(false);
		expect(schema.properties.emb).toEqual({ anyOf: [{ type: "array", items: { type: "number" }, minItems: 2, maxItems: 2 }, { type: "null" }] });
		expect(Object.keys(schema.properties).sort()).toEqual(["age", "emb", "name", "tags"]);
	});
});

describe("OpenAPI", () => {
	it("GET /openapi.json is an OpenAPI 3.1 document of every route, each with its problem responses", async () => {
		const doc = await expectJson<{ openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>(
			await call("GET", "/openapi.json", { key: null }),
			200,
		);
		expect(doc.openapi).toBe("3.1.0");
		const documented = Object.entries(doc.paths).flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${p}`));
		const expected = [
			"GET /ping",
			"GET /",
			"GET /openapi.json",
			"GET /docs",
			"GET /healthz",
			"GET /graphql",
			"POST /graphql",
			"PUT /v1/datasets/{name}",
			"GET /v1/datasets",
			"GET /v1/datasets/{name}",
			"GET /v1/datasets/{name}/schema",
			"GET /v1/datasets/{name}/records/{key}",
			"GET /v1/datasets/{name}/records",
			"GET /v1/datasets/{name}/records/{key}/history",
			"POST /v1/datasets/{name}/import",
			"POST /v1/datasets/{name}/ingest",
			"POST /v1/datasets/{name}/search",
			"GET /v1/datasets/{name}/search",
			"POST /v1/datasets/{name}/search/reindex",
			"POST /v1/events",
			"POST /v1/lookup",
			"POST /v1/keys",
			"GET /v1/keys",
			"DELETE /v1/keys/{id}",
			"POST /v1/datasets/{name}/rebuild",
			"GET /v1/datasets/{name}/rebuild",
			"POST /v1/rebuild",
			"GET /v1/stats",
			"GET /v1/dead-letters",
			"POST /v1/dead-letters/replay",
			"POST /v1/dead-letters/{id}/replay",
			"GET /v1/dead-letters/{id}",
			"DELETE /v1/dead-letters/{id}",
			"DELETE /v1/dead-letters",
		];
		expect(documented.sort()).toEqual(expected.sort());
		// The schemas' .openapi() metadata reaches the document: named components, examples, path parameters.
		const full = doc as unknown as {
			components: { schemas: Record<string, { description?: string }>; securitySchemes: Record<string, { scheme?: string }> };
			paths: Record<string, Record<string, { parameters?: { name: string; in: string; schema?: { example?: unknown } }[] }>>;
		};
		expect(full.components.schemas.Problem?.description).toMatch(/RFC 9457/);
		expect(full.components.securitySchemes.bearer?.scheme).toBe("bearer");
		expect(full.paths["/v1/datasets/{name}/records/{key}"]?.get?.parameters).toEqual(
			expect.arrayContaining([
				expect.objectContaining({ name: "name", in: "path", description: "Dataset name", schema: expect.objectContaining({ example: "demo_users" }) }),
				expect.objectContaining({ name: "key", in: "path" }),
			]),
		);
		for (const [path, methods] of Object.entries(doc.paths)) {
			// Unauthenticated routes with no failure of their own.
			if (["/healthz", "/ping", "/", "/openapi.json", "/docs"].includes(path)) continue;
			for (const [m, op] of Object.entries(methods)) {
				expect(op.responses["401"], `${m} ${path} documents 401`).toBeDefined();
				expect(op.responses["429"], `${m} ${path} documents 429`).toBeDefined();
			}
		}
	});

	it("GET /docs renders the document for a browser", async () => {
		const res = await call("GET", "/docs", { key: null });
		expect(res.status).toBe(200);
		expect(res.headers.get("content-type")).toMatch(/text\/html/);
		expect(await res.text()).toContain("/openapi.json");
	});
});
