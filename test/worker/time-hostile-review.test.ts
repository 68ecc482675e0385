/**
 * History, point-in-time reads and aggregates, probed as a hostile newcomer would (rev-time): each
 * case here failed before its fix.
 */
import { describe, expect, it } from "vitest";
import { HOUR } from "../../src/aggregates/windows";
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
