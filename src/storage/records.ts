/**
 * D1 queries for records: batch reads with json_each, and optimistic, revision-checked writes that
 * log each applied event in the same transaction. No policy here: the merge rules are in src/ingest.
 */
import { type HllRow, type RegisterMax, type TileRow, type TileSum, tileStatements, tileSumStatements } from "./aggregates";
import { type CachedRecord, recordCacheKey, valueJson } from "./cached-record";
import { packRows } from "./json-rows";
import type { Clock, RecordState } from "./record-state";

export interface StoredState {
	state: RecordState;
	rev: number;
}

interface StateRow {
	key: string;
	value: string | null;
	base_time: number | null;
	base_id: string | null;
	base_deleted: number;
	field_clocks: string;
	event_time: number;
	event_id: string;
	rev: number;
}

/** The statement that reads the full merge state of many keys of one dataset. */
export function statesStatement(db: D1Database, dataset: string, keys: string[]): D1PreparedStatement {
	return db
		.prepare(
			"SELECT key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev FROM records WHERE dataset = ?1 AND key IN (SELECT value FROM json_each(?2))",
		)
		.bind(dataset, JSON.stringify(keys));
}

/** The rows of a statesStatement, by key; a row that cannot be read is reported by key with why, not thrown. */
export function parseStates(rows: readonly StateRow[]): { states: Map<string, StoredState>; unreadable: Map<string, string> } {
	const states = new Map<string, StoredState>();
	const unreadable = new Map<string, string>();
	for (const row of rows) {
		try {
			states.set(row.key, {
				rev: row.rev,
				state: {
					value: row.value === null ? null : (JSON.parse(row.value) as Record<string, unknown>),
					base: row.base_time === null ? null : [row.base_time, row.base_id ?? ""],
					baseDeleted: row.base_deleted === 1,
					fieldClocks: JSON.parse(row.field_clocks) as Record<string, Clock>,
					clock: [row.event_time, row.event_id],
				},
			});
		} catch (e) {
			unreadable.set(row.key, String(e));
		}
	}
	return { states, unreadable };
}

export type { StateRow };

interface ReadRow {
	dataset: string;
	key: string;
	value: string | null;
	event_time: number;
	event_id: string;
	rev: number;
}

const READ_ONE = "SELECT dataset, key, value, event_time, event_id, rev FROM records WHERE dataset = ?1 AND key = ?2";
// Row-value IN over json_each lets one statement fetch keys of several datasets through the primary key.
const READ_MANY =
	"SELECT dataset, key, value, event_time, event_id, rev FROM records WHERE (dataset, key) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1))";

const toCached = (row: ReadRow): CachedRecord => ({
	v: row.value === null ? null : (JSON.parse(row.value) as Record<string, unknown>),
	t: row.event_time,
	i: row.event_id,
	r: row.rev,
});

/** What the read path needs of many records, in one statement. Keyed by cache key; missing records are absent. */
export async function readRecords(db: D1Database, refs: readonly { dataset: string; key: string }[]): Promise<Map<string, CachedRecord>> {
	const first = refs[0];
	if (!first) return new Map();
	const stmt =
		refs.length === 1 ? db.prepare(READ_ONE).bind(first.dataset, first.key) : db.prepare(READ_MANY).bind(JSON.stringify(refs.map((r) => [r.dataset, r.key])));
	const { results } = await stmt.all<ReadRow>();
	const out = new Map<string, CachedRecord>();
	for (const row of results) out.set(recordCacheKey(row.dataset, row.key), toCached(row));
	return out;
}

/** One page of a dataset's records in key order, after `afterKey` (exclusive). Tombstones only when asked. */
export async function listRecords(
	db: D1Database,
	dataset: string,
	afterKey: string | null,
	limit: number,
	includeDeleted: boolean,
): Promise<{ key: string; rec: CachedRecord }[]> {
	const { results } = await db
		.prepare(
			`SELECT dataset, key, value, event_time, event_id, rev FROM records WHERE dataset = ?1 AND key > ?2${includeDeleted ? "" : " AND value IS NOT NULL"} ORDER BY key LIMIT ?3`,
		)
		.bind(dataset, afterKey ?? "", limit)
		.all<ReadRow>();
	return results.map((row) => ({ key: row.key, rec: toCached(row) }));
}

/** Whether a dataset has any record (a tombstone counts). */
export async function hasRecords(db: D1Database, dataset: string): Promise<boolean> {
	return (await db.prepare("SELECT 1 FROM records WHERE dataset = ?1 LIMIT 1").bind(dataset).first()) !== null;
}

/** How many records (tombstones included) a dataset has. */
export async function countRecords(db: D1Database, dataset: string): Promise<number> {
	const row = await db.prepare("SELECT count(*) AS n FROM records WHERE dataset = ?1").bind(dataset).first<{ n: number }>();
	return row?.n ?? 0;
}

/** An event applied to a key, as the log keeps it. */
export interface LoggedEvent {
	time: number;
	id: string;
	op: "upsert" | "patch" | "delete";
	value?: Record<string, unknown>;
}

export interface StateWrite {
	dataset: string;
	key: string;
	state: RecordState;
	/** The revision the state was merged onto, or null for a key D1 did not have. */
	prevRev: number | null;
	/** The events folded into this state, logged in the same transaction when the write lands. */
	events: readonly LoggedEvent[];
	/** What these events add to the dataset's aggregate tiles, summed per tile: added when the write lands (it logs every one of them then). */
	tiles?: readonly TileSum[];
	hll?: readonly RegisterMax[];
	/** Recorded on the log rows: the newest aggregate the tiles above count them into. */
	aggVersion?: number;
}

/** Events of a key whose state did not change: logged as applied (no-ops), unconditionally. */
export interface LogOnly {
	dataset: string;
	key: string;
	events: readonly LoggedEvent[];
	/** Per fact: some of these ids may be logged already (a redelivery), and only those this write logs count. */
	tiles?: readonly TileRow[];
	hll?: readonly HllRow[];
	aggVersion?: number;
}

// Many writes in one statement: one JSON parameter (D1 allows 100 bound parameters, but strings of
// up to 2 MB), unpacked by json_each. A key new to D1 is written with rev 1 and, if another writer
// inserted it meanwhile, left alone; a known key is updated only while D1 still holds the revision
// it was merged onto; a known key whose row is gone is not written back (the caller reloads it).
// A write whose events include an id the log already holds for that key is refused too: that id
// was applied meanwhile (a concurrent redelivery), so the caller reloads and merges again without it.
// That check seeks each id in event_log_id: CROSS JOIN keeps the ids as the outer loop (left to
// itself, SQLite walked all of the key's log in event_log_time once per id: 153,105 rows read for
// 50 events onto a key with 3,000 log rows, and D1 bills rows read). RETURNING yields exactly the rows written. (The SELECT needs its WHERE clause anyway: without
// one SQLite would read ON CONFLICT as part of the SELECT's join.)
const WRITE_MANY = `INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at, writer)
SELECT w.value ->> 0, w.value ->> 1, w.value ->> 2, w.value ->> 3, w.value ->> 4, w.value ->> 5, w.value -> 6, w.value ->> 7, w.value ->> 8, w.value ->> 9, ?2, ?3
FROM json_each(?1) AS w
WHERE (w.value ->> 9 = 1 OR EXISTS (SELECT 1 FROM records AS r WHERE r.dataset = w.value ->> 0 AND r.key = w.value ->> 1))
  AND NOT EXISTS (SELECT 1 FROM json_each(w.value -> 10) AS i CROSS JOIN event_log AS l ON l.dataset = w.value ->> 0 AND l.key = w.value ->> 1 AND l.event_id = i.value)
ON CONFLICT (dataset, key) DO UPDATE SET value = excluded.value, base_time = excluded.base_time, base_id = excluded.base_id,
  base_deleted = excluded.base_deleted, field_clocks = excluded.field_clocks, event_time = excluded.event_time, event_id = excluded.event_id,
  rev = excluded.rev, updated_at = excluded.updated_at, writer = excluded.writer
WHERE records.rev = excluded.rev - 1
RETURNING dataset, key, rev`;

// Log rows of changed keys are kept only where this write's token is on the record (the write
// landed); log rows of unchanged keys always (an event that changed nothing is still applied).
// Runs after WRITE_MANY in the same transaction, so "landed" is exact.
// A row flagged (index 8) as "the value the record now holds" takes it from the row WRITE_MANY just
// wrote instead of carrying it twice: an upsert that became a key's whole state, the common case
// of a bulk load, so the value crosses to D1 once.
const LOG_MANY = `INSERT INTO event_log (dataset, key, event_time, event_id, op, value, applied_at, writer, agg_version)
SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4,
  CASE WHEN e.value ->> 8 = 1 THEN (SELECT r.value FROM records AS r WHERE r.dataset = e.value ->> 0 AND r.key = e.value ->> 1)
       ELSE e.value ->> 5 END,
  ?2, ?3, e.value ->> 7
FROM json_each(?1) AS e
WHERE e.value ->> 6 = 0 OR EXISTS (SELECT 1 FROM records AS r WHERE r.dataset = e.value ->> 0 AND r.key = e.value ->> 1 AND r.writer = ?3)
ON CONFLICT (dataset, key, event_id) DO NOTHING`;

// The same, naming each row it logged (not those already logged): which facts a write counted.
const LOG_MANY_RETURNING = `${LOG_MANY}
RETURNING dataset, key, event_id`;

const j = JSON.stringify;

/** Values longer than this (in UTF-16 units) go nested: escaped, one near the 1 MB record limit (src/ingest/apply.ts) could pass D1's 2 MB per string. */
const NESTED_FROM = 100_000;

/**
 * A value as a row's member: its JSON text as a JSON string (null for none), which `->>` hands back
 * as that text. Nested as JSON, SQLite rebuilds the text node by node from its parse of the row
 * (fields, and each float of a vector): 2.6 times the records statement's time for rows of 1.3 KB
 * (scripts/bench/sqlite-json-shape.ts). As a string, though, a value can take up to twice its
 * characters (each quote or backslash in it escaped again), and D1 takes strings of at most 2 MB:
 * a value past NESTED_FROM characters travels nested, which `->>` turns into the same text.
 */
const valueMember = (value: Record<string, unknown> | null): string => {
	if (value === null) return "null";
	const text = valueJson(value);
	return text.length > NESTED_FROM ? text : j(text);
};

// Rows are JSON arrays built as text so that a value's JSON, the bulk of a row, is the text
// valueJson already made for it (once per object) rather than a fresh serialisation per row.
const logRow = (dataset: string, key: string, e: LoggedEvent, conditional: boolean, aggVersion: number | undefined, sameAsRecord = false): string =>
	`[${j(dataset)},${j(key)},${e.time},${j(e.id)},${j(e.op)},${sameAsRecord ? "null" : valueMember(e.value ?? null)},${conditional ? 1 : 0},${aggVersion ?? "null"},${sameAsRecord ? 1 : 0}]`;

/** Whether a write's state is exactly its one event's value: an upsert onto nothing that survives it. */
const stateIsItsEvent = (w: StateWrite): boolean => {
	const e = w.events[0];
	const s = w.state;
	return (
		w.events.length === 1 &&
		e !== undefined &&
		e.op === "upsert" &&
		e.value !== undefined &&
		s.value !== null &&
		s.base?.[0] === e.time &&
		s.base[1] === e.id &&
		Object.keys(s.fieldClocks).length === 0 &&
		sameJson(s.value, e.value)
	);
};

/**
 * Whether two values serialise to the same JSON text: the same fields in the same order, each the
 * same JSON value. An upsert's state is a shallow copy of its event's value, so comparing fields
 * by identity settles it without serialising the event's value a second time; values that are
 * equal but not identical compare unequal, and the log row then carries its own copy.
 */
function sameJson(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
	if (a === b) return true;
	const fields = Object.keys(a);
	const others = Object.keys(b);
	if (fields.length !== others.length) return false;
	for (let i = 0; i < fields.length; i++) {
		const f = fields[i] as string;
		if (f !== others[i] || a[f] !== b[f]) return false;
	}
	return true;
}

/**
 * A tile's sums as JSON. A sum past the largest double is infinite, which JSON has no number for:
 * it goes as JSON5's Infinity, which SQLite's JSON reads as the REAL its own total() would have
 * made of the same facts (and a read answers null).
 */
const tileSumJson = ([dataset, key, agg, res, start, cnt, sum, mn, mx]: TileSum): string =>
	`[${j(dataset)},${j(key)},${j(agg)},${res},${start},${cnt},${Number.isFinite(sum) ? sum : sum > 0 ? "Infinity" : "-Infinity"},${j(mn)},${j(mx)}]`;

/** How `writeStates` names a logged event. */
export const loggedId = (dataset: string, key: string, id: string): string => `${dataset}\u0000${key}\u0000${id}`;

/** A random token for one write: 52 bits, so it is an exact SQLite integer and a safe JS number. */
const writeToken = (): number => Math.floor(Math.random() * 2 ** 52);

/**
 * Writes merged states, each only if the row is still at the revision it was merged onto and none
 * of its events was applied meanwhile, and logs every event in the same transaction. So two
 * consumers working on one key cannot overwrite each other, and an event is in the log exactly
 * when the state it went into is in D1. Returns, per write, the new revision, or null when another
 * writer got there first. Throws when D1 refuses the batch (nothing of it is applied then).
 * Given `logged`, adds to it `loggedId(dataset, key, id)` of each event this write logged.
 */
export async function writeStates(
	db: D1Database,
	writes: readonly StateWrite[],
	logOnly: readonly LogOnly[] = [],
	now = Date.now(),
	logged?: Set<string>,
): Promise<(number | null)[]> {
	const token = writeToken();
	const recordRows = writes.map((w) => {
		const s = w.state;
		const ids = j(w.events.map((e) => e.id));
		return `[${j(w.dataset)},${j(w.key)},${valueMember(s.value)},${j(s.base?.[0] ?? null)},${j(s.base?.[1] ?? null)},${s.baseDeleted ? 1 : 0},${j(s.fieldClocks)},${s.clock[0]},${j(s.clock[1])},${(w.prevRev ?? 0) + 1},${ids}]`;
	});
	const logRows: string[] = [];
	for (const w of writes) {
		const same = stateIsItsEvent(w);
		for (const e of w.events) logRows.push(logRow(w.dataset, w.key, e, true, w.aggVersion, same));
	}
	for (const l of logOnly) for (const e of l.events) logRows.push(logRow(l.dataset, l.key, e, false, l.aggVersion));

	const writeStmts = packRows(recordRows).map((json) => db.prepare(WRITE_MANY).bind(json, now, token));
	const logStmts = packRows(logRows).map((json) => db.prepare(logged ? LOG_MANY_RETURNING : LOG_MANY).bind(json, now, token));
	// Tiles after the log rows they join on.
	const rowsOf = (rows: readonly unknown[][]) => packRows(rows.map((r) => j(r)));
	const tileSums = tileSumStatements(db, packRows(writes.flatMap((w) => (w.tiles ?? []).map(tileSumJson))), rowsOf(writes.flatMap((w) => w.hll ?? [])), token);
	const factTiles = tileStatements(db, rowsOf(logOnly.flatMap((l) => l.tiles ?? [])), rowsOf(logOnly.flatMap((l) => l.hll ?? [])), token);
	const stmts = [...writeStmts, ...logStmts, ...tileSums, ...factTiles];
	if (!stmts.length) return [];
	// One batch is one transaction: the states and their log rows commit together or not at all.
	const results = await db.batch<{ dataset: string; key: string; rev: number }>(stmts);
	const written = new Map<string, number>();
	for (const res of results.slice(0, writeStmts.length)) for (const r of res.results) written.set(recordCacheKey(r.dataset, r.key), r.rev);
	if (logged) {
		const rows = results.slice(writeStmts.length, writeStmts.length + logStmts.length) as unknown as D1Result<{
			dataset: string;
			key: string;
			event_id: string;
		}>[];
		for (const res of rows) for (const r of res.results) logged.add(loggedId(r.dataset, r.key, r.event_id));
	}
	return writes.map((w) => {
		const rev = written.get(recordCacheKey(w.dataset, w.key));
		return rev === (w.prevRev ?? 0) + 1 ? rev : null;
	});
}

// A value rewritten in place (derived fields brought up to date), only while the row is still at
// the revision it was read at: a write meanwhile wins, as it derived the fields itself. The merge
// state is otherwise unchanged (derived fields are in no field clock), so the merge rules hold.
// A record the new value would take past the size limit (value and field clocks, in UTF-8 bytes) is left as it is.
const REWRITE_VALUES = `UPDATE records SET value = w.value ->> 2, rev = records.rev + 1, updated_at = ?1
FROM json_each(?2) AS w
WHERE records.dataset = w.value ->> 0 AND records.key = w.value ->> 1 AND records.rev = w.value ->> 3
  AND length(CAST(w.value ->> 2 AS BLOB)) + length(CAST(records.field_clocks AS BLOB)) <= ?3
RETURNING records.key AS key, records.rev AS rev`;

/**
 * Rewrites the values of records of one dataset that are still at the given revisions and stay
 * within `maxBytes`; returns the new revision of each rewritten key.
 */
export async function rewriteValues(
	db: D1Database,
	dataset: string,
	rows: readonly { key: string; value: Record<string, unknown>; rev: number }[],
	maxBytes: number,
	now = Date.now(),
): Promise<Map<string, number>> {
	const packed = packRows(rows.map((r) => `[${j(dataset)},${j(r.key)},${valueMember(r.value)},${r.rev}]`));
	if (!packed.length) return new Map();
	const results = await db.batch<{ key: string; rev: number }>(packed.map((json) => db.prepare(REWRITE_VALUES).bind(now, json, maxBytes)));
	return new Map(results.flatMap((res) => res.results.map((r) => [r.key, r.rev] as const)));
}
