/**
 * Dead letters: queue messages that kept failing, kept for inspection and replay. Their home is
 * D1; when D1 refuses them they wait in KV (`dlq:<message id>`) until a later run moves them over.
 * Both are listed together. No policy here: who may see which dead letter is decided by routes.
 */
import { and, desc, eq, inArray, isNotNull, isNull, lt, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { deadLetters } from "./schema";

export interface DeadLetter {
	queue: string;
	messageId: string;
	/** The message body as JSON text. */
	body: string;
	error: string;
	attempts: number;
	createdAt: number;
	/** Datasets the message touches, or null when its body could not be read. */
	datasets: string[] | null;
	/** Set on a letter replayed while it waited in KV: D1 takes it as replayed then. */
	replayedAt?: number | null;
}

export interface StoredDeadLetter extends DeadLetter {
	/** A D1 row id, or `kv:<message id>` for one waiting in KV. */
	id: number | string;
	replayedAt: number | null;
	/** Set (the body's bytes) when a listing left the body out, past its budget: `body` is then "". */
	omittedBytes?: number;
}

/** KV key prefix of dead letters waiting for D1. */
export const KV_DEAD_LETTER_PREFIX = "dlq:";
const ROWS_PER_INSERT = 10;

/** Stores dead letters in D1, once per message id (a redelivered dead letter is stored once, and is unreplayed again). */
export async function storeDeadLettersD1(db: D1Database, letters: readonly DeadLetter[]): Promise<void> {
	const d = drizzle(db);
	const rows = letters.map((l) => ({
		queue: l.queue,
		messageId: l.messageId,
		body: l.body,
		error: l.error,
		attempts: l.attempts,
		createdAt: l.createdAt,
		datasets: l.datasets ? JSON.stringify(l.datasets) : null,
		replayedAt: l.replayedAt ?? null,
	}));
	const stmts = [];
	for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
		stmts.push(
			d
				.insert(deadLetters)
				.values(rows.slice(i, i + ROWS_PER_INSERT))
				// Dead-lettered again after a replay (a refused key's letter has an id derived from its
				// events, so refusing them again gives the same id): the letter is waiting again.
				.onConflictDoUpdate({ target: deadLetters.messageId, set: { replayedAt: null, error: sql`excluded.error` } }),
		);
	}
	const [first, ...rest] = stmts;
	if (first) await d.batch([first, ...rest]);
}

interface KvDeadLetterMeta {
	datasets: string[] | null;
	created_at: number;
	replayed_at?: number;
}

/**
 * Keeps one dead letter in KV, for when D1 refuses it (stored again, it is unreplayed again, as in
 * D1); `replayedAt` marks one replayed while D1 refused. Metadata lets a listing filter without reading bodies.
 */
export async function storeDeadLetterKv(kv: KVNamespace, l: DeadLetter, replayedAt?: number): Promise<void> {
	const { queue, messageId, body, error, attempts, createdAt, datasets } = l;
	const kept: DeadLetter = { queue, messageId, body, error, attempts, createdAt, datasets, ...(replayedAt === undefined ? {} : { replayedAt }) };
	const meta: KvDeadLetterMeta = { datasets: l.datasets, created_at: l.createdAt, ...(replayedAt === undefined ? {} : { replayed_at: replayedAt }) };
	await kv.put(`${KV_DEAD_LETTER_PREFIX}${l.messageId}`, JSON.stringify(kept), { metadata: meta });
}

async function readKv(kv: KVNamespace, name: string): Promise<DeadLetter | null> {
	const text = await kv.get(name, "text");
	if (text === null) return null;
	try {
		return JSON.parse(text) as DeadLetter;
	} catch {
		return null;
	}
}

export interface ListFilter {
	/** Only letters whose datasets all lie within these (letters with unknown datasets are excluded); null for all. */
	within: readonly string[] | null;
	/** Only letters touching this dataset. */
	dataset?: string;
	/** Only letters not replayed yet. */
	unreplayedOnly?: boolean;
	/** Only letters replayed already (in KV, those replayed while D1 refused to mark them). */
	replayedOnly?: boolean;
	/** Leaves out letters kept with this reason. */
	exceptError?: string;
	limit: number;
	/**
	 * At most about this many bytes of bodies (D1 letters): the page ends after the letter that
	 * passes it (its first letter always comes), so a page never holds more bodies than a Worker's
	 * memory takes, however large each letter is.
	 */
	bodyBytes?: number;
	/** Letters without their bodies (`body` is ""): for a purge, which needs only ids. */
	withoutBodies?: boolean;
	/** With `bodyBytes`: letters past the budget are listed too, without their bodies (`omittedBytes`), rather than ending the page. */
	keepPastBudget?: boolean;
	/** Only D1 letters with a smaller row id (a bulk replay going on from its last call); no letter waiting in KV. */
	beforeId?: number;
}

/** A page of D1 letters; `cut` when `bodyBytes` ended it before `limit` (more may wait). */
export interface D1LetterPage {
	letters: StoredDeadLetter[];
	cut: boolean;
}

const matches = (datasets: string[] | null, f: ListFilter): boolean => {
	if (f.dataset !== undefined && !datasets?.includes(f.dataset)) return false;
	if (f.within === null) return true;
	const within = f.within;
	return datasets?.every((d) => within.includes(d)) ?? false;
};

const parseDatasets = (s: string | null): string[] | null => (s === null ? null : (JSON.parse(s) as string[]));

const fromRow = (r: typeof deadLetters.$inferSelect): StoredDeadLetter => ({
	id: r.id,
	queue: r.queue,
	messageId: r.messageId,
	body: r.body,
	error: r.error ?? "",
	attempts: r.attempts,
	createdAt: r.createdAt,
	replayedAt: r.replayedAt,
	datasets: parseDatasets(r.datasets),
});

/** A row of the listing with a byte budget: D1's column names; `body` null past the budget. */
interface BudgetRow {
	id: number;
	queue: string;
	message_id: string;
	body: string | null;
	error: string | null;
	attempts: number;
	created_at: number;
	replayed_at: number | null;
	datasets: string | null;
	bytes: number;
}

/** D1 rows newest first, filtered by dataset bounds. */
export async function listD1DeadLetters(db: D1Database, f: ListFilter): Promise<D1LetterPage> {
	// The dataset filters run in SQL over the letter's JSON list, so a key limited to one dataset
	// finds its letters however many newer ones of other datasets there are.
	const where = and(
		f.beforeId === undefined ? undefined : lt(deadLetters.id, f.beforeId),
		f.unreplayedOnly ? isNull(deadLetters.replayedAt) : undefined,
		f.replayedOnly ? isNotNull(deadLetters.replayedAt) : undefined,
		f.exceptError === undefined ? undefined : sql`(${deadLetters.error} IS NULL OR ${deadLetters.error} <> ${f.exceptError})`,
		f.dataset === undefined ? undefined : sql`EXISTS (SELECT 1 FROM json_each(${deadLetters.datasets}) WHERE value = ${f.dataset})`,
		f.within === null
			? undefined
			: sql`${deadLetters.datasets} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM json_each(${deadLetters.datasets}) WHERE value NOT IN (SELECT value FROM json_each(${JSON.stringify(f.within)})))`,
	);
	if (f.bodyBytes === undefined && !f.withoutBodies) {
		const rows = await drizzle(db).select().from(deadLetters).where(where).orderBy(desc(deadLetters.id)).limit(f.limit).all();
		return { letters: rows.map(fromRow).filter((l) => matches(l.datasets, f)), cut: false };
	}
	// The page is chosen first (LIMIT), then bodies are returned only while the bytes before each
	// letter are under the budget: the Worker never receives the bodies past it.
	const body = f.withoutBodies
		? sql`'' AS body`
		: sql`CASE WHEN SUM(bytes) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) - bytes < ${f.bodyBytes ?? 0} THEN body END AS body`;
	const rows = await drizzle(db).all<BudgetRow>(
		sql`SELECT id, queue, message_id, error, attempts, created_at, replayed_at, datasets, bytes, ${body}
FROM (SELECT *, length(CAST(body AS BLOB)) AS bytes FROM ${deadLetters} WHERE ${where ?? sql`1`} ORDER BY id DESC LIMIT ${f.limit})
ORDER BY id DESC`,
	);
	const kept = f.keepPastBudget ? -1 : rows.findIndex((r) => r.body === null);
	const page = kept < 0 ? rows : rows.slice(0, kept);
	const letters = page.map(
		(r): StoredDeadLetter => ({
			id: r.id,
			queue: r.queue,
			messageId: r.message_id,
			body: r.body ?? "",
			error: r.error ?? "",
			attempts: r.attempts,
			createdAt: r.created_at,
			replayedAt: r.replayed_at,
			datasets: parseDatasets(r.datasets),
			...(r.body === null ? { omittedBytes: r.bytes } : {}),
		}),
	);
	return { letters: letters.filter((l) => matches(l.datasets, f)), cut: kept >= 0 };
}

/** Up to `limit` of the letters waiting in KV, filtered by dataset bounds. */
export async function listKvDeadLetters(
	kv: KVNamespace,
	f: ListFilter,
	limit: number,
	/** Bytes of bodies left for these letters (ListFilter.bodyBytes less what D1's took): past it, as listD1DeadLetters does. */
	bodyBudget = Number.POSITIVE_INFINITY,
): Promise<{ letters: StoredDeadLetter[]; cut: boolean }> {
	const out: StoredDeadLetter[] = [];
	if (limit <= 0) return { letters: out, cut: false };
	const wanted = (replayedAt: number | null | undefined) => (f.unreplayedOnly ? replayedAt == null : f.replayedOnly ? replayedAt != null : true);
	const listed = await kv.list<KvDeadLetterMeta>({ prefix: KV_DEAD_LETTER_PREFIX, limit: 1000 });
	let bytes = 0;
	for (const k of listed.keys) {
		if (out.length >= limit) break;
		if (k.metadata && (!matches(k.metadata.datasets, f) || !wanted(k.metadata.replayed_at))) continue;
		const l = await readKv(kv, k.name);
		if (!l || !matches(l.datasets, f) || !wanted(l.replayedAt) || (f.exceptError !== undefined && l.error === f.exceptError)) continue;
		const letter: StoredDeadLetter = { ...l, id: `kv:${l.messageId}`, replayedAt: l.replayedAt ?? null };
		// One letter at a time is read, so only the bodies kept count against the budget (a letter
		// waiting in KV can be far past D1's row size: a refused key's events of a whole batch).
		if (f.withoutBodies) letter.body = "";
		else if (bytes >= bodyBudget && out.length) {
			if (!f.keepPastBudget) return { letters: out, cut: true };
			letter.omittedBytes = l.body.length;
			letter.body = "";
		} else bytes += l.body.length;
		out.push(letter);
	}
	return { letters: out, cut: false };
}

/** One dead letter by id (a D1 row id, or `kv:<message id>`). */
export async function getDeadLetter(db: D1Database, kv: KVNamespace, id: number | string): Promise<StoredDeadLetter | null> {
	if (typeof id === "string") {
		const l = await readKv(kv, `${KV_DEAD_LETTER_PREFIX}${id.slice("kv:".length)}`);
		return l ? { ...l, id, replayedAt: l.replayedAt ?? null } : null;
	}
	const r = await drizzle(db).select().from(deadLetters).where(eq(deadLetters.id, id)).get();
	return r ? fromRow(r) : null;
}

/** Marks dead letters replayed, by message id. */
export async function markReplayed(db: D1Database, messageIds: readonly string[], at: number): Promise<void> {
	for (let i = 0; i < messageIds.length; i += 90) {
		await drizzle(db)
			.update(deadLetters)
			.set({ replayedAt: at })
			.where(inArray(deadLetters.messageId, messageIds.slice(i, i + 90)));
	}
}

/** Undoes `markReplayed` of the same moment, for letters a replay could not send; a letter dead-lettered again since is left as it is. */
export async function unmarkReplayed(db: D1Database, messageIds: readonly string[], at: number): Promise<void> {
	for (let i = 0; i < messageIds.length; i += 90) {
		await drizzle(db)
			.update(deadLetters)
			.set({ replayedAt: null })
			.where(and(inArray(deadLetters.messageId, messageIds.slice(i, i + 90)), eq(deadLetters.replayedAt, at)));
	}
}

/** Deletes dead letters by id (D1 row ids and `kv:` ids). Returns how many were deleted. */
export async function deleteDeadLetters(db: D1Database, kv: KVNamespace, ids: readonly (number | string)[]): Promise<number> {
	let n = 0;
	const rowIds = ids.filter((i): i is number => typeof i === "number");
	for (let i = 0; i < rowIds.length; i += 90) {
		const res = await drizzle(db)
			.delete(deadLetters)
			.where(inArray(deadLetters.id, rowIds.slice(i, i + 90)))
			.returning({ id: deadLetters.id });
		n += res.length;
	}
	for (const id of ids) {
		if (typeof id !== "string") continue;
		await kv.delete(`${KV_DEAD_LETTER_PREFIX}${id.slice("kv:".length)}`);
		n++;
	}
	return n;
}

/** Letters a drain tries on its own, after D1 refused them together, before it takes D1 for down. */
const ALONE_BEFORE_GIVING_UP = 5;

/** Moves dead letters that waited in KV into D1 (once D1 takes writes again). Returns how many moved. */
export async function drainKvDeadLetters(db: D1Database, kv: KVNamespace, max = 200): Promise<number> {
	const listed = await kv.list({ prefix: KV_DEAD_LETTER_PREFIX, limit: max });
	if (!listed.keys.length) return 0;
	const letters: { name: string; letter: DeadLetter }[] = [];
	for (const k of listed.keys) {
		const l = await readKv(kv, k.name);
		if (l) letters.push({ name: k.name, letter: l });
	}
	let moved = letters;
	try {
		await storeDeadLettersD1(
			db,
			letters.map((l) => l.letter),
		);
	} catch (e) {
		// One letter D1 refuses (a row past its size) must not keep every other one in KV for good:
		// each is tried on its own. When D1 takes none of the first few, it is D1 that is failing.
		moved = [];
		for (const [i, l] of letters.entries()) {
			if (i >= ALONE_BEFORE_GIVING_UP && !moved.length) break;
			try {
				await storeDeadLettersD1(db, [l.letter]);
				moved.push(l);
			} catch {}
		}
		if (!moved.length) throw e;
	}
	// Deleted only after D1 has them: a failure in between leaves a copy in both, which D1 dedupes by message id.
	await Promise.all(moved.map((l) => kv.delete(l.name)));
	return moved.length;
}
