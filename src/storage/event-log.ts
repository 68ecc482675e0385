/** D1 queries on the applied-event log (src/storage/schema.ts eventLog) and its bases: applied ids, history, retention. */
import { packRows } from "./json-rows";
import type { RecordState } from "./record-state";

/** The statement that finds which of (dataset, key, id) the log holds. */
export function appliedIdsStatement(db: D1Database, refs: readonly (readonly [dataset: string, key: string, id: string])[]): D1PreparedStatement {
	return db
		.prepare("SELECT dataset, key, event_id FROM event_log WHERE (dataset, key, event_id) IN (SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1))")
		.bind(JSON.stringify(refs));
}

export interface AppliedIdRow {
	dataset: string;
	key: string;
	event_id: string;
}

/** The lowest and highest seq in the log, or null when it is empty. */
export async function logBounds(db: D1Database): Promise<{ lo: number; hi: number } | null> {
	// One subquery each: SQLite reads min() or max() of the rowid off the table's ends only when it is
	// a query's sole aggregate; both in one SELECT scanned the whole log (every cron run).
	const row = await db
		.prepare("SELECT (SELECT min(seq) FROM event_log) AS lo, (SELECT max(seq) FROM event_log) AS hi")
		.first<{ lo: number | null; hi: number | null }>();
	return row?.lo == null || row.hi == null ? null : { lo: row.lo, hi: row.hi };
}

/** The first entry at or after `seq`: its seq and when it was applied. */
export function entryAtOrAfter(db: D1Database, seq: number): Promise<{ seq: number; applied_at: number } | null> {
	return db.prepare("SELECT seq, applied_at FROM event_log WHERE seq >= ?1 ORDER BY seq LIMIT 1").bind(seq).first();
}

/** An applied event as the log keeps it. */
export interface LogEntry {
	time: number;
	id: string;
	op: "upsert" | "patch" | "delete";
	value: Record<string, unknown> | null;
}

/** What history of one key the log holds: the state of what was pruned (if anything), and the retained events in order. */
export interface KeyHistory {
	base: RecordState | null;
	/** The latest event_time folded into the base: up to it, the log cannot tell states apart. */
	baseThrough?: number;
	entries: LogEntry[];
}

interface LogRow {
	dataset: string;
	key: string;
	event_time: number;
	event_id: string;
	op: LogEntry["op"];
	value: string | null;
}

// CROSS JOIN keeps the keys as the outer loop, each a range of event_log_time: with statistics
// (ANALYZE) from a log of few keys per dataset, the planner otherwise chose to scan the whole log.
const LOGS_OF_KEYS = `SELECT l.dataset, l.key, l.event_time, l.event_id, l.op, l.value
FROM (SELECT DISTINCT value ->> 0 AS dataset, value ->> 1 AS key FROM json_each(?1)) AS r
  CROSS JOIN event_log AS l ON l.dataset = r.dataset AND l.key = r.key AND l.event_time <= ?2
ORDER BY l.dataset, l.key, l.event_time, l.event_id`;
const BASES_OF_KEYS = "SELECT dataset, key, state, through_time FROM history_base WHERE (dataset, key) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?1))";

const refKey = (dataset: string, key: string) => `${dataset}\u0000${key}`;

/**
 * The history of many keys up to `untilTime` (inclusive), in one round trip: each key's base
 * (the pruned part) and its retained events in (event_time, event_id) order. Keyed by dataset and key.
 */
export async function historyOfKeys(db: D1Database, refs: readonly { dataset: string; key: string }[], untilTime: number): Promise<Map<string, KeyHistory>> {
	const json = JSON.stringify(refs.map((r) => [r.dataset, r.key]));
	const [logs, bases] = await db.batch([db.prepare(LOGS_OF_KEYS).bind(json, untilTime), db.prepare(BASES_OF_KEYS).bind(json)]);
	const out = new Map<string, KeyHistory>();
	for (const r of refs) out.set(refKey(r.dataset, r.key), { base: null, entries: [] });
	for (const b of (bases?.results ?? []) as { dataset: string; key: string; state: string; through_time: number }[]) {
		const h = out.get(refKey(b.dataset, b.key));
		if (h) {
			h.base = JSON.parse(b.state) as RecordState;
			h.baseThrough = b.through_time;
		}
	}
	for (const row of (logs?.results ?? []) as LogRow[]) {
		out.get(refKey(row.dataset, row.key))?.entries.push({
			time: row.event_time,
			id: row.event_id,
			op: row.op,
			value: row.value === null ? null : (JSON.parse(row.value) as Record<string, unknown>),
		});
	}
	return out;
}

export const historyKey = refKey;

// What a fold needs of each (key, as_of) pair of ?1 (a JSON array of [key, epoch ms] of dataset
// ?2), in one statement: the key's base (the state of its pruned events) and its retained events up
// to that pair's time, unordered (the fold does not depend on order), naming the pair by its index
// in ?1. Rows come back as arrays (raw): per row, not per byte, is what a result costs here. CROSS
// JOIN keeps the pairs as the outer loop; left to itself the planner may scan the dataset's whole
// log and probe the keys. A base row carries its through_time in the event_id column: the latest
// event_time folded into it.
const AS_OF_ROWS = `SELECT j.key, NULL, b.through_time, NULL, b.state FROM json_each(?1) AS j CROSS JOIN history_base AS b ON b.dataset = ?2 AND b.key = j.value ->> 0
UNION ALL
SELECT j.key, l.event_time, l.event_id, l.op, l.value FROM json_each(?1) AS j CROSS JOIN event_log AS l ON l.dataset = ?2 AND l.key = j.value ->> 0
WHERE l.event_time <= j.value ->> 1`;

type AsOfRow = [index: number, time: number | null, id: string | number | null, op: LogEntry["op"] | null, json: string | null];

/**
 * What folding each (key, time) pair of one dataset needs, per pair in the order given: the key's
 * base (with `baseThrough`) and its retained events up to that time, in no particular order. A base
 * holds every event the retention folded, whatever their times, so it stands for the state as of
 * a time only when `baseThrough <= time`; the caller checks.
 */
export async function foldInputsAsOf(db: D1Database, dataset: string, pairs: readonly (readonly [key: string, untilTime: number])[]): Promise<KeyHistory[]> {
	const out: KeyHistory[] = pairs.map(() => ({ base: null, entries: [] }));
	const rows = await db.prepare(AS_OF_ROWS).bind(JSON.stringify(pairs), dataset).raw<AsOfRow>();
	for (const [i, time, id, op, json] of rows) {
		const h = out[i];
		if (!h) continue;
		if (time === null) {
			h.base = JSON.parse(json as string) as RecordState;
			h.baseThrough = Number(id);
		} else h.entries.push({ time, id: id as string, op: op as LogEntry["op"], value: json === null ? null : (JSON.parse(json) as Record<string, unknown>) });
	}
	return out;
}

// One dataset's (?1) entries after `?5` and up to `?2` (seq) whose event_time and application both
// precede its cutoff (?3): an id stays deduplicated for at least the retention. First their seqs
// and value sizes only; then the values of as many as fit the caller's budget. The walk goes
// through the (dataset, seq) index, so it reads that dataset's entries only: those of a dataset
// with a longer history, kept, are not read again on each run.
const PRUNE_CANDIDATES = `SELECT l.seq, coalesce(length(CAST(l.value AS BLOB)), 0) AS bytes FROM event_log AS l INDEXED BY event_log_dataset
WHERE l.dataset = ?1 AND l.seq > ?5 AND l.seq <= ?2 AND l.applied_at < ?3 AND l.event_time < ?3
ORDER BY l.seq LIMIT ?4`;
// The datasets the log holds entries of, one index seek each (a skip scan of the (dataset, seq)
// index): a dataset whose spec was deleted still has entries to prune.
const LOGGED_DATASETS = `WITH RECURSIVE d(name) AS (
  SELECT (SELECT min(dataset) FROM event_log)
  UNION ALL SELECT (SELECT min(dataset) FROM event_log WHERE dataset > d.name) FROM d WHERE d.name IS NOT NULL
) SELECT name FROM d WHERE name IS NOT NULL`;

/** The datasets that have entries in the log. */
export async function loggedDatasets(db: D1Database): Promise<string[]> {
	const { results } = await db.prepare(LOGGED_DATASETS).all<{ name: string }>();
	return results.map((r) => r.name);
}

const ENTRIES_BY_SEQ = `SELECT l.seq, l.dataset, l.key, l.event_time, l.event_id, l.op, l.value FROM json_each(?1) AS s
  CROSS JOIN event_log AS l ON l.seq = s.value ORDER BY l.seq`;

/**
 * Up to `limit` entries of `dataset` past its `cutoff`, among `afterSeq` < seq <= `maxSeq`, oldest
 * first, whose values come to at most `maxBytes` (at least one entry, whatever its size): a chunk
 * of large records is read in parts, not all into a Worker's memory at once. `more` says whether
 * entries past the cutoff may be left (the limit or the budget stopped the chunk); `through` is the
 * last seq taken, where the next chunk starts.
 */
export async function pruneCandidates(
	db: D1Database,
	dataset: string,
	cutoff: number,
	afterSeq: number,
	maxSeq: number,
	limit: number,
	maxBytes = Number.POSITIVE_INFINITY,
): Promise<{ entries: (LogEntry & { seq: number; dataset: string; key: string })[]; more: boolean; through: number }> {
	const { results: sizes } = await db.prepare(PRUNE_CANDIDATES).bind(dataset, maxSeq, cutoff, limit, afterSeq).all<{ seq: number; bytes: number }>();
	const seqs: number[] = [];
	let bytes = 0;
	for (const s of sizes) {
		if (seqs.length && bytes + s.bytes > maxBytes) break;
		seqs.push(s.seq);
		bytes += s.bytes;
	}
	if (!seqs.length) return { entries: [], more: false, through: afterSeq };
	const { results } = await db.prepare(ENTRIES_BY_SEQ).bind(JSON.stringify(seqs)).all<LogRow & { seq: number }>();
	const entries = results.map((r) => ({
		seq: r.seq,
		dataset: r.dataset,
		key: r.key,
		time: r.event_time,
		id: r.event_id,
		op: r.op,
		value: r.value === null ? null : (JSON.parse(r.value) as Record<string, unknown>),
	}));
	return { entries, more: sizes.length === limit || seqs.length < sizes.length, through: seqs[seqs.length - 1] as number };
}

/** The bases of some keys (the state of their pruned events). */
export async function basesOf(db: D1Database, refs: readonly { dataset: string; key: string }[]): Promise<Map<string, RecordState>> {
	const { results } = await db
		.prepare(BASES_OF_KEYS)
		.bind(JSON.stringify(refs.map((r) => [r.dataset, r.key])))
		.all<{ dataset: string; key: string; state: string }>();
	return new Map(results.map((r) => [refKey(r.dataset, r.key), JSON.parse(r.state) as RecordState]));
}

const UPSERT_BASES = `INSERT INTO history_base (dataset, key, state, through_time, updated_at)
SELECT b.value ->> 0, b.value ->> 1, b.value -> 2, b.value ->> 3, ?2 FROM json_each(?1) AS b WHERE true
ON CONFLICT (dataset, key) DO UPDATE SET state = excluded.state, through_time = max(through_time, excluded.through_time), updated_at = excluded.updated_at`;
const DELETE_SEQS = "DELETE FROM event_log WHERE seq IN (SELECT value FROM json_each(?1))";

/**
 * Moves pruned entries into their keys' bases, in one transaction: the new bases are written and
 * the entries deleted together, so no event is ever in neither.
 */
export async function replaceWithBases(
	db: D1Database,
	bases: readonly { dataset: string; key: string; state: RecordState; throughTime: number }[],
	seqs: readonly number[],
	now: number,
	/** Statements that go first in the same transaction (a lease's guard: src/storage/leases.ts). */
	guard: readonly D1PreparedStatement[] = [],
): Promise<void> {
	// The bases in as many statements as D1's 2 MB per bound string needs: a chunk of large records
	// in one JSON parameter was refused every time, and the log was never pruned again.
	const rows = packRows(bases.map((b) => JSON.stringify([b.dataset, b.key, b.state, b.throughTime])));
	await db.batch([...guard, ...rows.map((json) => db.prepare(UPSERT_BASES).bind(json, now)), db.prepare(DELETE_SEQS).bind(JSON.stringify(seqs))]);
}
