/**
 * Hostile review (timing and provenance): attacks on as-of reads after the retention, the change
 * counters that confirm L0 copies, and the ids of events sent without id or event_time.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { call, createDataset, env, expectJson, expectProblem, getRecord, type RecordBody } from "./helpers";

const DAY = 86_400_000;

describe("as_of after history_days was raised", () => {
	it("an as_of before what the retention folded into a key's base is a 400, not a state that holds events after as_of", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int", b: "string" }, history_days: 1 } as never);
		const now = Date.now();
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		const insert = (seq: number, id: string, t: number, op: string, value: unknown) =>
			env.DB.prepare("INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at) VALUES (?1, ?2, 'k', ?3, ?4, ?5, ?6, ?3)")
				.bind(seq, ds, t, id, op, JSON.stringify(value))
				.run();
		await insert(lowest - 2, "old1", now - 3 * DAY, "upsert", { a: 1, b: "first" });
		await insert(lowest - 1, "old2", now - 2 * DAY, "patch", { a: 2 });
		await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
			createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
			env,
			createExecutionContext(),
		);
		const left = await env.DB.prepare("SELECT count(*) AS n FROM event_log WHERE dataset = ?1").bind(ds).first<{ n: number }>();
		expect(left?.n).toBe(0);
		// The history is now kept for a week: as_of 2.5 days ago passes the dataset's history start.
		await expectJson(await call("PUT", `/v1/datasets/${ds}`, { json: { key: "id", fields: { a: "int", b: "string" }, history_days: 7 } }), 200);
		const asOf = now - 2.5 * DAY;
		// The log no longer knows the state then (old2, after it, is folded into the base): it must not
		// answer {a: 2}, a value from after as_of.
		const res = await getRecord(ds, "k", `as_of=${asOf}`);
		if (res.status === 200) expect(((await res.json()) as RecordBody).value).toEqual({ a: 1, b: "first" });
		else await expectProblem(res, 400);
		const looked = await call("POST", "/v1/lookup", { json: { requests: [{ dataset: ds, keys: ["k"] }], as_of: asOf } });
		if (looked.status === 200) {
			const body = (await looked.json()) as { results: { records: { value: unknown }[] }[] };
			expect(body.results[0]?.records[0]?.value).toEqual({ a: 1, b: "first" });
		} else await expectProblem(looked, 400);
		// After everything the base holds, the as_of read is exact again.
		expect((await expectJson<RecordBody>(await getRecord(ds, "k", `as_of=${now - 1.5 * DAY}`), 200)).value).toEqual({ a: 2, b: "first" });
	});
});

describe("ids of events sent without id or event_time", () => {
	it("follow the body's order past line 999,999 of an NDJSON body (a 5 MB body holds over a million lines)", async () => {
		const { assignIds, MAX_BODY_BYTES } = await import("../../src/ingest/events");
		const { compareClocks } = await import("../../src/ingest/merge");
		const t = Date.now();
		// Blank lines count in an NDJSON index but not towards the event count.
		const indexes = [0, 9, 10, 99_999, 999_998, 999_999, 1_000_000, 1_000_001, MAX_BODY_BYTES];
		for (const idempotencyKey of [undefined, "K"]) {
			const events = indexes.map((index) => ({ index, sentTime: null, event: { id: "", dataset: "d", key: "k", op: "upsert" as const, time: t } }));
			await assignIds(events, { principalId: "p", ...(idempotencyKey ? { idempotencyKey } : {}) });
			for (let i = 1; i < events.length; i++) {
				const a = events[i - 1]?.event as { id: string; time: number };
				const b = events[i]?.event as { id: string; time: number };
				expect(compareClocks([b.time, b.id], [a.time, a.id]), `${a.id} then ${b.id}`).toBe(1);
			}
			// The ids of the first million indexes keep their form, so a body resent with an Idempotency-Key keeps its ids.
			expect(events[0]?.event.id).toMatch(/-000000$/);
			expect(events[5]?.event.id).toMatch(/-999999$/);
		}
	});
});
