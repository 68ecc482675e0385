/**
 * An event id is applied at most once per key, whatever its event_time, for as long as history is
 * kept: the applied-event log, ids for events sent without one (Idempotency-Key, content, random),
 * and the log's retention by the cron trigger.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import {
	ADMIN_KEY,
	BASE,
	call,
	createDataset,
	d1Record,
	EVENTS_QUEUE,
	env,
	eventsBody,
	eventually,
	expectProblem,
	hangable,
	message,
	postEvents,
	type QueueEvent,
	runQueue,
	sleep,
	staysFalse,
	uniqueName,
	waitForD1,
} from "./helpers";

let ds = "";
beforeAll(async () => {
	ds = await createDataset({ key: "id", fields: { a: "int", b: "string" }, ttl_seconds: 3600 });
});

interface LogRow {
	dataset: string;
	key: string;
	event_time: number;
	event_id: string;
	op: string;
	value: string | null;
	applied_at: number;
}
const logOf = async (dataset: string, key: string) =>
	(await env.DB.prepare("SELECT * FROM event_log WHERE dataset = ?1 AND key = ?2 ORDER BY event_time, event_id").bind(dataset, key).all<LogRow>()).results;

const fetcher = worker.fetch as unknown as (r: Request, e: Env, x: ExecutionContext) => Promise<Response>;

/** POST /v1/events under an Idempotency-Key, through the worker with `overrides` in its env (a held queue, a D1 that fails). */
const postWithEnv = (overrides: Partial<Env>, body: unknown, idempotencyKey: string) =>
	fetcher(
		new Request(`${BASE}/v1/events`, {
			method: "POST",
			headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json", "idempotency-key": idempotencyKey },
			body: JSON.stringify(body),
		}),
		{ ...env, ...overrides },
		createExecutionContext(),
	);

/** env.DB where the idempotency receipt's statements are made by `receipt` (given the real one's maker); the rest of D1 answers. */
const dbWithReceipts = (receipt: (real: () => D1PreparedStatement) => D1PreparedStatement) =>
	new Proxy(env.DB, {
		get(target, prop) {
			const v = Reflect.get(target, prop);
			if (prop === "prepare") return (sql: string) => (sql.includes("idempotency_receipts") ? receipt(() => v.call(target, sql)) : v.call(target, sql));
			return typeof v === "function" ? v.bind(target) : v;
		},
	});

const ev = (key: string, op: QueueEvent["op"], time: number, value: Record<string, unknown> | undefined, id: string): QueueEvent => ({
	id,
	dataset: ds,
	key,
	op,
	time,
	...(value ? { value } : {}),
});

describe("the applied-event log", () => {
	it("holds every applied event of a key, in (event_time, id) order, with op and value; a late loser is logged too", async () => {
		const k = uniqueName("k");
		const t = Date.now() - 60_000;
		await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", t + 10, { a: 1, b: "x" }, "u10"), ev(k, "patch", t + 20, { b: "y" }, "p20")]))]);
		// Arrives late and loses to the upsert, but it was applied (a no-op): history needs it at its place in time.
		await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", t + 5, { a: 0 }, "u5"), ev(k, "delete", t + 30, undefined, "d30")]))]);
		const rows = await logOf(ds, k);
		expect(rows.map((r) => [r.event_time - t, r.event_id, r.op, r.value === null ? null : JSON.parse(r.value)])).toEqual([
			[5, "u5", "upsert", { a: 0 }],
			[10, "u10", "upsert", { a: 1, b: "x" }],
			[20, "p20", "patch", { b: "y" }],
			[30, "d30", "delete", null],
		]);
		expect(await d1Record(ds, k)).toMatchObject({ value: null, base_deleted: 1, rev: 2 });
	});

	it("a redelivered batch adds no log rows", async () => {
		const k = uniqueName("k");
		const msg = message(eventsBody([ev(k, "upsert", Date.now(), { a: 1 }, "once")]));
		await runQueue(EVENTS_QUEUE, [msg]);
		await runQueue(EVENTS_QUEUE, [{ ...msg, attempts: 2 }]);
		expect((await logOf(ds, k)).map((r) => r.event_id)).toEqual(["once"]);
	});
});

describe("an id is applied at most once per key, whatever its event_time", () => {
	it("A's resend with a new time after B's newer write is not applied: B's value stays", async () => {
		const k = uniqueName("k");
		const t = Date.now() - 10_000;
		await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", t, { a: 1 }, "from-A")]))]);
		await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", t + 1000, { a: 2 }, "from-B")]))]);
		// A's retry carries the same id, but the time it was received again.
		const retry = message(eventsBody([ev(k, "upsert", t + 5000, { a: 1 }, "from-A")]));
		expect((await runQueue(EVENTS_QUEUE, [retry])).explicitAcks).toEqual([retry.id]);
		expect(await d1Record(ds, k)).toMatchObject({ value: JSON.stringify({ a: 2 }), event_id: "from-B", rev: 2 });
		expect((await logOf(ds, k)).map((r) => r.event_id)).toEqual(["from-A", "from-B"]);
	});

	it("the same id twice in one batch with different times is one event, at the earlier time", async () => {
		const k = uniqueName("k");
		const t = Date.now() - 10_000;
		await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", t + 100, { a: 9 }, "dup"), ev(k, "upsert", t, { a: 9 }, "dup")]))]);
		const rows = await logOf(ds, k);
		expect(rows.map((r) => [r.event_id, r.event_time])).toEqual([["dup", t]]);
		expect(await d1Record(ds, k)).toMatchObject({ event_time: t, rev: 1 });
	});

	it("the same id on two different keys is two events: ids are per key", async () => {
		const [k1, k2] = [uniqueName("k"), uniqueName("k")];
		await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k1, "upsert", Date.now(), { a: 1 }, "shared"), ev(k2, "upsert", Date.now(), { a: 2 }, "shared")]))]);
		expect(JSON.parse((await d1Record(ds, k1))?.value ?? "null")).toEqual({ a: 1 });
		expect(JSON.parse((await d1Record(ds, k2))?.value ?? "null")).toEqual({ a: 2 });
	});
});

describe("ids of events sent without one (POST /v1/events)", () => {
	it("Idempotency-Key: resending the same body is a no-op, even after a newer write from someone else", async () => {
		const k = uniqueName("k");
		const body = [{ dataset: ds, key: k, op: "upsert", value: { a: 1, b: "A" } }];
		const send = (key: string) => call("POST", "/v1/events", { json: body, headers: { "idempotency-key": key } });
		expect((await send("req-A-1")).status).toBe(202);
		await waitForD1(ds, k);
		await postEvents([{ dataset: ds, key: k, op: "upsert", value: { a: 2, b: "B" } }]);
		await waitForD1(ds, k, (r) => r.rev === 2);
		// A timed out and retries the same request.
		expect((await send("req-A-1")).status).toBe(202);
		await staysFalse(async () => (await d1Record(ds, k))?.rev !== 2, 2500, "A's resend changing the record");
		expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 2, b: "B" });
		const ids = (await logOf(ds, k)).map((r) => r.event_id);
		expect(ids).toHaveLength(2);
		expect(ids.filter((i) => i.startsWith("k:"))).toHaveLength(1);
	});

	it("Idempotency-Key: a resend applied before its original (held in the queue) takes the original's receipt time, so a write made in between keeps its place", async () => {
		const k = uniqueName("k");
		const idem = uniqueName("req-A");
		const body = [{ dataset: ds, key: k, op: "upsert", value: { a: 1, b: "A" } }];
		// A's first attempt reaches the queue, and its message is held there (a batch being retried):
		// this queue keeps what it is sent and delivers it when the test says.
		const held: string[] = [];
		const holding = new Proxy(env.EVENTS_QUEUE, {
			get(target, prop) {
				if (prop === "sendBatch") return async (msgs: { body: unknown }[]) => void held.push(...msgs.map((m) => String(m.body)));
				const v = Reflect.get(target, prop);
				return typeof v === "function" ? v.bind(target) : v;
			},
		});
		const first = await postWithEnv({ EVENTS_QUEUE: holding as Queue }, body, idem);
		expect(first.status).toBe(202);
		expect(held).toHaveLength(1);
		const original = (JSON.parse(held[0] as string) as { events: QueueEvent[] }).events[0] as QueueEvent;

		// B writes after A's first attempt, then A, timed out, resends the same request.
		await new Promise((r) => setTimeout(r, 5));
		await postEvents([{ dataset: ds, key: k, op: "upsert", value: { a: 2, b: "B" } }]);
		const afterB = await waitForD1(ds, k);
		expect(afterB.event_time).toBeGreaterThan(original.time);
		await new Promise((r) => setTimeout(r, 5));
		expect((await call("POST", "/v1/events", { json: body, headers: { "idempotency-key": idem } })).status).toBe(202);
		const resend = await eventually(async () => (await logOf(ds, k)).find((r) => r.event_id === original.id), { what: "the resend in the log" });
		// The resend is A's first event exactly: the same id, at the time A was first received.
		expect(resend.event_time).toBe(original.time);
		expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 2, b: "B" });

		// The held original arrives at last: its id is applied already, so it changes nothing.
		await runQueue(
			EVENTS_QUEUE,
			held.map((m) => message(m)),
		);
		const after = await d1Record(ds, k);
		expect(JSON.parse(after?.value ?? "null")).toEqual({ a: 2, b: "B" });
		expect(after?.rev).toBe(afterB.rev);
		expect((await logOf(ds, k)).map((r) => r.event_id).filter((i) => i === original.id)).toHaveLength(1);
	});

	it("Idempotency-Key while D1 cannot record its receipt: the events are still accepted, at the request's own time", async () => {
		const k = uniqueName("k");
		const refusing = dbWithReceipts(() => {
			throw new Error("D1_ERROR: the database is unavailable");
		});
		const before = Date.now();
		const res = await postWithEnv({ DB: refusing }, [{ dataset: ds, key: k, op: "upsert", value: { a: 7 } }], uniqueName("idem"));
		expect(res.status).toBe(202);
		const row = await waitForD1(ds, k);
		expect(JSON.parse(row.value ?? "null")).toEqual({ a: 7 });
		expect(row.event_time).toBeGreaterThanOrEqual(before);
	});

	it("Idempotency-Key while D1 hangs on its receipt: the events are still accepted within D1_TIMEOUT_MS, at the request's own time", async () => {
		const k = uniqueName("k");
		// Only the receipt's statements hang: the registry and the rest of D1 answer.
		const hanging = dbWithReceipts((real) => hangable(real(), () => true));
		const before = Date.now();
		const res = await Promise.race([
			postWithEnv({ DB: hanging, D1_TIMEOUT_MS: "200" }, [{ dataset: ds, key: k, op: "upsert", value: { a: 8 } }], uniqueName("idem")),
			sleep(5000).then(() => null),
		]);
		expect(res?.status, "answered while D1 hangs").toBe(202);
		const row = await waitForD1(ds, k);
		expect(JSON.parse(row.value ?? "null")).toEqual({ a: 8 });
		expect(row.event_time).toBeGreaterThanOrEqual(before);
	});

	it("Idempotency-Key: a request refused whole (400) sets no receipt, so its corrected resend applies at its own time, after a write made in between", async () => {
		const k = uniqueName("k");
		const idem = uniqueName("req");
		const headers = { "idempotency-key": idem };
		await expectProblem(await call("POST", "/v1/events", { json: [{ dataset: ds, key: k, op: "upsert", value: { a: "one" } }], headers }), 400);
		await sleep(5);
		await postEvents([{ dataset: ds, key: k, op: "upsert", value: { a: 2, b: "B" } }]);
		await waitForD1(ds, k);
		await sleep(5);
		// The corrected body, under the same key: the refused one was never accepted, so it is no original.
		expect((await call("POST", "/v1/events", { json: [{ dataset: ds, key: k, op: "upsert", value: { a: 1, b: "A" } }], headers })).status).toBe(202);
		await eventually(async () => (await logOf(ds, k)).find((r) => r.event_id.startsWith("k:")), { what: "the corrected event in the log" });
		expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 1, b: "A" });
	});

	it("Idempotency-Key: an event_time is bounded by the server's clock now, not by the time the first request under the key was received", async () => {
		const k = uniqueName("k");
		const idem = uniqueName("req");
		const headers = { "idempotency-key": idem };
		expect((await call("POST", "/v1/events", { json: [{ dataset: ds, key: k, op: "upsert", value: { a: 1 } }], headers })).status).toBe(202);
		const first = await eventually(async () => (await logOf(ds, k)).find((r) => r.event_id.startsWith("k:")), { what: "the first event in the log" });
		// As if the first request came an hour ago: the client retried through an outage, stamping its events now.
		const scope = first.event_id.replace(/-\d{6}$/, "");
		await env.DB.prepare("UPDATE idempotency_receipts SET received_at = received_at - 3600000 WHERE scope = ?1").bind(scope).run();
		const res = await call("POST", "/v1/events", { json: [{ dataset: ds, key: k, op: "upsert", value: { a: 1 }, event_time: Date.now() }], headers });
		expect(res.status, await res.clone().text()).toBe(202);
	});

	it("import under an Idempotency-Key: a refused import sets no receipt, so the corrected import applies at its own time, after a write made in between", async () => {
		const k = uniqueName("k");
		const headers = { "idempotency-key": uniqueName("imp") };
		const receipts = async () => (await env.DB.prepare("SELECT count(*) AS n FROM idempotency_receipts").first<{ n: number }>())?.n;
		const before = await receipts();
		await expectProblem(await call("POST", `/v1/datasets/${ds}/import`, { json: [{ id: k, a: "one" }], headers }), 400);
		expect(await receipts()).toBe(before);
		await sleep(5);
		await postEvents([{ dataset: ds, key: k, op: "upsert", value: { a: 2, b: "B" } }]);
		await waitForD1(ds, k);
		await sleep(5);
		const res = await call("POST", `/v1/datasets/${ds}/import`, { json: [{ id: k, a: 1, b: "A" }], headers });
		expect(await res.json()).toEqual({ imported: 1, unchanged: 0, rejected: [] });
		expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 1, b: "A" });
	});

	it("Idempotency-Key on events that all carry event_time: no receipt is written (there is no time to keep)", async () => {
		const receipts = async () => (await env.DB.prepare("SELECT count(*) AS n FROM idempotency_receipts").first<{ n: number }>())?.n ?? 0;
		const before = await receipts();
		const k = uniqueName("k");
		const res = await call("POST", "/v1/events", {
			json: [{ dataset: ds, key: k, op: "upsert", value: { a: 1 }, event_time: Date.now() - 1000 }],
			headers: { "idempotency-key": uniqueName("idem") },
		});
		expect(res.status).toBe(202);
		await waitForD1(ds, k);
		expect(await receipts()).toBe(before);
		// The same key on an event without event_time does write one.
		expect(
			(await call("POST", "/v1/events", { json: [{ dataset: ds, key: k, op: "patch", value: { a: 2 } }], headers: { "idempotency-key": uniqueName("idem") } }))
				.status,
		).toBe(202);
		expect(await receipts()).toBe(before + 1);
	});

	it("the ids an Idempotency-Key gives are per index: the events of one body are distinct", async () => {
		const k = uniqueName("k");
		const t = Date.now() - 5000;
		await call("POST", "/v1/events", {
			json: [
				{ dataset: ds, key: k, op: "upsert", value: { a: 1 }, event_time: t },
				{ dataset: ds, key: k, op: "patch", value: { b: "p" }, event_time: t + 1 },
			],
			headers: { "idempotency-key": uniqueName("idem") },
		});
		const row = await waitForD1(ds, k, (r) => r.value === JSON.stringify({ a: 1, b: "p" }));
		expect(row.event_time).toBe(t + 1);
		expect(new Set((await logOf(ds, k)).map((r) => r.event_id)).size).toBe(2);
	});

	it("without id, event_time or Idempotency-Key, each POST is a new event with a random id", async () => {
		const k = uniqueName("k");
		const body = [{ dataset: ds, key: k, op: "patch", value: { a: 5 } }];
		await postEvents(body);
		await waitForD1(ds, k);
		await postEvents(body);
		await waitForD1(ds, k, (r) => r.rev === 2);
		const ids = (await logOf(ds, k)).map((r) => r.event_id);
		expect(ids).toHaveLength(2);
		for (const id of ids) expect(id).toMatch(/^r:[0-9a-f-]{36}-\d{6}$/);
		expect(ids[0]).not.toBe(ids[1]);
	});

	it("events of one body without event_time apply in body order: they share the receipt time, and their ids follow the index", async () => {
		const [gone, back, idem] = [uniqueName("k"), uniqueName("k"), uniqueName("k")];
		// Many pairs, so a random tie-break would get some of them wrong.
		const pairs = Array.from({ length: 20 }, (_, i) => [`${gone}_${i}`, `${back}_${i}`] as const);
		await postEvents(
			pairs.flatMap(([g, b]) => [
				{ dataset: ds, key: g, op: "upsert", value: { a: 1 } },
				{ dataset: ds, key: g, op: "delete" },
				{ dataset: ds, key: b, op: "delete" },
				{ dataset: ds, key: b, op: "upsert", value: { a: 2 } },
			]),
		);
		await call("POST", "/v1/events", {
			json: [
				{ dataset: ds, key: idem, op: "upsert", value: { a: 1 } },
				{ dataset: ds, key: idem, op: "patch", value: { a: 3 } },
				{ dataset: ds, key: idem, op: "patch", value: { a: 2 } },
			],
			headers: { "idempotency-key": uniqueName("idem") },
		});
		for (const [g, b] of pairs) {
			expect(await waitForD1(ds, g, (r) => r.base_deleted === 1)).toMatchObject({ value: null });
			expect(JSON.parse((await waitForD1(ds, b, (r) => r.value !== null && r.rev >= 1))?.value ?? "null")).toEqual({ a: 2 });
		}
		expect(JSON.parse((await waitForD1(ds, idem, (r) => r.rev >= 1))?.value ?? "null")).toEqual({ a: 2 });
	});

	it("with an event_time and no id, the id derives from the content: sending it twice applies it once", async () => {
		const k = uniqueName("k");
		const event = { dataset: ds, key: k, op: "upsert", value: { a: 3 }, event_time: Date.now() - 1000 };
		await postEvents([event]);
		await waitForD1(ds, k);
		await postEvents([event]);
		await staysFalse(async () => (await logOf(ds, k)).length > 1, 2500, "a second log row");
		expect((await d1Record(ds, k))?.rev).toBe(1);
		expect((await logOf(ds, k))[0]?.event_id).toMatch(/^h:[0-9a-f]{32}$/);
	});

	it("a malformed Idempotency-Key is a 400 problem, and nothing is queued", async () => {
		const k = uniqueName("k");
		const p = await expectProblem(
			await call("POST", "/v1/events", { json: [{ dataset: ds, key: k, op: "upsert", value: { a: 1 } }], headers: { "idempotency-key": "x".repeat(256) } }),
			400,
		);
		expect(p.errors?.[0]?.pointer).toBe("Idempotency-Key");
		await staysFalse(async () => (await d1Record(ds, k)) !== null, 1500, "the refused event landing");
	});
});

describe("retention: the cron trigger prunes the log past history_days", () => {
	it("deletes entries older than their dataset's history_days, keeps younger ones and other datasets', and never touches records", async () => {
		const short = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600, history_days: 1 } as never);
		const long = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600, history_days: 30 } as never);
		const now = Date.now();
		const day = 86_400_000;
		const old = now - 3 * day;
		// Entries applied three days ago: the log grows in application order, so they sit before
		// everything applied since (the lowest seqs).
		const lowest = (await env.DB.prepare("SELECT coalesce(min(seq), 0) AS s FROM event_log").first<{ s: number }>())?.s ?? 0;
		const insert = (seq: number, dataset: string, key: string, id: string, t: number) =>
			env.DB.prepare(
				"INSERT INTO event_log (seq, dataset, key, event_time, event_id, op, value, applied_at) VALUES (?1, ?2, ?3, ?4, ?5, 'upsert', '{\"a\":1}', ?4)",
			)
				.bind(seq, dataset, key, t, id)
				.run();
		await insert(lowest - 2, short, "k", "old-short", old);
		await insert(lowest - 1, long, "k", "old-long", old);
		await runQueue(EVENTS_QUEUE, [message(eventsBody([{ id: "new-short", dataset: short, key: "k", op: "upsert", value: { a: 2 }, time: now - 1000 }]))]);
		const recordBefore = await d1Record(short, "k");

		await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
			createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
			env,
			createExecutionContext(),
		);
		expect((await logOf(short, "k")).map((r) => r.event_id)).toEqual(["new-short"]);
		expect((await logOf(long, "k")).map((r) => r.event_id)).toEqual(["old-long"]);
		expect(await d1Record(short, "k")).toEqual(recordBefore);
	});

	it("prunes Idempotency-Key receipts older than the longest history_days, and keeps younger ones", async () => {
		// A dataset of its own keeps 45 days, so a receipt past the default 7 days must stay.
		await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600, history_days: 45 } as never);
		const longest = (await env.DB.prepare("SELECT max(json_extract(spec, '$.history_days')) AS d FROM datasets").first<{ d: number }>())?.d as number;
		expect(longest).toBeGreaterThanOrEqual(45);
		const day = 86_400_000;
		const now = Date.now();
		const [gone, kept] = [uniqueName("receipt-old"), uniqueName("receipt-young")];
		const put = (scope: string, at: number) => env.DB.prepare("INSERT INTO idempotency_receipts (scope, received_at) VALUES (?1, ?2)").bind(scope, at).run();
		await put(gone, now - (longest + 1) * day);
		await put(kept, now - (longest - 1) * day);
		await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
			createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
			env,
			createExecutionContext(),
		);
		const left = (await env.DB.prepare("SELECT scope FROM idempotency_receipts WHERE scope IN (?1, ?2)").bind(gone, kept).all<{ scope: string }>()).results;
		expect(left.map((r) => r.scope)).toEqual([kept]);
	});

	it("history_days must be a whole number of days from 1 to 3650", async () => {
		for (const bad of [0, 1.5, 4000, "7"]) {
			const p = await expectProblem(await call("PUT", `/v1/datasets/${uniqueName()}`, { json: { key: "id", fields: { a: "int" }, history_days: bad } }), 400);
			expect(p.errors?.[0]?.pointer).toBe("/history_days");
		}
	});
});
