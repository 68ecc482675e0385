/**
 * History, point-in-time reads and aggregates, probed as a hostile newcomer would (rev-time): each
 * case here failed before its fix.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ensureAggregateBackfills } from "../../src/aggregates/backfill";
import { HOUR, MINUTE } from "../../src/aggregates/windows";
import type { Env } from "../../src/env";
import { DAY_MS, pruneEventLog } from "../../src/history/retention";
import worker from "../../src/index";
import type { DatasetSpec } from "../../src/registry/spec";
import { call, createDataset, EVENTS_QUEUE, env, expectJson, message, runQueue, uniqueName } from "./helpers";

const importRows = async (ds: string, rows: unknown[]) => expectJson(await call("POST", `/v1/datasets/${ds}/import`, { json: rows }), 200);

describe("a lookup of an aggregate dataset", () => {
	it("times the aggregates' D1 read in Server-Timing, as the record route and GraphQL do, current or as_of", async () => {
		const ds = await createDataset({
			key: "id",
			fields: { p: "float" },
			ttl_seconds: 86_400,
			history_days: 7,
			aggregates: { c: { fn: "count", window: "24h" } },
		} as never);
		const t = Date.now() - HOUR;
		await importRows(ds, [{ id: "k", p: 1, _event_time: t, _id: "f1" }]);
		for (const body of [{ requests: [{ dataset: ds, keys: ["k"] }] }, { requests: [{ dataset: ds, keys: ["k"] }], as_of: t }]) {
			const res = await call("POST", "/v1/lookup", { json: body });
			const got = await expectJson<{ results: { records: { value: Record<string, unknown> }[] }[] }>(res, 200);
			expect(got.results[0]?.records[0]?.value.c).toBe(1);
			expect(res.headers.get("server-timing")).toMatch(/(^|, )aggregates;dur=/);
		}
		// The record route says so too (the reference).
		const one = await call("GET", `/v1/datasets/${ds}/records/k`);
		expect(one.headers.get("server-timing")).toMatch(/(^|, )aggregates;dur=/);
	});
});

describe("an aggregate added while D1 refused its backfill job", () => {
	it("is backfilled once the PUT is retried: the facts from before it count, each once", async () => {
		const name = uniqueName();
		const base = { key: "id", fields: { p: "float" }, ttl_seconds: 86_400, history_days: 7 };
		await createDataset(base as never, name);
		const t = Date.now() - HOUR;
		await importRows(
			name,
			[1, 2, 3].map((i) => ({ id: "k", p: i, _event_time: t + i, _id: `f${i}`, _op: "patch" })),
		);
		const withAgg = { ...base, aggregates: { c: { fn: "count", window: "24h" } } };
		// D1 takes the spec, then refuses the backfill's job (an outage between the two statements).
		const trigger = `refuse_backfill_${name}`;
		await env.DB.prepare(
			`CREATE TRIGGER ${trigger} BEFORE INSERT ON agg_backfills WHEN NEW.dataset = '${name}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
		).run();
		try {
			const failed = await call("PUT", `/v1/datasets/${name}`, { json: withAgg });
			expect(failed.status).toBe(503);
		} finally {
			await env.DB.prepare(`DROP TRIGGER ${trigger}`).run();
		}
		// The client retries, as the 503 asks, and gets its spec.
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: withAgg }), 200);
		const runJobs = async () => {
			const jobs = await env.DB.prepare("SELECT job FROM agg_backfills WHERE dataset = ?1").bind(name).all<{ job: string }>();
			for (const { job } of jobs.results) await runQueue(EVENTS_QUEUE, [message(JSON.stringify({ v: 1, backfill: { job } }))]);
			return jobs.results.length;
		};
		expect(await runJobs()).toBe(1);
		const read = async () => (await expectJson<{ value: Record<string, unknown> }>(await call("GET", `/v1/datasets/${name}/records/k`), 200)).value.c;
		expect(await read()).toBe(3);
		// Applying the same spec again starts nothing more: the facts still count once.
		await expectJson(await call("PUT", `/v1/datasets/${name}`, { json: withAgg }), 200);
		expect(await runJobs()).toBe(1);
		expect(await read()).toBe(3);
	});
});

/** env.DB, noting the size in UTF-8 bytes of every string bound to a statement (D1 takes strings of at most 2 MB). */
function measuringDb(): { db: D1Database; largest: () => number } {
	let largest = 0;
	const bytes = new TextEncoder();
	const wrap = (stmt: D1PreparedStatement): D1PreparedStatement =>
		new Proxy(stmt, {
			get(target, prop) {
				if (prop !== "bind") return Reflect.get(target, prop);
				return (...args: unknown[]) => {
					for (const a of args) if (typeof a === "string") largest = Math.max(largest, bytes.encode(a).length);
					return target.bind(...args);
				};
			},
		});
	const db = new Proxy(env.DB, {
		get(target, prop) {
			if (prop === "prepare") return (sql: string) => wrap(target.prepare(sql));
			const v = Reflect.get(target, prop);
			return typeof v === "function" ? v.bind(target) : v;
		},
	});
	return { db, largest: () => largest };
}

describe("the retention's prune", () => {
	it("writes the bases of a chunk in statements D1 takes (no string over 2 MB), however large the records: the log is pruned, history stays exact", async () => {
		const ds = await createDataset({ key: "id", fields: { text: "string" }, history_days: 1 } as never);
		const now = Date.now();
		const t = now - 3 * DAY_MS;
		// 60 keys of 40 KB each, applied three days ago (below every seq since): 2.4 MB of bases in one chunk.
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
		for (const [i, key] of keys.entries()) {
			await env.DB.prepare(
				"INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, 'upsert', ?6, ?4)",
			)
				.bind(lowest - 1 - i, ds, key, t + i, `e${i}`, JSON.stringify({ text: `${key}:${"x".repeat(40_000)}` }))
				.run();
		}
		const spec = (await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${ds}`), 200)) as DatasetSpec;
		const measured = measuringDb();
		const result = await pruneEventLog(measured.db, new Map([[ds, spec]]), now);
		expect(result.pruned).toBeGreaterThanOrEqual(60);
		expect(measured.largest()).toBeLessThanOrEqual(2_000_000);
		const left = await env.DB.prepare("SELECT count(*) AS n FROM event_log WHERE dataset = ?1").bind(ds).first<{ n: number }>();
		expect(left?.n).toBe(0);
		const bases = await env.DB.prepare("SELECT count(*) AS n FROM history_base WHERE dataset = ?1").bind(ds).first<{ n: number }>();
		expect(bases?.n).toBe(60);
		// The state then is still told from the bases.
		const past = await call("GET", `/v1/datasets/${ds}/records/k7?as_of=${now - 1000}`);
		expect((await expectJson<{ value: { text: string } }>(past, 200)).value.text.startsWith("k7:")).toBe(true);
	});
});

describe("the cron", () => {
	it("drops old aggregate tiles even when the event log's prune fails (each maintenance job runs whatever the other does), and still reports the failure", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, history_days: 1 } as never);
		const now = Date.now();
		// A log entry past the retention, whose base D1 refuses to write: the prune fails.
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		await env.DB.prepare(
			"INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at) VALUES (?1, ?2, 'k', ?3, 'e1', 'upsert', '{\"a\":1}', ?3)",
		)
			.bind(lowest - 1, ds, now - 3 * DAY_MS)
			.run();
		const trigger = `refuse_base_${ds}`;
		await env.DB.prepare(
			`CREATE TRIGGER ${trigger} BEFORE INSERT ON history_base WHEN NEW.dataset = '${ds}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
		).run();
		// A minute tile two days old: past its retention (26 hours).
		const oldStart = Math.floor((now - 2 * DAY_MS) / MINUTE) * MINUTE;
		await env.DB.prepare("INSERT INTO agg_tiles (dataset, key, agg, res, start, cnt, sum, mn, mx) VALUES (?1, 'k', 'a:0', ?2, ?3, 1, 1, 1, 1)")
			.bind(ds, MINUTE, oldStart)
			.run();
		let failed: unknown;
		try {
			await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
				createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
				env,
				createExecutionContext(),
			);
		} catch (e) {
			failed = e;
		} finally {
			await env.DB.prepare(`DROP TRIGGER ${trigger}`).run();
		}
		expect(String(failed)).toMatch(/refused by the test/);
		const tiles = await env.DB.prepare("SELECT count(*) AS n FROM agg_tiles WHERE dataset = ?1").bind(ds).first<{ n: number }>();
		expect(tiles?.n).toBe(0);
		// The prune's entry is still in the log (nothing half-done), for the next run.
		const left = await env.DB.prepare("SELECT count(*) AS n FROM event_log WHERE dataset = ?1").bind(ds).first<{ n: number }>();
		expect(left?.n).toBe(1);
	});
});

describe("two PUTs adding the same aggregate at once", () => {
	it("start one backfill between them: the facts from before it count once", async () => {
		const name = uniqueName();
		const base = { key: "id", fields: { p: "float" }, ttl_seconds: 86_400, history_days: 7 };
		await createDataset(base as never, name);
		const t = Date.now() - HOUR;
		await importRows(
			name,
			[1, 2, 3].map((i) => ({ id: "k", p: i, _event_time: t + i, _id: `f${i}`, _op: "patch" })),
		);
		const withAgg = { ...base, aggregates: { c: { fn: "count", window: "24h" } } };
		const puts = await Promise.all(Array.from({ length: 4 }, () => call("PUT", `/v1/datasets/${name}`, { json: withAgg })));
		expect(puts.map((r) => r.status)).toEqual([200, 200, 200, 200]);
		// However their steps interleave: each looks for the aggregate's job before any records it.
		const spec = await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${name}`), 200);
		await env.DB.prepare("DELETE FROM agg_backfills WHERE dataset = ?1").bind(name).run();
		await Promise.all(Array.from({ length: 4 }, () => ensureAggregateBackfills(env.DB, env.EVENTS_QUEUE, spec)));
		const jobs = await env.DB.prepare("SELECT job FROM agg_backfills WHERE dataset = ?1").bind(name).all<{ job: string }>();
		for (const { job } of jobs.results) await runQueue(EVENTS_QUEUE, [message(JSON.stringify({ v: 1, backfill: { job } }))]);
		const got = await expectJson<{ value: Record<string, unknown> }>(await call("GET", `/v1/datasets/${name}/records/k`), 200);
		expect(got.value.c).toBe(3);
	});
});

describe("a prune chunk of large records", () => {
	it("reads at most its byte budget of values at once (a Worker has 128 MB), and goes on in further chunks until the log is pruned", async () => {
		const ds = await createDataset({ key: "id", fields: { text: "string" }, history_days: 1 } as never);
		const now = Date.now();
		const t = now - 3 * DAY_MS;
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		// 24 entries of a quarter of a (small) budget each: six budgets' worth, where a chunk takes 2,000 entries.
		const budget = 400_000;
		const size = budget / 4 - 100;
		for (let i = 0; i < 24; i++) {
			await env.DB.prepare(
				"INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, 'upsert', ?6, ?4)",
			)
				.bind(lowest - 1 - i, ds, `k${i % 3}`, t + i, `e${String(i).padStart(2, "0")}`, JSON.stringify({ text: `${i}:${"x".repeat(size)}` }))
				.run();
		}
		const spec = await expectJson<DatasetSpec>(await call("GET", `/v1/datasets/${ds}`), 200);
		const first = await pruneEventLog(env.DB, new Map([[ds, spec]]), now, 1, undefined, budget);
		// One chunk of the step: within the budget, and it says there is more.
		expect(first.pruned).toBeGreaterThan(0);
		expect(first.pruned).toBeLessThanOrEqual(4);
		expect(first.more).toBe(true);
		const rest = await pruneEventLog(env.DB, new Map([[ds, spec]]), now, 50, undefined, budget);
		expect(first.pruned + rest.pruned).toBe(24);
		const left = await env.DB.prepare("SELECT count(*) AS n FROM event_log WHERE dataset = ?1").bind(ds).first<{ n: number }>();
		expect(left?.n).toBe(0);
		// Each key's base is the newest of its entries (upserts, in event_time order).
		const past = await expectJson<{ value: { text: string } }>(await call("GET", `/v1/datasets/${ds}/records/k1?as_of=${now - 1000}`), 200);
		expect(past.value.text.startsWith("22:")).toBe(true);
	});
});
