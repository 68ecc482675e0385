/**
 * The queue consumers. The events consumer folds a batch into D1, acks only after D1 has
 * committed, then refreshes the caches. The dead-letter consumer keeps every message that kept
 * failing in D1, where it can be inspected and replayed.
 */
import { drizzle } from "drizzle-orm/d1";
import type { Services } from "../services";
import { writeThroughKv } from "../serving/kv-tier";
import { recordCacheKey } from "../storage/cached-record";
import { readRecords } from "../storage/records";
import { deadLetters } from "../storage/schema";
import { type AppliedRecord, applyEvents } from "./apply";
import type { ChangeEvent } from "./merge";
import { enqueueRefresh, readQueueMessage } from "./producer";

/** Delay before a failed message is retried: 2, 4, 8... seconds, at most a minute. */
const retryDelay = (attempts: number) => Math.min(60, 2 ** attempts);

export interface ConsumeOptions {
	/** KV operations the write-through may spend in this invocation (see KV_OPS_PER_INVOCATION). */
	kvOps?: number;
}

export async function consumeEvents(batch: MessageBatch<unknown>, services: Services, opts: ConsumeOptions = {}): Promise<void> {
	const { env } = services;
	const events: ChangeEvent[] = [];
	const refresh: { dataset: string; key: string }[] = [];
	const good: Message<unknown>[] = [];
	const poison: Message<unknown>[] = [];
	for (const msg of batch.messages) {
		const body = readQueueMessage(msg.body);
		if (!body) poison.push(msg);
		else {
			if (body.kind === "events") for (const e of body.events) events.push(e);
			else for (const r of body.refs) refresh.push(r);
			good.push(msg);
		}
	}
	if (poison.length) {
		// A message no retry can fix goes straight to the dead-letter table rather than burning retries.
		try {
			await storeDeadLetters(env.DB, batch.queue, poison, "message body is not a Hotpath events message");
			for (const m of poison) m.ack();
		} catch {
			for (const m of poison) m.retry({ delaySeconds: retryDelay(m.attempts) });
		}
	}
	if (!good.length) return;
	const retryAll = () => {
		for (const m of good) m.retry({ delaySeconds: retryDelay(m.attempts) });
	};

	let applied: AppliedRecord[];
	try {
		applied = events.length ? await applyEvents(env.DB, events) : [];
	} catch (e) {
		console.error(JSON.stringify({ msg: "applying events to D1 failed; retrying", error: String(e), messages: good.length }));
		return retryAll();
	}

	// D1 has committed: the events are durable. Now bring the caches up to D1's state.
	const now = Date.now();
	const l0 = services.reader.l0;
	const entries = applied.map((a) => ({ dataset: a.dataset, key: a.key, ck: recordCacheKey(a.dataset, a.key), rec: a.rec }));
	for (const e of entries) l0.set(e.ck, e.rec, now);
	// A key this batch created in D1 (now at revision 1) cannot have a KV copy yet: skip asking KV.
	const kvEntries = entries.filter((_, i) => !(applied[i]?.changed && applied[i]?.rec.r === 1));
	try {
		if (refresh.length) {
			// Keys an earlier invocation could not refresh in KV: D1's current state, whatever it is now.
			const found = await readRecords(
				env.DB,
				refresh.map((r) => ({ ...r, ck: recordCacheKey(r.dataset, r.key) })),
			);
			const queued = new Set(kvEntries.map((e) => e.ck));
			for (const r of refresh) {
				const ck = recordCacheKey(r.dataset, r.key);
				const rec = found.get(ck);
				if (rec && !queued.has(ck)) {
					queued.add(ck);
					kvEntries.push({ ...r, ck, rec });
				}
			}
		}
		const { deferred, failed } = await writeThroughKv(env.RECORDS_KV, kvEntries, opts.kvOps);
		// Past the invocation's KV operations, or refused by KV: the rest goes round again as a refresh
		// message, since write-through copies do not expire and must not stay behind D1. After a
		// refusal it waits a second (KV takes one write per key per second).
		if (deferred.length) {
			if (failed) console.warn(JSON.stringify({ msg: "KV refused some write-through puts; deferring them", failed }));
			await enqueueRefresh(env.EVENTS_QUEUE, deferred, failed ? 1 : 0);
		}
	} catch (e) {
		// A missed refresh must be redone: the retry re-applies idempotently (D1 is unchanged) and writes KV again.
		console.error(JSON.stringify({ msg: "KV refresh failed; retrying", error: String(e) }));
		return retryAll();
	}
	// An open breaker means Redis is known to be down: skip it rather than hold up the events.
	// Otherwise a failed write is retried like a KV failure, so Redis never keeps an older copy.
	if (entries.length && services.redis?.available()) {
		const specs = await services.registry.all();
		try {
			await services.redis.write(entries.map((e) => ({ ck: e.ck, rec: e.rec, ttlSeconds: specs.get(e.dataset)?.ttl_seconds ?? 3600 })));
		} catch (e) {
			services.stats.count("redis", "errors");
			console.error(JSON.stringify({ msg: "Redis refresh failed; retrying", error: String(e) }));
			return retryAll();
		}
	}
	for (const m of good) m.ack();
}

export async function consumeDeadLetters(batch: MessageBatch<unknown>, services: Services): Promise<void> {
	try {
		await storeDeadLetters(services.env.DB, batch.queue, batch.messages, "delivery kept failing (max_retries reached)");
		batch.ackAll();
	} catch (e) {
		console.error(JSON.stringify({ msg: "storing dead letters failed; retrying", error: String(e) }));
		batch.retryAll({ delaySeconds: 30 });
	}
}

/** The body as JSON, or, when JSON cannot encode it (a BigInt, a cycle), a JSON string of its text form: kept either way. */
function bodyText(body: unknown): string {
	// A text body is stored as is when it is JSON (the producer's messages are), so it reads and replays as sent.
	if (typeof body === "string" && readsAsJson(body)) return body;
	try {
		return JSON.stringify(body) ?? "null";
	} catch (e) {
		return JSON.stringify({ unencodable_body: String(body), error: String(e) });
	}
}

function readsAsJson(s: string): boolean {
	try {
		JSON.parse(s);
		return true;
	} catch {
		return false;
	}
}

async function storeDeadLetters(db: D1Database, queue: string, messages: readonly Message<unknown>[], error: string): Promise<void> {
	const d = drizzle(db);
	const rows = messages.map((m) => ({ queue, messageId: m.id, body: bodyText(m.body), error, attempts: m.attempts, createdAt: Date.now() }));
	// One row per message; a redelivered dead letter is stored once.
	for (let i = 0; i < rows.length; i += 10) {
		await d
			.insert(deadLetters)
			.values(rows.slice(i, i + 10))
			.onConflictDoNothing({ target: deadLetters.messageId });
	}
}
