/**
 * History and point-in-time reads, from the applied-event log: versions in event_time order with
 * the whole state after each (late events at their place), as_of on record reads and lookups, the
 * 400 before history begins, and retention folding pruned events into a base so reads stay exact.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { call, createDataset, env, expectJson, expectProblem, getRecord, type RecordBody, uniqueName } from "./helpers";

interface Version {
	event_time: string;
	event_id: string;
	op: string;
	value: Record<string, unknown> | null;
}
interface Versions {
	versions: Version[];
	next_cursor: string | null;
	history_begins_at: string;
}

let ds = "";
beforeAll(async () => {
	ds = await createDataset({ key: "id", fields: { a: "int", b: "string" }, ttl_seconds: 86_400 } as never);
});

const importRows = async (dataset: string, rows: unknown[]) => expectJson(await call("POST", `/v1/datasets/${dataset}/import`, { json: rows }), 200);
const history = (key: string, query = "") => call("GET", `/v1/datasets/${ds}/records/${key}/history${query ? `?${query}` : ""}`);
const iso = (t: number) => new Date(t).toISOString();

describe("GET /v1/datasets/:name/records/:key/history", () => {
	it("lists versions in event_time order, each the whole state after it; a late event lands at its place and changes the states after it", async () => {
		const k = uniqueName("h");
		const t = Date.now() - 3_600_000;
		await importRows(ds, [
			{ id: k, a: 1, b: "x", _event_time: t, _id: "e1" },
			{ id: k, b: "y", _op: "patch", _event_time: t + 2000, _id: "e3" },
		]);
		let page = await expectJson<Versions>(await history(k), 200);
		expect(page.versions).toEqual([
			{ event_time: iso(t), event_id: "e1", op: "upsert", value: { a: 1, b: "x" } },
			{ event_time: iso(t + 2000), event_id: "e3", op: "patch", value: { a: 1, b: "y" } },
		]);
		// A late patch between them: it appears at its place, and the state after the later patch now includes it.
		await importRows(ds, [{ id: k, a: 2, _op: "patch", _event_time: t + 1000, _id: "e2" }]);
		page = await expectJson<Versions>(await history(k), 200);
		expect(page.versions.map((v) => [v.event_id, v.value])).toEqual([
			["e1", { a: 1, b: "x" }],
			["e2", { a: 2, b: "x" }],
			["e3", { a: 2, b: "y" }],
		]);
		expect(page.next_cursor).toBeNull();
		expect(Date.parse(page.history_begins_at)).toBeLessThan(t);
		// A delete, then a late upsert older than it: a tombstone, and the late one changes nothing after it.
		await importRows(ds, [
			{ id: k, _op: "delete", _event_time: t + 3000, _id: "e4" },
			{ id: k, a: 9, _event_time: t + 500, _id: "e0" },
		]);
		page = await expectJson<Versions>(await history(k), 200);
		expect(page.versions.map((v) => [v.event_id, v.op, v.value])).toEqual([
			["e1", "upsert", { a: 1, b: "x" }],
			["e0", "upsert", { a: 9 }],
			["e2", "patch", { a: 2 }],
			["e3", "patch", { a: 2, b: "y" }],
			["e4", "delete", null],
		]);
	});

	it("pages with a cursor, and filters by since and until (inclusive)", async () => {
		const k = uniqueName("p");
		const t = Date.now() - 600_000;
		await importRows(
			ds,
			Array.from({ length: 7 }, (_, i) => ({ id: k, a: i, _event_time: t + i * 1000, _id: `v${i}` })),
		);
		const seen: string[] = [];
		let cursor: string | null = null;
		do {
			const page: Versions = await expectJson(await history(k, `limit=3${cursor ? `&cursor=${cursor}` : ""}`), 200);
			seen.push(...page.versions.map((v) => v.event_id));
			cursor = page.next_cursor;
		} while (cursor);
		expect(seen).toEqual(["v0", "v1", "v2", "v3", "v4", "v5", "v6"]);
		const window = await expectJson<Versions>(await history(k, `since=${iso(t + 2000)}&until=${t + 4000}`), 200);
		expect(window.versions.map((v) => [v.event_id, v.value])).toEqual([
			["v2", { a: 2 }],
			["v3", { a: 3 }],
			["v4", { a: 4 }],
		]);
	});

	it("an unknown key has no versions; bad parameters are 400 problems naming them", async () => {
		expect((await expectJson<Versions>(await history(uniqueName("none")), 200)).versions).toEqual([]);
		for (const [q, pointer] of [
			["limit=0", "limit"],
			["limit=1001", "limit"],
			["since=yesterday", "since"],
			["cursor=%%", "cursor"],
		]) {
			const p = await expectProblem(await history("x", q as string), 400);
			expect(p.errors?.[0]?.pointer).toBe(pointer);
		}
		expect((await expectProblem(await history("k".repeat(401)), 400)).errors).toEqual([{ pointer: "key", detail: "key is longer than 400 bytes" }]);
		await expectProblem(await call("GET", `/v1/datasets/${uniqueName("missing")}/records/x/history`), 404);
	});
});

describe("as_of", () => {
	it("a record read as of a time answers the state all events up to it produce, late arrivals included", async () => {
		const k = uniqueName("asof");
		const t = Date.now() - 3_600_000;
		await importRows(ds, [
			{ id: k, a: 1, b: "first", _event_time: t },
			{ id: k, b: "second", _op: "patch", _event_time: t + 10_000 },
		]);
		const at = async (ms: number) => getRecord(ds, k, `as_of=${encodeURIComponent(iso(ms))}`);
		await expectProblem(await at(t - 1), 404);
		expect(await expectJson<RecordBody>(await at(t + 5000), 200)).toMatchObject({
			status: "present",
			value: { a: 1, b: "first" },
			event_time: iso(t),
			age_ms: 5000,
		});
		expect((await expectJson<RecordBody>(await at(t + 10_000), 200)).value).toEqual({ a: 1, b: "second" });
		// A late event at t+5000 changes what t+5000..t+10000 answer, not what came before.
		await importRows(ds, [{ id: k, a: 2, _op: "patch", _event_time: t + 5000 }]);
		expect((await expectJson<RecordBody>(await at(t + 4999), 200)).value).toEqual({ a: 1, b: "first" });
		expect((await expectJson<RecordBody>(await at(t + 5000), 200)).value).toEqual({ a: 2, b: "first" });
		expect((await expectJson<RecordBody>(await getRecord(ds, k, `as_of=${t + 20_000}`), 200)).value).toEqual({ a: 2, b: "second" });
		// fields projects as on current reads.
		expect((await expectJson<RecordBody>(await getRecord(ds, k, `as_of=${t + 20_000}&fields=b`), 200)).value).toEqual({ b: "second" });
	});

	it("is never answered from a cache tier: the current value sits in L0, Redis and KV, the past one comes from the log", async () => {
		const k = uniqueName("nocache");
		const t = Date.now() - 60_000;
		await importRows(ds, [{ id: k, a: 1, _event_time: t }]);
		await importRows(ds, [{ id: k, a: 2, _event_time: t + 1000 }]);
		expect((await getRecord(ds, k)).headers.get("x-hotpath-tier")).not.toBeNull();
		const res = await getRecord(ds, k, `as_of=${t + 500}`);
		expect(res.headers.get("x-hotpath-tier")).toBe("d1");
		expect(res.headers.get("cache-control")).toBe("no-store");
		expect(((await res.json()) as RecordBody).value).toEqual({ a: 1 });
	});

	it("before the history the dataset keeps, it is a 400 problem that says where history begins", async () => {
		const short = await createDataset({ key: "id", fields: { a: "int" }, history_days: 1 } as never);
		const p = await expectProblem(await getRecord(short, "k", `as_of=${Date.now() - 2 * 86_400_000}`), 400);
		expect(p.detail).toMatch(/before the history of dataset ".*" begins: \d{4}-\d\d-\d\dT.*\(history_days = 1\)/);
		expect(p.errors?.[0]?.pointer).toBe("as_of");
		await expectProblem(await getRecord(short, "k", "as_of=soon"), 400);
	});

	it("POST /v1/lookup takes as_of at the top and per request, next to current reads, in request order", async () => {
		const k = uniqueName("lk");
		const t = Date.now() - 600_000;
		await importRows(ds, [
			{ id: k, a: 1, _event_time: t },
			{ id: k, a: 2, _event_time: t + 1000 },
		]);
		const res = await expectJson<{ results: { dataset: string; records: RecordBody[] }[] }>(
			await call("POST", "/v1/lookup", {
				json: {
					as_of: t + 500,
					requests: [
						{ dataset: ds, keys: [k, "nobody"] },
						{ dataset: ds, keys: [k], as_of: iso(t + 1500) },
						{ dataset: ds, keys: [k], as_of: null },
					],
				},
			}),
			200,
		);
		expect(res.results.map((r) => r.records.map((x) => [x.status, x.value]))).toEqual([
			[
				["present", { a: 1 }],
				["not_found", null],
			],
			[["present", { a: 2 }]],
			[["present", { a: 2 }]],
		]);
		const short = await createDataset({ key: "id", fields: { a: "int" }, history_days: 1 } as never);
		const p = await expectProblem(
			await call("POST", "/v1/lookup", { json: { requests: [{ dataset: short, keys: ["k"], as_of: Date.now() - 3 * 86_400_000 }] } }),
			400,
		);
		expect(p.errors?.[0]?.pointer).toBe("/requests/0/as_of");
	});
});

describe("retention keeps history exact", () => {
	it("pruned events are folded into the key's base: as_of and history after the cutoff answer as before, and the record is untouched", async () => {
		const short = await createDataset({ key: "id", fields: { a: "int", b: "string" }, history_days: 1 } as never);
		const now = Date.now();
		const day = 86_400_000;
		// Two events applied three days ago (below every seq since), one applied now.
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		const insert = (seq: number, id: string, t: number, op: string, value: unknown) =>
			env.DB.prepare("INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at) VALUES (?1, ?2, 'k', ?3, ?4, ?5, ?6, ?3)")
				.bind(seq, short, t, id, op, JSON.stringify(value))
				.run();
		await insert(lowest - 2, "old1", now - 3 * day, "upsert", { a: 1, b: "kept" });
		await insert(lowest - 1, "old2", now - 3 * day + 1000, "patch", { a: 2 });
		await importRows(short, [{ id: "k", b: "new", _op: "patch", _event_time: now - 1000, _id: "new1" }]);
		const before = await expectJson<RecordBody>(await getRecord(short, "k", `as_of=${now - 500}`), 200);
		expect(before.value).toEqual({ a: 2, b: "new" });

		await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
			createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
			env,
			createExecutionContext(),
		);
		const left = await env.DB.prepare("SELECT event_id FROM event_log WHERE dataset = ?1 ORDER BY event_id").bind(short).all<{ event_id: string }>();
		expect(left.results.map((r) => r.event_id)).toEqual(["new1"]);
		const base = await env.DB.prepare("SELECT state, through_time FROM history_base WHERE dataset = ?1 AND key = 'k'")
			.bind(short)
			.first<{ state: string; through_time: number }>();
		expect(JSON.parse(base?.state ?? "{}").value).toEqual({ a: 2, b: "kept" });
		expect(base?.through_time).toBe(now - 3 * day + 1000);
		// The same answers as before the prune.
		expect((await expectJson<RecordBody>(await getRecord(short, "k", `as_of=${now - 500}`), 200)).value).toEqual({ a: 2, b: "new" });
		const page = await expectJson<Versions>(await call("GET", `/v1/datasets/${short}/records/k/history`), 200);
		expect(page.versions.map((v) => [v.event_id, v.value])).toEqual([["new1", { a: 2, b: "new" }]]);
	});

	it("a late upsert kept in the log folds onto a base that holds a newer patch: the patch's field survives it", async () => {
		const short = await createDataset({ key: "id", fields: { a: "int", b: "string" }, history_days: 1 } as never);
		const now = Date.now();
		const t0 = now - 3 * 86_400_000;
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		const insert = (seq: number, id: string, t: number, op: string, value: unknown) =>
			env.DB.prepare("INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at) VALUES (?1, ?2, 'k', ?3, ?4, ?5, ?6, ?3)")
				.bind(seq, short, t, id, op, JSON.stringify(value))
				.run();
		await insert(lowest - 2, "old1", t0, "upsert", { a: 1, b: "kept" });
		await insert(lowest - 1, "old2", t0 + 2000, "patch", { a: 2 });
		// Between the two in event time, but applied now: the prune keeps it in the log.
		await importRows(short, [{ id: "k", a: 9, b: "late", _event_time: t0 + 1000, _id: "late" }]);
		const expected = { a: 2, b: "late" };
		expect((await expectJson<RecordBody>(await getRecord(short, "k", `as_of=${now - 500}`), 200)).value).toEqual(expected);

		await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
			createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
			env,
			createExecutionContext(),
		);
		const left = await env.DB.prepare("SELECT event_id FROM event_log WHERE dataset = ?1 ORDER BY event_id").bind(short).all<{ event_id: string }>();
		expect(left.results.map((r) => r.event_id)).toEqual(["late"]);
		// The only upsert left in the log is the late one, yet the base's newer patch of `a` still shows.
		expect((await expectJson<RecordBody>(await getRecord(short, "k", `as_of=${now - 500}`), 200)).value).toEqual(expected);
		const looked = await expectJson<{ results: { records: { value: unknown }[] }[] }>(
			await call("POST", "/v1/lookup", { json: { requests: [{ dataset: short, keys: ["k"] }], as_of: now - 500 } }),
			200,
		);
		expect(looked.results[0]?.records[0]?.value).toEqual(expected);
		// The state right after the late upsert was {a: 9, b: "late"}; folded onto the base it would
		// show old2's a: 2 from later. The log cannot tell it, so history does not list it.
		const page = await expectJson<Versions>(await call("GET", `/v1/datasets/${short}/records/k/history`), 200);
		expect(page.versions).toEqual([]);
	});
});
