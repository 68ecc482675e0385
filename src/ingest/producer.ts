/**
 * The queue producer: packs events into as few messages and sendBatch calls as the Queue limits
 * allow. A message body is the JSON text of an EventsMessage sent as `text`: each event was
 * serialised once at intake, and the queue passes text through without re-encoding it.
 */

import { readBackfillMessage } from "../aggregates/backfill";
import { HotpathError } from "../errors";
import { readSearchMessage, type SearchMessage } from "../search/jobs";
import type { EncodedEvent } from "./events";
import type { ChangeEvent } from "./merge";

/** The body of one queue message: many events, so one message carries up to ~110 KB of them. */
export interface EventsMessage {
	v: 1;
	events: ChangeEvent[];
}

// Cloudflare Queues: 128 KB per message, 100 messages and 256 KB per sendBatch. Stay under with
// headroom for the per-message envelope the runtime adds.
const MESSAGE_BYTES = 110 * 1024;
const BATCH_BYTES = 240 * 1024;
const BATCH_MESSAGES = 100;
const encoder = new TextEncoder();
const EVENTS_HEAD = '{"v":1,"events":[';
const REFRESH_HEAD = '{"v":1,"refresh":[';
const TAIL = "]}";

/** The cache tiers a refresh message is for. */
export type RefreshTier = "kv" | "redis";

/**
 * The body of a cache-refresh message: keys whose copies in some tier the consumer could not bring
 * up to D1 (past one invocation's KV operations, KV refusing a put, Redis down or its breaker
 * open). The consumer that takes it reads D1's current state of each and writes it to those tiers.
 */
export interface RefreshMessage {
	v: 1;
	refresh: { dataset: string; key: string }[];
	/** The tiers to refresh; absent means KV (messages written before Redis refreshes existed). */
	tiers?: RefreshTier[];
	/**
	 * Epoch ms after which a Redis refresh may be dropped: every Redis copy written before the
	 * failure has expired by then (copies live at most REDIS_MAX_TTL_SECONDS).
	 */
	until?: number;
}

export interface Packed {
	/** JSON text of an EventsMessage or a RefreshMessage. */
	body: string;
	bytes: number;
	count: number;
}

/** Groups JSON parts into message bodies `head part,part,... tail` under MESSAGE_BYTES. */
function packParts(parts: readonly EncodedEvent[], head: string, tail = TAIL): Packed[] {
	const out: Packed[] = [];
	let texts: string[] = [];
	let bytes = head.length + tail.length;
	const flush = () => {
		if (texts.length) out.push({ body: head + texts.join(",") + tail, bytes, count: texts.length });
		texts = [];
		bytes = head.length + tail.length;
	};
	for (const p of parts) {
		if (texts.length && bytes + p.bytes + 1 > MESSAGE_BYTES) flush();
		bytes += p.bytes + (texts.length ? 1 : 0);
		texts.push(p.json);
	}
	flush();
	return out;
}

/** Groups encoded events into message bodies under MESSAGE_BYTES. Exported for tests. */
export function packMessages(events: readonly EncodedEvent[]): Packed[] {
	return packParts(events, EVENTS_HEAD);
}

/**
 * A stored message body (a dead letter's) as queue messages: as is when it fits one; an events
 * message past MESSAGE_BYTES has its events packed again. A refused key's dead letter gathers the
 * events of many messages of one batch, so it can pass a message's size; any other body came off
 * the queue whole.
 */
export function repackBody(body: string): Packed[] {
	const bytes = encoder.encode(body).length;
	if (bytes <= MESSAGE_BYTES) return [{ body, bytes, count: 1 }];
	const m = readQueueMessage(body);
	if (m?.kind !== "events") return [{ body, bytes, count: 1 }];
	return packMessages(
		m.events.map((e) => {
			const json = JSON.stringify(e);
			return { json, bytes: encoder.encode(json).length };
		}),
	);
}

/** Groups messages into sendBatch calls under the per-call limits. Exported for tests. */
export function packBatches(messages: Packed[]): Packed[][] {
	const batches: Packed[][] = [];
	let cur: Packed[] = [];
	let bytes = 0;
	for (const m of messages) {
		if (cur.length === BATCH_MESSAGES || (cur.length > 0 && bytes + m.bytes > BATCH_BYTES)) {
			batches.push(cur);
			cur = [];
			bytes = 0;
		}
		cur.push(m);
		bytes += m.bytes;
	}
	if (cur.length) batches.push(cur);
	return batches;
}

/**
 * Puts events on the queue and resolves once the queue has accepted all of them. If a send fails
 * part way, the error says how many were enqueued: events are idempotent by id, so the client
 * can safely resend the whole request.
 */
export async function enqueueEvents(queue: Queue<unknown>, events: readonly EncodedEvent[], resendSafe = true): Promise<void> {
	let sent = 0;
	for (const batch of packBatches(packMessages(events))) {
		try {
			await queue.sendBatch(batch.map((m) => ({ body: m.body, contentType: "text" as const })));
		} catch (e) {
			// A resend is a no-op for what was queued only if every event keeps its id: a client id, one
			// derived from event_time, or from an Idempotency-Key. Random ids (none of those) are new ones.
			const advice =
				sent === 0
					? "none was enqueued; resending the request is safe"
					: resendSafe
						? "resending the request is safe: the events keep their ids, and a queued one applies once"
						: `those ${sent} will apply; resending them would apply them again, as events without id, event_time or Idempotency-Key get new ids: resend the rest, or send ids or an Idempotency-Key`;
			throw new HotpathError(
				"unavailable",
				`the event queue refused a batch after ${sent} of ${events.length} events (the first ones, in body order) were enqueued (${(e as Error).message}); ${advice}`,
				{ retryAfterSeconds: 1 },
			);
		}
		sent += batch.reduce((n, m) => n + m.count, 0);
	}
}

export interface RefreshOptions {
	tiers: RefreshTier[];
	delaySeconds?: number;
	until?: number;
}

/** Queues cache-refresh messages for keys, delivered after `delaySeconds`. Throws if the queue refuses them. */
export async function enqueueRefresh(queue: Queue<unknown>, refs: readonly { dataset: string; key: string }[], opts: RefreshOptions): Promise<void> {
	if (!refs.length) return;
	const parts = refs.map((r) => {
		const json = JSON.stringify({ dataset: r.dataset, key: r.key });
		return { json, bytes: encoder.encode(json).length };
	});
	const tail = `],"tiers":${JSON.stringify(opts.tiers)}${opts.until === undefined ? "" : `,"until":${opts.until}`}}`;
	for (const batch of packBatches(packParts(parts, REFRESH_HEAD, tail))) {
		await queue.sendBatch(
			batch.map((m) => ({ body: m.body, contentType: "text" as const })),
			opts.delaySeconds ? { delaySeconds: opts.delaySeconds } : undefined,
		);
	}
}

/** One page of a rebuild: rewrite (or drop) the cached copies of the keys after `after`, in key order. */
export interface RebuildPage {
	dataset: string;
	mode: "refill" | "drop";
	/** The run this page belongs to: a page of a run that was replaced does nothing. */
	job: string;
	/** The page's number in its run, from 0: a page is worked only when the run has counted the ones before it, so twice delivered it counts once. Absent in pages queued before pages were numbered. */
	index?: number;
	/** The last key of the previous page, or null for the first. */
	after: string | null;
	/** For a page sent again after failing: when its first attempt failed (epoch ms), and how many attempts failed. */
	failing_since?: number;
	failures?: number;
}

/** Queues the next page of a rebuild. */
export async function enqueueRebuildPage(queue: Queue<unknown>, page: RebuildPage, delaySeconds?: number): Promise<void> {
	await queue.send(JSON.stringify({ v: 1, rebuild: page }), { contentType: "text", ...(delaySeconds ? { delaySeconds } : {}) });
}

/** The queue message of the next step of pruning the event log (src/history/retention.ts): `holder` is the step before's, which hands it the lease. */
export interface PruneMessage {
	v: 1;
	prune: { holder: string };
}

export const pruneMessage = (holder: string): string => JSON.stringify({ v: 1, prune: { holder } } satisfies PruneMessage);

function readPruneMessage(body: unknown): { holder: string } | null {
	if (body === null || typeof body !== "object") return null;
	const b = body as Partial<PruneMessage>;
	return b.v === 1 && b.prune !== null && typeof b.prune === "object" && typeof b.prune.holder === "string" ? { holder: b.prune.holder } : null;
}

export type QueueMessage =
	| { kind: "events"; events: ChangeEvent[] }
	| { kind: "refresh"; refs: { dataset: string; key: string }[]; tiers: RefreshTier[]; until?: number }
	| { kind: "rebuild"; page: RebuildPage }
	| { kind: "search"; message: SearchMessage }
	| { kind: "backfill"; job: string }
	| { kind: "prune"; holder: string };

/**
 * Reads a message body back: the JSON text the producer sends, or an already-parsed object (a
 * message sent as `json`). Returns null for anything that is neither an events nor a refresh message.
 */
export function readQueueMessage(body: unknown): QueueMessage | null {
	let b = body;
	// Twice at most: a text body a consumer without text support dead-lettered is stored as a JSON
	// string of the text, and replaying it sends that string.
	for (let i = 0; i < 2 && typeof b === "string"; i++) {
		try {
			b = JSON.parse(b);
		} catch {
			return null;
		}
	}
	if (isEventsMessage(b)) return { kind: "events", events: b.events };
	if (isRefreshMessage(b)) return { kind: "refresh", refs: b.refresh, tiers: b.tiers ?? ["kv"], until: b.until };
	if (isRebuildMessage(b)) return { kind: "rebuild", page: b.rebuild };
	const search = readSearchMessage(b);
	if (search) return { kind: "search", message: search };
	const backfill = readBackfillMessage(b);
	if (backfill) return { kind: "backfill", job: backfill.job };
	const prune = readPruneMessage(b);
	if (prune) return { kind: "prune", holder: prune.holder };
	return null;
}

function isEventsMessage(body: unknown): body is EventsMessage {
	if (body === null || typeof body !== "object") return false;
	const b = body as Partial<EventsMessage>;
	return (
		b.v === 1 &&
		Array.isArray(b.events) &&
		b.events.every(
			(e: Partial<ChangeEvent>) =>
				e &&
				typeof e.id === "string" &&
				typeof e.dataset === "string" &&
				typeof e.key === "string" &&
				typeof e.time === "number" &&
				(e.op === "upsert" || e.op === "patch" || e.op === "delete"),
		)
	);
}

function isRefreshMessage(body: unknown): body is RefreshMessage {
	if (body === null || typeof body !== "object") return false;
	const b = body as Partial<RefreshMessage>;
	return (
		b.v === 1 &&
		Array.isArray(b.refresh) &&
		b.refresh.every((r) => r && typeof r.dataset === "string" && typeof r.key === "string") &&
		(b.tiers === undefined || (Array.isArray(b.tiers) && b.tiers.every((t) => t === "kv" || t === "redis"))) &&
		(b.until === undefined || typeof b.until === "number")
	);
}

function isRebuildMessage(body: unknown): body is { v: 1; rebuild: RebuildPage } {
	if (body === null || typeof body !== "object") return false;
	const b = body as { v?: unknown; rebuild?: Partial<RebuildPage> };
	const r = b.rebuild;
	return (
		b.v === 1 &&
		r !== null &&
		typeof r === "object" &&
		typeof r.dataset === "string" &&
		(r.mode === "refill" || r.mode === "drop") &&
		typeof r.job === "string" &&
		(r.index === undefined || (Number.isSafeInteger(r.index) && r.index >= 0)) &&
		(r.after === null || typeof r.after === "string") &&
		(r.failing_since === undefined || Number.isSafeInteger(r.failing_since)) &&
		(r.failures === undefined || (Number.isSafeInteger(r.failures) && r.failures >= 0))
	);
}
