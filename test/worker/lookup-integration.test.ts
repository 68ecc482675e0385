/** Batch reads: POST /v1/lookup across datasets, in request and key order, with per-item errors and limits. */
import { beforeAll, describe, expect, it } from "vitest";
import { applyDirect, call, createDataset, expectJson, expectProblem, postEvents, uniqueName, userSpec, waitForRecord } from "./helpers";

interface LookupRecord {
	key: string;
	status: "present" | "stale" | "not_found";
	value: Record<string, unknown> | null;
	event_time: string | null;
	age_ms: number | null;
}
interface LookupBody {
	results: { dataset: string; records: LookupRecord[] }[];
}

const lookup = (body: unknown) => call("POST", "/v1/lookup", { json: body });

let users = "";
let items = "";
const t0 = Date.now() - 5000;

beforeAll(async () => {
	users = await createDataset(userSpec(3600));
	items = await createDataset({ key: "item_id", fields: { price: "float", title: "string" }, ttl_seconds: 3600 });
	await applyDirect([
		{ id: uniqueName("e"), dataset: users, key: "u1", op: "upsert", value: { age: 1, name: "one" }, time: t0 },
		{ id: uniqueName("e"), dataset: users, key: "u2", op: "upsert", value: { age: 2, name: "two" }, time: t0 + 1 },
		{ id: uniqueName("e"), dataset: users, key: "42", op: "upsert", value: { age: 42 }, time: t0 },
		{ id: uniqueName("e"), dataset: items, key: "i1", op: "upsert", value: { price: 1.5, title: "first" }, time: t0 },
		{ id: uniqueName("e"), dataset: items, key: "i2", op: "upsert", value: { price: 2.5, title: "second" }, time: t0 + 2 },
		{ id: uniqueName("e"), dataset: users, key: "gone", op: "upsert", value: { age: 9 }, time: t0 },
		{ id: uniqueName("e"), dataset: users, key: "gone", op: "delete", time: t0 + 10 },
	]);
});

const missing: Omit<LookupRecord, "key"> = { status: "not_found", value: null, event_time: null, age_ms: null };

describe("POST /v1/lookup", () => {
	describe("happy", () => {
		it("answers in request order and key order across two datasets", async () => {
			const body = await expectJson<LookupBody>(
				await lookup({
					requests: [
						{ dataset: items, keys: ["i2", "nope", "i1"] },
						{ dataset: users, keys: ["u2", "u1"] },
						{ dataset: items, keys: ["i1"] },
					],
				}),
				200,
			);
			expect(body.results.map((r) => r.dataset)).toEqual([items, users, items]);
			expect(body.results[0]?.records).toEqual([
				{ key: "i2", status: "present", value: { price: 2.5, title: "second" }, event_time: new Date(t0 + 2).toISOString(), age_ms: expect.any(Number) },
				{ key: "nope", ...missing },
				{ key: "i1", status: "present", value: { price: 1.5, title: "first" }, event_time: new Date(t0).toISOString(), age_ms: expect.any(Number) },
			]);
			expect(body.results[1]?.records.map((r) => [r.key, r.value])).toEqual([
				["u2", { age: 2, name: "two" }],
				["u1", { age: 1, name: "one" }],
			]);
			expect(body.results[2]?.records.map((r) => r.key)).toEqual(["i1"]);
			for (const r of body.results.flatMap((x) => x.records)) if (r.status === "present") expect(r.age_ms).toBeGreaterThanOrEqual(5000);
		});

		it("reports missing keys and tombstones as not_found entries", async () => {
			const body = await expectJson<LookupBody>(await lookup({ requests: [{ dataset: users, keys: ["never", "gone"] }] }), 200);
			expect(body.results[0]?.records).toEqual([
				{ key: "never", ...missing },
				{ key: "gone", ...missing },
			]);
		});

		it("projects fields per request", async () => {
			const body = await expectJson<LookupBody>(
				await lookup({
					requests: [
						{ dataset: users, keys: ["u1"], fields: ["name"] },
						{ dataset: users, keys: ["u1"] },
						{ dataset: items, keys: ["i1", "nope"], fields: ["price"] },
					],
				}),
				200,
			);
			expect(body.results[0]?.records[0]?.value).toEqual({ name: "one" });
			expect(body.results[1]?.records[0]?.value).toEqual({ age: 1, name: "one" });
			expect(body.results[2]?.records.map((r) => r.value)).toEqual([{ price: 1.5 }, null]);
		});

		it("takes whole-number keys as strings, and answers a repeated key each time", async () => {
			const body = await expectJson<LookupBody>(await lookup({ requests: [{ dataset: users, keys: [42, "42", "u1", 42] }] }), 200);
			expect(body.results[0]?.records.map((r) => [r.key, r.value])).toEqual([
				["42", { age: 42 }],
				["42", { age: 42 }],
				["u1", { age: 1, name: "one" }],
				["42", { age: 42 }],
			]);
		});

		it("max_staleness in the body marks older values stale; if_stale=omit withholds them", async () => {
			const old = uniqueName("k");
			await applyDirect([{ id: uniqueName("e"), dataset: users, key: old, op: "upsert", value: { age: 70 }, time: Date.now() - 600_000 }]);
			let body = await expectJson<LookupBody>(await lookup({ requests: [{ dataset: users, keys: [old, "u1"] }], max_staleness: 60 }), 200);
			expect(body.results[0]?.records.map((r) => [r.status, r.value])).toEqual([
				["stale", { age: 70 }],
				["present", { age: 1, name: "one" }],
			]);
			body = await expectJson<LookupBody>(await lookup({ requests: [{ dataset: users, keys: [old, "u1"] }], max_staleness: 60, if_stale: "omit" }), 200);
			expect(body.results[0]?.records.map((r) => [r.status, r.value])).toEqual([
				["stale", null],
				["present", { age: 1, name: "one" }],
			]);
			expect(body.results[0]?.records[0]?.event_time).not.toBeNull();
		});

		it("uses each dataset's ttl_seconds when no max_staleness is given", async () => {
			const short = await createDataset(userSpec(1));
			await applyDirect([{ id: uniqueName("e"), dataset: short, key: "s", op: "upsert", value: { age: 1 }, time: Date.now() - 10_000 }]);
			const body = await expectJson<LookupBody>(
				await lookup({
					requests: [
						{ dataset: short, keys: ["s"] },
						{ dataset: users, keys: ["u1"] },
					],
				}),
				200,
			);
			expect(body.results.map((r) => r.records[0]?.status)).toEqual(["stale", "present"]);
			// max_staleness: null is none, as as_of: null is (a client's None serialised), not a 400.
			const withNull = await expectJson<LookupBody>(
				await lookup({
					requests: [
						{ dataset: short, keys: ["s"] },
						{ dataset: users, keys: ["u1"] },
					],
					max_staleness: null,
				}),
				200,
			);
			expect(withNull.results.map((r) => r.records[0]?.status)).toEqual(["stale", "present"]);
		});

		it("reads what POST /v1/events ingested", async () => {
			const k = uniqueName("k");
			await postEvents([{ dataset: users, key: k, op: "upsert", value: { age: 5 } }]);
			await waitForRecord(users, k);
			const body = await expectJson<LookupBody>(await lookup({ requests: [{ dataset: users, keys: [k] }] }), 200);
			expect(body.results[0]?.records[0]).toMatchObject({ key: k, status: "present", value: { age: 5 } });
		});

		it("names the tiers that answered and times them; never cached by clients", async () => {
			const res = await lookup({ requests: [{ dataset: users, keys: ["u1", "nope"] }] });
			expect(res.status).toBe(200);
			const tiers = (res.headers.get("x-hotpath-tier") ?? "").split(",");
			expect(tiers.length).toBeGreaterThan(0);
			for (const t of tiers) expect(["l0", "redis", "kv", "d1"]).toContain(t);
			expect(res.headers.get("server-timing")).toMatch(/(^|, )l0;dur=\d/);
			expect(res.headers.get("cache-control")).toBe("no-store");
		});

		it("accepts exactly 1000 keys", async () => {
			const keys = Array.from({ length: 1000 }, (_, i) => `bulk_${i}`);
			keys[500] = "u1";
			const body = await expectJson<LookupBody>(
				await lookup({
					requests: [
						{ dataset: users, keys: keys.slice(0, 600) },
						{ dataset: items, keys: keys.slice(600) },
					],
				}),
				200,
			);
			expect(body.results[0]?.records).toHaveLength(600);
			expect(body.results[1]?.records).toHaveLength(400);
			expect(body.results[0]?.records[500]).toMatchObject({ key: "u1", status: "present" });
			expect(body.results[0]?.records[0]).toEqual({ key: "bulk_0", ...missing });
		});
	});

	describe("error", () => {
		it("an unknown dataset -> 400 problem pointing at /requests/1/dataset", async () => {
			const p = await expectProblem(
				await lookup({
					requests: [
						{ dataset: users, keys: ["u1"] },
						{ dataset: "no_such_ds", keys: ["u1"] },
					],
				}),
				400,
			);
			expect(p.errors).toEqual([{ pointer: "/requests/1/dataset", detail: expect.stringContaining("no_such_ds") }]);
			expect(p.detail).toContain("/requests/1/dataset");
		});

		it("an unknown field -> 400 problem pointing at it in that request's fields", async () => {
			const p = await expectProblem(
				await lookup({
					requests: [
						{ dataset: users, keys: ["u1"] },
						{ dataset: items, keys: ["i1"], fields: ["price", "colour"] },
					],
				}),
				400,
			);
			expect(p.errors).toEqual([{ pointer: "/requests/1/fields/1", detail: expect.stringContaining("colour") }]);
		});

		it("reports every bad item at once", async () => {
			const p = await expectProblem(
				await lookup({
					requests: [
						{ dataset: "nope_a", keys: ["x"] },
						{ dataset: users, keys: ["ok", "k".repeat(401)], fields: ["bogus"] },
						{ dataset: "nope_b", keys: ["x"] },
					],
				}),
				400,
			);
			expect(p.errors?.map((e) => e.pointer).sort()).toEqual(["/requests/0/dataset", "/requests/1/fields/0", "/requests/1/keys/1", "/requests/2/dataset"]);
		});

		it("a key longer than 400 bytes -> 400 problem pointing at it", async () => {
			const p = await expectProblem(await lookup({ requests: [{ dataset: users, keys: ["u1", "é".repeat(201)] }] }), 400);
			expect(p.errors).toEqual([{ pointer: "/requests/0/keys/1", detail: expect.stringMatching(/400 bytes/) }]);
		});

		it("more than 1000 keys in all -> 413 problem", async () => {
			const keys = Array.from({ length: 501 }, (_, i) => `k${i}`);
			const p = await expectProblem(
				await lookup({
					requests: [
						{ dataset: users, keys },
						{ dataset: items, keys: keys.slice(0, 500) },
					],
				}),
				413,
			);
			expect(p.detail).toMatch(/1001 keys .* limit is 1000/);
		});

		it.each([
			["malformed JSON", '{"requests": ['],
			["an empty body", ""],
			["a JSON array", "[]"],
			["JSON null", "null"],
		])("%s -> 400 problem", async (_label, body) => {
			await expectProblem(await call("POST", "/v1/lookup", { body, headers: { "content-type": "application/json" } }), 400);
		});

		const invalid: [string, unknown, string][] = [
			["no requests", {}, "/requests"],
			["requests not an array", { requests: { dataset: "x" } }, "/requests"],
			["keys not an array", { requests: [{ dataset: "x", keys: "a" }] }, "/requests/0/keys"],
			["an empty-string key", { requests: [{ dataset: "x", keys: [""] }] }, "/requests/0/keys/0"],
			["a fractional key", { requests: [{ dataset: "x", keys: [1.5] }] }, "/requests/0/keys/0"],
			["an object key", { requests: [{ dataset: "x", keys: [{}] }] }, "/requests/0/keys/0"],
			["a dataset that is not a string", { requests: [{ dataset: 5, keys: ["a"] }] }, "/requests/0/dataset"],
			["fields not an array", { requests: [{ dataset: "x", keys: ["a"], fields: "age" }] }, "/requests/0/fields"],
			["an unknown property in a request", { requests: [{ dataset: "x", keys: ["a"], limit: 5 }] }, "/requests/0/limit"],
			["an unknown top-level property", { requests: [{ dataset: "x", keys: ["a"] }], consistency: "strong" }, "/consistency"],
			["negative max_staleness", { requests: [{ dataset: "x", keys: ["a"] }], max_staleness: -1 }, "/max_staleness"],
			["max_staleness as a string", { requests: [{ dataset: "x", keys: ["a"] }], max_staleness: "60" }, "/max_staleness"],
			["bad if_stale", { requests: [{ dataset: "x", keys: ["a"] }], if_stale: "drop" }, "/if_stale"],
		];
		it.each(invalid)("%s -> 400 problem pointing at %s", async (_label, body, pointer) => {
			const p = await expectProblem(await lookup(body), 400);
			expect(p.errors?.map((e) => e.pointer)).toContain(pointer);
		});

		// Regression (was a bug): same root cause as fields=toString on the record route: checkFields uses `in`.
		it("a field named like an Object.prototype member (constructor) -> 400 problem", async () => {
			const p = await expectProblem(await lookup({ requests: [{ dataset: users, keys: ["u1"], fields: ["constructor"] }] }), 400);
			expect(p.errors).toEqual([{ pointer: "/requests/0/fields/0", detail: expect.stringContaining("constructor") }]);
		});
	});

	describe("cost", () => {
		// Regression (was a bug): the projection was applied per record with every name of `fields` as
		// sent, so 1,000 keys and one field named 150,000 times (a body under 1 MiB) cost 150 million
		// steps: about 15 s of CPU in one request, past a Worker's CPU limit. A projection is now its
		// distinct names (src/serving/params.ts, checkFields).
		it("fields naming one field 150,000 times over 1,000 keys answers as naming it once, promptly", async () => {
			const body = { requests: [{ dataset: users, keys: Array<string>(1000).fill("u1"), fields: Array<string>(150_000).fill("age") }] };
			const started = Date.now();
			const res = await expectJson<LookupBody>(await lookup(body), 200);
			expect(res.results[0]?.records).toHaveLength(1000);
			expect(new Set(res.results[0]?.records.map((r) => JSON.stringify(r.value)))).toEqual(new Set([JSON.stringify({ age: 1 })]));
			expect(Date.now() - started).toBeLessThan(3000);
		});

		// Regression (was a bug): each error item was checked against every item before it (errors.some), so
		// 1,000 one-key requests each naming 25 unknown fields (a 350 KB body, 20,000 items) took seconds of CPU.
		it("1,000 requests each naming 25 unknown fields: a 400 with every request's items, promptly", async () => {
			const fields = Array.from({ length: 25 }, (_, i) => `nope${i}`);
			const started = Date.now();
			const p = await expectProblem(await lookup({ requests: Array.from({ length: 1000 }, () => ({ dataset: users, keys: ["u1"], fields })) }), 400);
			expect(Date.now() - started).toBeLessThan(3000);
			// 20 named per request (and "and 5 more" in its detail), for each of the 1,000.
			expect(p.errors).toHaveLength(20_000);
			expect(p.errors?.[19_999]).toEqual({ pointer: "/requests/999/fields/19", detail: 'unknown field "nope19"' });
		});
	});
});
