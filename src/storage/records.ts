/** D1 queries for records: batch reads with json_each and optimistic, revision-checked writes. No policy here. */
import type { Clock, RecordState } from "../ingest/merge";
import { type CachedRecord, recordCacheKey } from "./cached-record";

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

/** Full merge state of many keys of one dataset, in one statement. */
export async function loadStates(db: D1Database, dataset: string, keys: string[]): Promise<Map<string, StoredState>> {
	const { results } = await db
		.prepare(
			"SELECT key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev FROM records WHERE dataset = ?1 AND key IN (SELECT value FROM json_each(?2))",
		)
		.bind(dataset, JSON.stringify(keys))
		.all<StateRow>();
	const out = new Map<string, StoredState>();
	for (const row of results) {
		out.set(row.key, {
			rev: row.rev,
			state: {
				value: row.value === null ? null : (JSON.parse(row.value) as Record<string, unknown>),
				base: row.base_time === null ? null : [row.base_time, row.base_id ?? ""],
				baseDeleted: row.base_deleted === 1,
				fieldClocks: JSON.parse(row.field_clocks) as Record<string, Clock>,
				clock: [row.event_time, row.event_id],
			},
		});
	}
	return out;
}

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

/** What the read path needs of many records, in one statement. Keyed by cache key; missing records are absent. */
export async function readRecords(db: D1Database, refs: { dataset: string; key: string; ck: string }[]): Promise<Map<string, CachedRecord>> {
	const first = refs[0];
	if (!first) return new Map();
	const stmt =
		refs.length === 1 ? db.prepare(READ_ONE).bind(first.dataset, first.key) : db.prepare(READ_MANY).bind(JSON.stringify(refs.map((r) => [r.dataset, r.key])));
	const { results } = await stmt.all<ReadRow>();
	const out = new Map<string, CachedRecord>();
	for (const row of results) {
		out.set(recordCacheKey(row.dataset, row.key), {
			v: row.value === null ? null : (JSON.parse(row.value) as Record<string, unknown>),
			t: row.event_time,
			i: row.event_id,
			r: row.rev,
		});
	}
	return out;
}

export interface StateWrite {
	dataset: string;
	key: string;
	state: RecordState;
	/** The revision the state was merged onto, or null for a key D1 did not have. */
	prevRev: number | null;
}

const INSERT =
	"INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10) ON CONFLICT DO NOTHING";
const UPDATE =
	"UPDATE records SET value = ?3, base_time = ?4, base_id = ?5, base_deleted = ?6, field_clocks = ?7, event_time = ?8, event_id = ?9, rev = rev + 1, updated_at = ?10 WHERE dataset = ?1 AND key = ?2 AND rev = ?11";

// Statements per db.batch call. Each statement binds 11 parameters, well under D1's 100.
const STATEMENTS_PER_BATCH = 100;

/**
 * Writes merged states, each only if the row is still at the revision it was merged onto, so two
 * consumers working on one key cannot overwrite each other. Each db.batch is one transaction.
 * Returns, per write, the new revision, or null when another writer got there first.
 */
export async function writeStates(db: D1Database, writes: StateWrite[], now = Date.now()): Promise<(number | null)[]> {
	const insert = db.prepare(INSERT);
	const update = db.prepare(UPDATE);
	const out: (number | null)[] = [];
	for (let i = 0; i < writes.length; i += STATEMENTS_PER_BATCH) {
		const chunk = writes.slice(i, i + STATEMENTS_PER_BATCH);
		const stmts = chunk.map((w) => {
			const s = w.state;
			const args = [
				w.dataset,
				w.key,
				s.value === null ? null : JSON.stringify(s.value),
				s.base?.[0] ?? null,
				s.base?.[1] ?? null,
				s.baseDeleted ? 1 : 0,
				JSON.stringify(s.fieldClocks),
				s.clock[0],
				s.clock[1],
				now,
			];
			return w.prevRev === null ? insert.bind(...args) : update.bind(...args, w.prevRev);
		});
		const results = await db.batch(stmts);
		chunk.forEach((w, j) => {
			out.push(results[j]?.meta.changes === 1 ? (w.prevRev ?? 0) + 1 : null);
		});
	}
	return out;
}
