/**
 * History, point-in-time reads and aggregates, probed as a hostile newcomer would (rev-time): each
 * case here failed before its fix.
 */
import { describe, expect, it } from "vitest";
import { HOUR } from "../../src/aggregates/windows";
import { DAY_MS, pruneEventLog } from "../../src/history/retention";
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
