/**
 * Durability review, round 2: acknowledged events are neither lost nor left unapplied when D1
 * refuses parts of a batch. D1 failures are real: triggers that refuse some keys' rows.
 */
import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import { HotpathError } from "../../src/errors";
import worker from "../../src/index";
import { REBUILD_PAGE_RETRY_MS, startDatasetRebuild } from "../../src/ingest/rebuild";
import { servicesFor } from "../../src/services";
import { getRebuild, startRebuild } from "../../src/storage/rebuilds";
import {
	call,
	createDataset,
	DLQ,
	d1Record,
	deadLetterByMessageId,
	EVENTS_QUEUE,
	env,
	eventsBody,
	eventually,
	expectJson,
	message,
	type QueueEvent,
	runQueue,
	uniqueName,
} from "./helpers";

let ds = "";
beforeAll(async () => {
	ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
});

const undo: string[] = [];
afterEach(async () => {
	while (undo.length) await env.DB.prepare(undo.pop() as string).run();
});

const ev = (key: string, a: number, time = Date.now() - 1000): QueueEvent => ({ id: `u@${time}@${key}`, dataset: ds, key, op: "upsert", time, value: { a } });

describe("several keys D1 refuses in one batch", () => {
	it("two refused keys side by side each fail alone: the batch is acked, the others apply, both are dead-lettered", async () => {
		const bad = [`poison_${uniqueName("p")}`, `poison_${uniqueName("p")}`];
		const good = Array.from({ length: 6 }, () => uniqueName("ok"));
		const trigger = `refuse_${uniqueName("t")}`;
		await env.DB.prepare(
			`CREATE TRIGGER ${trigger} BEFORE INSERT ON records WHEN NEW.key IN ('${bad[0]}', '${bad[1]}') BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
		).run();
		undo.push(`DROP TRIGGER ${trigger}`);
		// The refused keys first: the halving meets them together in one half.
		const msg = message(eventsBody([...bad, ...good].map((k) => ev(k, 1))));
		const result = await runQueue(EVENTS_QUEUE, [msg]);
		expect(result.retryMessages).toEqual([]);
		expect(result.explicitAcks).toEqual([msg.id]);
		for (const k of good) expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 1 });
		for (const k of bad) {
			expect(await d1Record(ds, k)).toBeNull();
			const dead = await env.DB.prepare("SELECT error FROM dead_letters WHERE message_id LIKE 'refused:%' AND body LIKE ?1")
				.bind(`%${k}%`)
				.first<{ error: string }>();
			expect(dead?.error).toMatch(/D1 refused the write of this key: .*refused by the test/);
		}
	});
});

describe("D1 failing as a whole while a batch is written", () => {
	it("is told from a refused key at once: the batch is retried after a probe, not written key by key first", async () => {
		const { applyEvents } = await import("../../src/ingest/apply");
		const down = () => Promise.reject(new Error("D1_ERROR: Network connection lost."));
		let batches = 0;
		// The real D1 for the read of the keys' state (the first batch); then D1 answers nothing.
		const db = new Proxy(env.DB, {
			get(target, prop) {
				if (prop === "batch") return (stmts: D1PreparedStatement[]) => (++batches === 1 ? target.batch(stmts) : down());
				if (prop === "prepare")
					return (sql: string) => {
						const stmt = target.prepare(sql);
						if (batches === 0) return stmt;
						return new Proxy(stmt, {
							get(s, q) {
								if (q === "first" || q === "all" || q === "run" || q === "raw") return down;
								const v = Reflect.get(s, q);
								return typeof v === "function" ? v.bind(s) : v;
							},
						});
					};
				const v = Reflect.get(target, prop);
				return typeof v === "function" ? v.bind(target) : v;
			},
		}) as D1Database;
		const keys = Array.from({ length: 64 }, () => uniqueName("down"));
		await expect(
			applyEvents(
				db,
				keys.map((k) => ev(k, 1)),
			),
		).rejects.toThrow(/Network connection lost/);
		// The read, the write that failed, and nothing more: 64 keys are not tried one by one (about 127 writes).
		expect(batches).toBe(2);
		for (const k of keys.slice(0, 3)) expect(await d1Record(ds, k)).toBeNull();
	});
});

describe("rebuild pages an invocation puts off", () => {
	it("are sent again as new messages, not retried: waiting behind other pages never uses up a page's retries, and every rebuild finishes", async () => {
		const names = await Promise.all([0, 1, 2].map(() => createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 })));
		const pages = names.map((dataset) => ({ dataset, mode: "refill" as const, job: crypto.randomUUID(), after: null }));
		for (const p of pages) await startRebuild(env.DB, { dataset: p.dataset, job: p.job, mode: p.mode, totalKeys: 0, startedAt: Date.now() });
		// The third page has been put off before, up to its last delivery (wrangler.toml: max_retries = 5):
		// retried once more, it would go to the dead-letter queue, and its rebuild would stay "running".
		const msgs = pages.map((p, i) => message(JSON.stringify({ v: 1, rebuild: p }), i === 2 ? 6 : 1));
		const result = await runQueue(EVENTS_QUEUE, msgs);
		expect(result.retryMessages).toEqual([]);
		expect([...result.explicitAcks].sort()).toEqual(msgs.map((m) => m.id).sort());
		for (const ds of names) {
			await eventually(async () => ((await getRebuild(env.DB, ds))?.status === "done" ? true : undefined), { what: `rebuild of ${ds}`, timeoutMs: 15_000 });
		}
	});
});

describe("the cron moving dead letters from KV to D1", () => {
	it("moves every letter D1 takes, though D1 refuses one of them", async () => {
		const msgs = [0, 1, 2].map((i) => message(eventsBody([ev(uniqueName("k"), i)]), 6));
		await env.DB.prepare("ALTER TABLE dead_letters RENAME TO dead_letters_away").run();
		try {
			const kept = await runQueue(DLQ, msgs);
			expect(kept.retryMessages).toEqual([]);
		} finally {
			await env.DB.prepare("ALTER TABLE dead_letters_away RENAME TO dead_letters").run();
		}
		for (const m of msgs) expect(await env.RECORDS_KV.get(`dlq:${m.id}`)).not.toBeNull();
		// D1 is back but refuses one letter's row (as it would one past its row size).
		const refused = msgs[1]?.id as string;
		const trigger = `refuse_${uniqueName("t")}`;
		await env.DB.prepare(
			`CREATE TRIGGER ${trigger} BEFORE INSERT ON dead_letters WHEN NEW.message_id = '${refused}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
		).run();
		undo.push(`DROP TRIGGER ${trigger}`);
		await runCron();
		for (const m of msgs) {
			if (m.id === refused) {
				expect(await env.RECORDS_KV.get(`dlq:${m.id}`)).not.toBeNull();
				expect(await deadLetterByMessageId(m.id)).toBeNull();
			} else {
				expect(await deadLetterByMessageId(m.id)).toMatchObject({ queue: DLQ, attempts: 6 });
				expect(await env.RECORDS_KV.get(`dlq:${m.id}`)).toBeNull();
			}
		}
	});
});

async function runCron(): Promise<void> {
	const ctx = createExecutionContext();
	await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
		createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
		env,
		ctx,
	);
}

describe("a rebuild the queue refuses to start", () => {
	it("is a 503 unavailable, and its progress says failed with the reason rather than running for good", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
		const base = servicesFor(env);
		const refusing = {
			send: async () => Promise.reject(new Error("queue over its limit")),
			sendBatch: async () => Promise.reject(new Error("queue over its limit")),
		};
		const services = { ...base, env: { ...base.env, EVENTS_QUEUE: refusing as unknown as Queue<unknown> } };
		const err = await startDatasetRebuild(services, ds, "refill").catch((e: unknown) => e);
		expect(err).toBeInstanceOf(HotpathError);
		expect((err as HotpathError).code).toBe("unavailable");
		expect((err as Error).message).toMatch(/queue over its limit/);
		const row = await getRebuild(env.DB, ds);
		expect(row?.status).toBe("failed");
		expect(row?.error).toMatch(/queue over its limit/);
	});
});

describe("a rebuild page that keeps failing", () => {
	it("is sent again while D1 refuses, with the run still running: not away with the run left running for good", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
		const page = { dataset: ds, mode: "refill" as const, job: crypto.randomUUID(), after: null };
		await startRebuild(env.DB, { dataset: ds, job: page.job, mode: page.mode, totalKeys: 0, startedAt: Date.now() });
		const msg = message(JSON.stringify({ v: 1, rebuild: page }), 5);
		await env.DB.prepare("ALTER TABLE rebuilds RENAME TO rebuilds_away").run();
		let result: Awaited<ReturnType<typeof runQueue>>;
		try {
			result = await runQueue(EVENTS_QUEUE, [msg]);
		} finally {
			await env.DB.prepare("ALTER TABLE rebuilds_away RENAME TO rebuilds").run();
		}
		// Acked as it went back on the queue as a new message with its back-off (2 s): it finishes the run once D1 answers.
		expect(result.explicitAcks).toEqual([msg.id]);
		await eventually(async () => ((await getRebuild(env.DB, ds))?.status === "done" ? true : undefined), { what: "the page sent again", timeoutMs: 15_000 });
	});

	it("is not acked when, past its retry bound, its run cannot be marked failed either: it goes back (to the dead-letter queue at last)", async () => {
		const ds = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
		const page = {
			dataset: ds,
			mode: "refill" as const,
			job: crypto.randomUUID(),
			after: null,
			failing_since: Date.now() - REBUILD_PAGE_RETRY_MS - 1000,
			failures: 30,
		};
		await startRebuild(env.DB, { dataset: ds, job: page.job, mode: page.mode, totalKeys: 0, startedAt: Date.now() });
		const msg = message(JSON.stringify({ v: 1, rebuild: page }), 5);
		await env.DB.prepare("ALTER TABLE rebuilds RENAME TO rebuilds_away").run();
		let result: Awaited<ReturnType<typeof runQueue>>;
		try {
			result = await runQueue(EVENTS_QUEUE, [msg]);
		} finally {
			await env.DB.prepare("ALTER TABLE rebuilds_away RENAME TO rebuilds").run();
		}
		expect(result.explicitAcks).toEqual([]);
		expect(result.retryMessages.map((r) => r.msgId)).toEqual([msg.id]);
		// Once the run can be marked failed, the next delivery (still failing) does so and is acked.
		await env.DB.prepare("ALTER TABLE records RENAME TO records_away").run();
		try {
			result = await runQueue(EVENTS_QUEUE, [{ ...msg, attempts: 6 }]);
		} finally {
			await env.DB.prepare("ALTER TABLE records_away RENAME TO records").run();
		}
		expect(result.explicitAcks).toEqual([msg.id]);
		expect((await getRebuild(env.DB, ds))?.status).toBe("failed");
	});
});

describe("a search index build that keeps failing", () => {
	it("is not acked while its build cannot be marked failed either: it goes back, not away with the index left building", async () => {
		const sdb = (env as unknown as { SEARCH_DB: D1Database }).SEARCH_DB;
		const msg = message(JSON.stringify({ v: 1, search: { job: { dataset: uniqueName("ds"), job: crypto.randomUUID() } } }), 5);
		await sdb.prepare("ALTER TABLE search_indexes RENAME TO search_indexes_away").run();
		let result: Awaited<ReturnType<typeof runQueue>>;
		try {
			result = await runQueue(EVENTS_QUEUE, [msg]);
		} finally {
			await sdb.prepare("ALTER TABLE search_indexes_away RENAME TO search_indexes").run();
		}
		expect(result.explicitAcks).toEqual([]);
		expect(result.retryMessages.map((r) => r.msgId)).toEqual([msg.id]);
	});
});

describe("replaying letters waiting in KV while D1 refuses", () => {
	it("marks them replayed where they wait, so a second bulk replay does not send them again and a replayed-only purge reaches them", async () => {
		const dsr = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
		const k = uniqueName("k");
		const msg = message(eventsBody([{ id: `u@${k}`, dataset: dsr, key: k, op: "upsert", time: Date.now() - 1000, value: { a: 9 } }]), 6);
		await env.DB.prepare("ALTER TABLE dead_letters RENAME TO dead_letters_away").run();
		try {
			await runQueue(DLQ, [msg]);
			const first = await expectJson<{ replayed: number; incomplete?: string }>(await call("POST", `/v1/dead-letters/replay?dataset=${dsr}`), 200);
			expect(first.replayed).toBe(1);
			const listed = await expectJson<{ dead_letters: { id: string; replayed_at: string | null }[] }>(
				await call("GET", `/v1/dead-letters?dataset=${dsr}`),
				200,
			);
			expect(listed.dead_letters).toEqual([expect.objectContaining({ id: `kv:${msg.id}`, replayed_at: expect.any(String) })]);
			// "Call again for more" ends: the letter is not sent again and again.
			expect((await expectJson<{ replayed: number }>(await call("POST", `/v1/dead-letters/replay?dataset=${dsr}`), 200)).replayed).toBe(0);
			expect((await expectJson<{ purged: number }>(await call("DELETE", `/v1/dead-letters?dataset=${dsr}&replayed=true`), 200)).purged).toBe(1);
			expect(await env.RECORDS_KV.get(`dlq:${msg.id}`)).toBeNull();
		} finally {
			await env.DB.prepare("ALTER TABLE dead_letters_away RENAME TO dead_letters").run();
		}
		await eventually(async () => ((await d1Record(dsr, k)) ? true : undefined), { what: "the replayed event applied" });
	});
});

describe("a letter replayed while it waited in KV", () => {
	it("is moved to D1 by the cron as replayed, not as waiting again", async () => {
		const dsr = await createDataset({ key: "id", fields: { a: "int" }, ttl_seconds: 3600 });
		const k = uniqueName("k");
		const msg = message(eventsBody([{ id: `u@${k}`, dataset: dsr, key: k, op: "upsert", time: Date.now() - 1000, value: { a: 9 } }]), 6);
		await env.DB.prepare("ALTER TABLE dead_letters RENAME TO dead_letters_away").run();
		try {
			await runQueue(DLQ, [msg]);
			expect((await expectJson<{ replayed: number }>(await call("POST", `/v1/dead-letters/replay?dataset=${dsr}`), 200)).replayed).toBe(1);
		} finally {
			await env.DB.prepare("ALTER TABLE dead_letters_away RENAME TO dead_letters").run();
		}
		await runCron();
		expect(await env.RECORDS_KV.get(`dlq:${msg.id}`)).toBeNull();
		expect((await deadLetterByMessageId(msg.id))?.replayed_at).toEqual(expect.any(Number));
	});
});
