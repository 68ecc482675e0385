/**
 * What happens to messages that kept failing: they are kept, never dropped. The dead-letter
 * consumer stores each one in D1; when D1 refuses, in KV, until a later run moves it to D1; when
 * both refuse, the message is retried with growing delays up to the platform's maximum (12 h,
 * with wrangler.toml's max_retries = 100), so it outlasts a long outage. Replaying puts a dead
 * letter's body back on the events queue; events are idempotent by id, so replaying twice is harmless.
 */
import { HotpathError } from "../errors";
import { log } from "../observability/log";
import { searchMessageDataset } from "../search/jobs";
import {
	type DeadLetter,
	deleteDeadLetters,
	drainKvDeadLetters,
	getDeadLetter,
	type ListFilter,
	listD1DeadLetters,
	listKvDeadLetters,
	markReplayed,
	type StoredDeadLetter,
	storeDeadLetterKv,
	storeDeadLettersD1,
	unmarkReplayed,
} from "../storage/dead-letters";
import type { RefusedEvents } from "./apply";
import { packBatches, readQueueMessage, repackBody } from "./producer";

const encoder = new TextEncoder();

/** Queues allow a delay of at most 12 hours. */
const MAX_DELAY_SECONDS = 43_200;

/** Delay before the dead-letter consumer tries a message again: 30 s, doubling, at most 12 h. */
export const deadLetterRetryDelay = (attempts: number): number => Math.min(MAX_DELAY_SECONDS, 30 * 2 ** Math.min(Math.max(0, attempts - 1), 11));

/** The body as JSON text, or, when JSON cannot encode it (a BigInt, a cycle), a JSON string of its text form: kept either way. */
export function bodyText(body: unknown): string {
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

/** The datasets a message body touches, or null when it is not a Hotpath message. */
export function datasetsOf(body: unknown): string[] | null {
	const m = readQueueMessage(body);
	if (!m) return null;
	const names =
		m.kind === "events"
			? m.events.map((e) => e.dataset)
			: m.kind === "refresh"
				? m.refs.map((r) => r.dataset)
				: m.kind === "search"
					? [searchMessageDataset(m.message)]
					: m.kind === "rebuild"
						? [m.page.dataset]
						: [];
	// A backfill message names only its job: its dataset is unknown here, like an unreadable body's.
	return names.length || m.kind === "events" ? [...new Set(names)].sort() : null;
}

export function deadLetterOf(msg: Message<unknown>, queue: string, error: string, now = Date.now()): DeadLetter {
	return { queue, messageId: msg.id, body: bodyText(msg.body), error, attempts: msg.attempts, createdAt: now, datasets: datasetsOf(msg.body) };
}

/**
 * The events of one key the consumer could not apply, as a dead letter of their own: its message
 * id is derived from the key and the event ids, so a redelivered batch stores it once.
 */
export async function deadLetterOfRefused(r: RefusedEvents, queue: string, now = Date.now()): Promise<DeadLetter> {
	const body = JSON.stringify({ v: 1, events: r.events });
	const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify([r.dataset, r.key, r.events.map((e) => e.id)]))));
	const hex = Array.from(digest.slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
	return { queue, messageId: `refused:${hex}`, body, error: r.reason, attempts: 1, createdAt: now, datasets: [r.dataset] };
}

/** Keeps dead letters: in D1, or in KV when D1 refuses. Throws only when both refuse (the caller retries). */
export async function keepDeadLetters(db: D1Database, kv: KVNamespace, letters: readonly DeadLetter[]): Promise<void> {
	if (!letters.length) return;
	try {
		await storeDeadLettersD1(db, letters);
		return;
	} catch (e) {
		log.warn("D1 refused dead letters; keeping them in KV until it is back", { error: String(e), count: letters.length });
	}
	await Promise.all(letters.map((l) => storeDeadLetterKv(kv, l)));
}

/** The dead-letter queue's consumer: keep every message, acking each only once it is stored somewhere. */
export async function consumeDeadLetters(batch: MessageBatch<unknown>, db: D1Database, kv: KVNamespace): Promise<void> {
	const letters = batch.messages.map((m) => deadLetterOf(m, batch.queue, "delivery kept failing (max_retries reached)"));
	try {
		await storeDeadLettersD1(db, letters);
		batch.ackAll();
		return;
	} catch (e) {
		log.warn("D1 refused dead letters; keeping them in KV until it is back", { error: String(e), count: letters.length });
	}
	const kept = await Promise.allSettled(letters.map((l) => storeDeadLetterKv(kv, l)));
	batch.messages.forEach((m, i) => {
		if (kept[i]?.status === "fulfilled") m.ack();
		else {
			const delaySeconds = deadLetterRetryDelay(m.attempts);
			log.error("dead letter could not be stored in D1 or KV; retrying", { message_id: m.id, attempts: m.attempts, delay_s: delaySeconds });
			m.retry({ delaySeconds });
		}
	});
}

/** Moves dead letters that waited in KV into D1; run by the cron trigger. Quiet when D1 still refuses. */
export async function drainDeadLetters(db: D1Database, kv: KVNamespace): Promise<number> {
	try {
		return await drainKvDeadLetters(db, kv);
	} catch (e) {
		log.warn("moving dead letters from KV to D1 failed; will try again", { error: String(e) });
		return 0;
	}
}

export { deleteDeadLetters, getDeadLetter, type ListFilter, type StoredDeadLetter };

export interface DeadLetterListing {
	letters: StoredDeadLetter[];
	/** D1 refused the query: only the letters waiting in KV are listed. */
	d1Refused: boolean;
	/** The page ended at its byte budget of bodies (ListFilter.bodyBytes): more letters may wait. */
	more: boolean;
}

/**
 * Bytes of bodies one bulk replay holds at most (and one letter past it): a Worker has 128 MB, and
 * 1,000 letters of a full queue message each (~110 KB), or of a refused key's events (up to D1's
 * 2 MB row), would not fit. A call past it replays fewer and says `more`.
 */
export const BULK_BODY_BYTES = 16 * 1024 * 1024;

/**
 * Dead letters: D1's newest first, then those waiting in KV. While D1 refuses, the ones waiting in
 * KV are still listed (and can be replayed): an outage must not hide the letters it made.
 */
export async function listDeadLetters(db: D1Database, kv: KVNamespace, f: ListFilter): Promise<DeadLetterListing> {
	let letters: StoredDeadLetter[];
	let d1Refused = false;
	let more = false;
	try {
		({ letters, cut: more } = await listD1DeadLetters(db, f));
	} catch (e) {
		log.warn("D1 refused the dead-letter listing; listing those waiting in KV only", { error: String(e) });
		letters = [];
		d1Refused = true;
	}
	// A page its byte budget ended is full: the letters waiting in KV come on a later one. A run
	// going on from a cursor took them on its first call (a replay moves them to D1).
	if (!more && f.beforeId === undefined) {
		const used = letters.reduce((n, l) => n + l.body.length, 0);
		const kvPage = await listKvDeadLetters(kv, f, f.limit - letters.length, (f.bodyBytes ?? Number.POSITIVE_INFINITY) - used);
		letters.push(...kvPage.letters);
		more = kvPage.cut;
	}
	return { letters, d1Refused, more };
}

/** Why a message the consumer cannot read at all is kept (such a letter cannot be replayed). */
export const NOT_A_HOTPATH_MESSAGE = "message body is not a Hotpath events message";

/** Unreplayed letters a bulk replay takes: those the consumer could not read at all are left out in the query, so they cannot fill its pages. */
export function listReplayable(db: D1Database, kv: KVNamespace, f: ListFilter): Promise<DeadLetterListing> {
	return listDeadLetters(db, kv, { ...f, unreplayedOnly: true, exceptError: NOT_A_HOTPATH_MESSAGE });
}

/**
 * Whether a dead letter's body is a message the events consumer takes. One that is not (a body
 * some other producer put on the queue) would only be dead-lettered again, as a new letter: it can
 * be inspected and deleted, not replayed.
 */
export const isReplayable = (letter: StoredDeadLetter): boolean => readQueueMessage(letter.body) !== null;

/** Replays one dead letter; one whose body is not a Hotpath message is a conflict, naming why. */
export async function replayDeadLetter(db: D1Database, kv: KVNamespace, queue: Queue<unknown>, letter: StoredDeadLetter, now = Date.now()): Promise<void> {
	if (!isReplayable(letter)) {
		throw new HotpathError(
			"conflict",
			`dead letter ${letter.id} cannot be replayed: its body is not a Hotpath queue message (${letter.error}), so the consumer would only dead-letter it again; inspect it and delete it`,
		);
	}
	await replayDeadLetters(db, kv, queue, [letter], now);
}

/**
 * Puts dead letters back on the events queue, marked replayed (letters whose body is not a
 * Hotpath message are left as they are: see `isReplayable`). They are marked before they are
 * sent: the consumer may take a replayed message at once (max_batch_timeout = 0), and one that fails
 * again is dead-lettered again, unmarked; marking after the send could come after that and show a
 * letter that is waiting again as replayed (and a purge of replayed letters would then drop it).
 * Stored bodies are JSON text, sent as text.
 */
export async function replayDeadLetters(
	db: D1Database,
	kv: KVNamespace,
	queue: Queue<unknown>,
	letters: readonly StoredDeadLetter[],
	now = Date.now(),
): Promise<number> {
	letters = letters.filter(isReplayable);
	if (!letters.length) return 0;
	const packed = letters.flatMap((l) => repackBody(l.body));
	// One that waited in KV moves to D1 first, so it is listed once, marked replayed like the others.
	const fromKv = letters.filter((l) => typeof l.id === "string");
	const messageIds = letters.map((l) => l.messageId);
	let movedFromKv = false;
	let marked = false;
	try {
		if (fromKv.length) await storeDeadLettersD1(db, fromKv);
		movedFromKv = true;
		await markReplayed(db, messageIds, now);
		marked = true;
	} catch (e) {
		log.warn("dead letters to replay could not be marked replayed: D1 refused", { error: String(e) });
	}
	// Ones waiting in KV that D1 would not take are marked where they wait, so a bulk replay called
	// again (until it replays none) does not send them again and again; the cron moves them later.
	const markedInKv = movedFromKv ? [] : fromKv;
	await Promise.all(
		markedInKv.map((l) => storeDeadLetterKv(kv, l, now).catch((e) => log.warn("a replayed dead letter in KV could not be marked", { error: String(e) }))),
	);
	let sent = 0;
	for (const batch of packBatches(packed)) {
		try {
			await queue.sendBatch(batch.map((m) => ({ body: m.body, contentType: "text" as const })));
		} catch (e) {
			if (marked) await unmarkReplayed(db, messageIds, now).catch((u) => log.error("replayed dead letters could not be unmarked", { error: String(u) }));
			await Promise.all(
				markedInKv.map((l) => storeDeadLetterKv(kv, l).catch((u) => log.error("a replayed dead letter in KV could not be unmarked", { error: String(u) }))),
			);
			throw new HotpathError(
				"unavailable",
				`the event queue refused the replay after ${sent} of ${packed.length} message(s) (${(e as Error).message}); none is marked replayed, and replaying again is safe: events are idempotent by id`,
				{ retryAfterSeconds: 1 },
			);
		}
		sent += batch.length;
	}
	if (movedFromKv && fromKv.length) {
		try {
			await deleteDeadLetters(
				db,
				kv,
				fromKv.map((l) => l.id),
			);
		} catch (e) {
			log.warn("replayed dead letters moved to D1 could not be deleted from KV", { error: String(e) });
		}
	}
	return letters.length;
}
