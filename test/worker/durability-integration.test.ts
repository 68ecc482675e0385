/**
 * Nothing acknowledged is ever lost: dead letters survive D1 refusing them, one key that cannot be
 * written fails alone, D1 down for a whole batch retries it, Redis pipelines stay under Upstash's
 * request size, and queues are told apart by their configured names. D1 failures are real: a table
 * renamed away, or a trigger that refuses one key's rows.
 */
import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, type MessageBatchMessage } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import { MAX_RECORD_BYTES } from "../../src/ingest/apply";
import { deadLetterRetryDelay, getDeadLetter, replayDeadLetters } from "../../src/ingest/dead-letters";
import { CircuitBreaker } from "../../src/serving/breaker";
import { RedisTier } from "../../src/serving/redis-tier";
import { decodeRecord, recordCacheKey } from "../../src/storage/cached-record";
import { chunkWrites, RedisStore } from "../../src/storage/redis";
import {
	call,
	createDataset,
	DLQ,
	d1Record,
	deadLetterByMessageId,
	EVENTS_QUEUE,
	env,
	eventsBody,
	expectJson,
	message,
	type QueueEvent,
	runQueue,
	uniqueName,
} from "./helpers";

let ds = "";
beforeAll(async () => {
	ds = await createDataset({
		key: "id",
		fields: { a: "int", ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`f${i}`, "json"])) },
		ttl_seconds: 3600,
	});
});

const ev = (key: string, op: QueueEvent["op"], time: number, value?: Record<string, unknown>, id = `${op}@${time}@${key}`): QueueEvent => ({
	id,
	dataset: ds,
	key,
	op,
	time,
	...(value ? { value } : {}),
});

/** Undo steps for D1 faults a test injected, run even when the test fails. */
const undo: string[] = [];
afterEach(async () => {
	while (undo.length) await env.DB.prepare(undo.pop() as string).run();
});
/** Makes D1 refuse every statement on `table` (it is renamed away) until the test ends. */
async function takeAway(table: string): Promise<void> {
	await env.DB.prepare(`ALTER TABLE ${table} RENAME TO ${table}_away`).run();
	undo.push(`ALTER TABLE ${table}_away RENAME TO ${table}`);
}

type QueueHandler = (batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) => Promise<void>;
async function runQueueWith(e: Env, queue: string, messages: MessageBatchMessage[]) {
	const batch = createMessageBatch(queue, messages);
	const ctx = createExecutionContext();
	await (worker.queue as unknown as QueueHandler)(batch, e, ctx);
	return getQueueResult(batch, ctx);
}

async function runCron(): Promise<void> {
	const ctx = createExecutionContext();
	await (worker.scheduled as unknown as (c: ScheduledController, e: Env, x: ExecutionContext) => Promise<void>)(
		createScheduledController({ scheduledTime: new Date(), cron: "*/5 * * * *" }),
		env,
		ctx,
	);
}

interface Listed {
	id: number | string;
	message_id: string;
	waiting_in_kv: boolean;
	datasets: string[] | null;
	body: unknown;
	replayed_at: string | null;
}
const listDeadLetters = async () => (await expectJson<{ dead_letters: Listed[] }>(await call("GET", "/v1/dead-letters?limit=500"), 200)).dead_letters;

describe("dead letters when D1 refuses them", () => {
	it("the dead-letter consumer keeps them in KV, acks, lists them, and the cron moves them to D1 once it takes writes again", async () => {
		const k = uniqueName("k");
		const body = eventsBody([ev(k, "upsert", Date.now(), { a: 1 })]);
		const msg = message(body, 6);
		await takeAway("dead_letters");
		const result = await runQueue(DLQ, [msg]);
		// Stored somewhere durable: acked, not retried, not dropped.
		expect(result.retryMessages).toEqual([]);
		expect(result.ackAll || result.explicitAcks.includes(msg.id)).toBe(true);
		expect(JSON.parse((await env.RECORDS_KV.get(`dlq:${msg.id}`)) ?? "null")).toMatchObject({ messageId: msg.id, datasets: [ds], attempts: 6 });

		// D1 back: the listing shows it as waiting in KV.
		undo.pop();
		await env.DB.prepare("ALTER TABLE dead_letters_away RENAME TO dead_letters").run();
		const waiting = (await listDeadLetters()).find((d) => d.message_id === msg.id);
		expect(waiting).toMatchObject({ id: `kv:${msg.id}`, waiting_in_kv: true, datasets: [ds], body });

		await runCron();
		expect(await env.RECORDS_KV.get(`dlq:${msg.id}`)).toBeNull();
		expect(await deadLetterByMessageId(msg.id)).toMatchObject({ queue: DLQ, attempts: 6 });
		const moved = (await listDeadLetters()).filter((d) => d.message_id === msg.id);
		expect(moved).toHaveLength(1);
		expect(moved[0]).toMatchObject({ id: expect.any(Number), waiting_in_kv: false });
	});

	it("while D1 still refuses them, the listing shows the ones waiting in KV", async () => {
		const k = uniqueName("k");
		const msg = message(eventsBody([ev(k, "upsert", Date.now(), { a: 1 })]), 6);
		await takeAway("dead_letters");
		await runQueue(DLQ, [msg]);
		const listing = await expectJson<{ dead_letters: Listed[]; incomplete?: string }>(await call("GET", `/v1/dead-letters?dataset=${ds}&limit=500`), 200);
		expect(listing.dead_letters.find((d) => d.message_id === msg.id)).toMatchObject({ id: `kv:${msg.id}`, waiting_in_kv: true, datasets: [ds] });
		// It says the D1 part is missing, rather than passing off what KV holds as the whole list.
		expect(listing.incomplete).toMatch(/D1 refused/);
		// And it can be replayed from there.
		expect((await call("POST", `/v1/dead-letters/kv:${msg.id}/replay`)).status).toBe(200);
	});

	it("one waiting in KV can be replayed: its events apply, and it moves to D1 marked replayed", async () => {
		const k = uniqueName("k");
		const msg = message(eventsBody([ev(k, "upsert", Date.now() - 1000, { a: 7 })]), 6);
		await takeAway("dead_letters");
		await runQueue(DLQ, [msg]);
		undo.pop();
		await env.DB.prepare("ALTER TABLE dead_letters_away RENAME TO dead_letters").run();
		const res = await call("POST", `/v1/dead-letters/kv:${msg.id}/replay`);
		expect(res.status).toBe(200);
		await expect.poll(async () => (await d1Record(ds, k))?.value, { timeout: 10_000 }).toBe(JSON.stringify({ a: 7 }));
		expect(await env.RECORDS_KV.get(`dlq:${msg.id}`)).toBeNull();
		expect((await deadLetterByMessageId(msg.id))?.replayed_at).toEqual(expect.any(Number));
	});

	it("a poison message on the events queue is kept in KV when D1 refuses it, and acked", async () => {
		const msg = message({ not: "an events message" });
		await takeAway("dead_letters");
		const result = await runQueue(EVENTS_QUEUE, [msg]);
		expect(result.explicitAcks).toEqual([msg.id]);
		expect(JSON.parse((await env.RECORDS_KV.get(`dlq:${msg.id}`)) ?? "null")).toMatchObject({ messageId: msg.id, datasets: null });
	});

	it("when neither D1 nor KV takes them, a message is retried with delays growing to the platform's 12 h maximum", () => {
		expect([1, 2, 3, 4].map(deadLetterRetryDelay)).toEqual([30, 60, 120, 240]);
		expect(deadLetterRetryDelay(11)).toBe(30_720);
		expect(deadLetterRetryDelay(12)).toBe(43_200);
		expect(deadLetterRetryDelay(100)).toBe(43_200);
	});
});

describe("replaying a dead letter that fails again", () => {
	it("leaves it waiting, not marked replayed, when the consumer takes the replay at once and refuses it again", async () => {
		const poison = `poison_${uniqueName("p")}`;
		await env.DB.prepare(
			`CREATE TRIGGER refuse_${poison} BEFORE INSERT ON records WHEN NEW.key = '${poison}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`,
		).run();
		undo.push(`DROP TRIGGER refuse_${poison}`);
		const first = await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(poison, "upsert", Date.now() - 1000, { a: 1 })]))]);
		expect(first.retryMessages).toEqual([]);
		const row = await env.DB.prepare("SELECT id, message_id FROM dead_letters WHERE message_id LIKE 'refused:%' AND body LIKE ?1")
			.bind(`%${poison}%`)
			.first<{ id: number; message_id: string }>();
		const letter = await getDeadLetter(env.DB, env.RECORDS_KV, row?.id as number);
		if (!letter) throw new Error("no dead letter");
		// The events queue has max_batch_timeout = 0: the consumer may run the replayed message before
		// replay returns. This queue runs it inside sendBatch, the earliest it can happen.
		const queue = {
			sendBatch: async (msgs: { body: unknown }[]) => {
				await runQueue(
					EVENTS_QUEUE,
					msgs.map((m) => message(m.body)),
				);
			},
		} as unknown as Queue<unknown>;
		expect(await replayDeadLetters(env.DB, env.RECORDS_KV, queue, [letter])).toBe(1);
		// Refused again, so waiting again: a purge of replayed letters must not take it.
		expect((await deadLetterByMessageId(row?.message_id as string))?.replayed_at).toBeNull();
		expect(await d1Record(ds, poison)).toBeNull();
		await expectJson(await call("DELETE", `/v1/dead-letters?dataset=${ds}&replayed=true`), 200);
		expect(await deadLetterByMessageId(row?.message_id as string)).not.toBeNull();
		await env.DB.prepare(undo.pop() as string).run();
		// Once the key can be written, the replay applies it and the letter is marked replayed.
		await replayDeadLetters(env.DB, env.RECORDS_KV, queue, [letter]);
		expect(JSON.parse((await d1Record(ds, poison))?.value ?? "null")).toEqual({ a: 1 });
		expect((await deadLetterByMessageId(row?.message_id as string))?.replayed_at).toEqual(expect.any(Number));
	});
});

describe("one bad key fails alone", () => {
	it("patches that would grow a record past the size limit are refused and dead-lettered; the rest of the batch applies", async () => {
		const big = uniqueName("big");
		const healthy = [uniqueName("ok"), uniqueName("ok")];
		const t = Date.now() - 60_000;
		// Twelve patches of about 95 KB each, on twelve different fields: more than 1 MB together.
		const chunk = "x".repeat(95_000);
		const patches = Array.from({ length: 12 }, (_, i) => ev(big, "patch", t + i, { [`f${i}`]: chunk }));
		const msgs = [
			message(eventsBody(patches.slice(0, 6))),
			message(eventsBody(patches.slice(6))),
			message(eventsBody(healthy.map((k) => ev(k, "upsert", t, { a: 1 })))),
		];
		const result = await runQueue(EVENTS_QUEUE, msgs);
		expect([...result.explicitAcks].sort()).toEqual(msgs.map((m) => m.id).sort());
		expect(result.retryMessages).toEqual([]);
		for (const k of healthy) expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 1 });
		// The oldest patches fit; the ones that would take it past the limit did not apply.
		const row = await d1Record(ds, big);
		const value = JSON.parse(row?.value ?? "{}") as Record<string, string>;
		const kept = Object.keys(value).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
		expect(kept.length).toBeGreaterThanOrEqual(9);
		expect(kept.length).toBeLessThan(12);
		expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => `f${i}`));
		expect(new TextEncoder().encode(row?.value ?? "").length).toBeLessThanOrEqual(MAX_RECORD_BYTES);
		const { results } = await env.DB.prepare("SELECT body, error, datasets FROM dead_letters WHERE message_id LIKE 'refused:%' AND body LIKE ?1")
			.bind(`%${big}%`)
			.all<{ body: string; error: string; datasets: string }>();
		expect(results).toHaveLength(1);
		expect(results[0]?.error).toMatch(/past the limit of 1000000 bytes per record/);
		expect(JSON.parse(results[0]?.datasets ?? "null")).toEqual([ds]);
		const refusedIds = (JSON.parse(results[0]?.body ?? "{}") as { events: QueueEvent[] }).events.map((e) => e.id).sort();
		expect(refusedIds).toEqual(
			patches
				.slice(kept.length)
				.map((e) => e.id)
				.sort(),
		);
	});

	it("a key whose row D1 refuses is found by halving the batch and dead-lettered with D1's reason; the other keys apply", async () => {
		const poison = `poison_${uniqueName("p")}`;
		const others = Array.from({ length: 9 }, () => uniqueName("ok"));
		await env.DB.prepare(
			`CREATE TRIGGER refuse_${poison} BEFORE INSERT ON records WHEN NEW.key = '${poison}' BEGIN SELECT RAISE(ABORT, 'this row is refused by the test'); END`,
		).run();
		undo.push(`DROP TRIGGER refuse_${poison}`);
		const t = Date.now() - 1000;
		const keys = [...others.slice(0, 4), poison, ...others.slice(4)];
		const msg = message(eventsBody(keys.map((k) => ev(k, "upsert", t, { a: 2 }))));
		const result = await runQueue(EVENTS_QUEUE, [msg]);
		expect(result.explicitAcks).toEqual([msg.id]);
		for (const k of others) expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 2 });
		expect(await d1Record(ds, poison)).toBeNull();
		const dead = await env.DB.prepare("SELECT error FROM dead_letters WHERE message_id LIKE 'refused:%' AND body LIKE ?1")
			.bind(`%${poison}%`)
			.first<{ error: string }>();
		expect(dead?.error).toMatch(/D1 refused the write of this key: .*this row is refused by the test/);
	});

	it("D1 refusing every write is not one bad key: the whole batch is retried and nothing is dead-lettered", async () => {
		const keys = [uniqueName("k"), uniqueName("k")];
		const msg = message(eventsBody(keys.map((k) => ev(k, "upsert", Date.now(), { a: 3 }))));
		await takeAway("event_log");
		const result = await runQueue(EVENTS_QUEUE, [msg]);
		expect(result.explicitAcks).toEqual([]);
		expect(result.retryMessages.map((r) => r.msgId)).toEqual([msg.id]);
		undo.pop();
		await env.DB.prepare("ALTER TABLE event_log_away RENAME TO event_log").run();
		for (const k of keys) expect(await d1Record(ds, k)).toBeNull();
		const dead = await env.DB.prepare("SELECT count(*) AS n FROM dead_letters WHERE body LIKE ?1").bind(`%${keys[0]}%`).first<{ n: number }>();
		expect(dead?.n).toBe(0);
		// Delivered again once D1 is back, it applies.
		expect((await runQueue(EVENTS_QUEUE, [{ ...msg, attempts: 2 }])).explicitAcks).toEqual([msg.id]);
		for (const k of keys) expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 3 });
	});
});

describe("queues are told apart by their configured names", () => {
	it("a dead-letter queue named otherwise is consumed as dead letters, never re-applied as events", async () => {
		const k = uniqueName("k");
		const named = { ...env, DEAD_LETTER_QUEUE_NAME: "prod-dead-letters" } as unknown as Env;
		const msg = message(eventsBody([ev(k, "upsert", Date.now(), { a: 4 })]), 6);
		const result = await runQueueWith(named, "prod-dead-letters", [msg]);
		expect(result.retryMessages).toEqual([]);
		expect(await deadLetterByMessageId(msg.id)).toMatchObject({ queue: "prod-dead-letters" });
		expect(await d1Record(ds, k)).toBeNull();
	});

	it("a queue this worker was not told about is neither applied nor dead-lettered: its messages go back", async () => {
		const k = uniqueName("k");
		const msg = message(eventsBody([ev(k, "upsert", Date.now(), { a: 5 })]));
		const result = await runQueueWith(env, "something-else-dlq", [msg]);
		expect(result.retryBatch.retry || result.retryMessages.length === 1).toBe(true);
		expect(await d1Record(ds, k)).toBeNull();
		expect(await deadLetterByMessageId(msg.id)).toBeNull();
	});
});

describe("Redis pipelines are split by bytes as well as by count", () => {
	const redisEnv = env as unknown as { UPSTASH_REDIS_REST_URL: string; UPSTASH_REDIS_REST_TOKEN: string };

	it("chunkWrites keeps each request under the command and byte bounds, a lone oversized write alone", () => {
		const w = (n: number) => ({ key: "k", payload: "x".repeat(n) });
		expect(chunkWrites([w(10), w(10), w(10)], 2, 1000).map((c) => c.length)).toEqual([2, 1]);
		expect(chunkWrites([w(600), w(600), w(100)], 500, 1000).map((c) => c.length)).toEqual([1, 2]);
		expect(chunkWrites([w(5000), w(1)], 500, 1000).map((c) => c.length)).toEqual([1, 1]);
	});

	it("500 records with 4096-dim vectors (about 20 MB, past Upstash's 10 MB per request) are all written", async () => {
		const tier = new RedisTier(
			new RedisStore(redisEnv.UPSTASH_REDIS_REST_URL, redisEnv.UPSTASH_REDIS_REST_TOKEN),
			new CircuitBreaker(3, 500),
			1000,
			2,
			10_000,
			3600,
		);
		const vds = uniqueName("vec");
		const vector = Array.from({ length: 4096 }, (_, i) => Math.sin(i) * 0.123456789);
		const entries = Array.from({ length: 500 }, (_, i) => ({
			ck: recordCacheKey(vds, `k${i}`),
			rec: { v: { emb: vector }, t: 1, i: `e${i}`, r: 1 },
			ttlSeconds: 60,
		}));
		expect(await tier.write(entries)).toBe(500);
		const back = await tier.getMany([{ dataset: vds, key: "k499", ck: recordCacheKey(vds, "k499") }]);
		expect(back.get(recordCacheKey(vds, "k499"))?.v).toEqual({ emb: vector });
		expect(decodeRecord(JSON.stringify({ r: 1, t: 1, i: "e", v: { emb: vector } }))?.v).toEqual({ emb: vector });
	});
});
