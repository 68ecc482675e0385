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

// Many writes in one statement: one JSON parameter (D1 allows 100 bound parameters, but strings of
// up to 2 MB), unpacked by json_each. A key new to D1 is written with rev 1 and, if another writer
// inserted it meanwhile, left alone; a known key is updated only while D1 still holds the revision
// it was merged onto; a known key whose row is gone is not written back (the caller reloads it).
// RETURNING yields exactly the rows written. (The SELECT needs its WHERE clause anyway: without
// one SQLite would read ON CONFLICT as part of the SELECT's join.)
const WRITE_MANY = `INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at)
SELECT w.value ->> 0, w.value ->> 1, nullif(w.value -> 2, 'null'), w.value ->> 3, w.value ->> 4, w.value ->> 5, w.value -> 6, w.value ->> 7, w.value ->> 8, w.value ->> 9, ?2
FROM json_each(?1) AS w
WHERE w.value ->> 9 = 1 OR EXISTS (SELECT 1 FROM records AS r WHERE r.dataset = w.value ->> 0 AND r.key = w.value ->> 1)
ON CONFLICT (dataset, key) DO UPDATE SET value = excluded.value, base_time = excluded.base_time, base_id = excluded.base_id,
  base_deleted = excluded.base_deleted, field_clocks = excluded.field_clocks, event_time = excluded.event_time, event_id = excluded.event_id,
  rev = excluded.rev, updated_at = excluded.updated_at
WHERE records.rev = excluded.rev - 1
RETURNING dataset, key, rev`;

// Bounds on one statement: its JSON parameter stays under D1's 2 MB per string (counted in UTF-16
// units, at most 3 bytes each), and one statement's work well under D1's per-query time limit.
const WRITE_CHARS = 600_000;
const WRITE_ROWS = 500;

/**
 * Writes merged states, each only if the row is still at the revision it was merged onto, so two
 * consumers working on one key cannot overwrite each other. Each statement is atomic.
 * Returns, per write, the new revision, or null when another writer got there first.
 */
export async function writeStates(db: D1Database, writes: StateWrite[], now = Date.now()): Promise<(number | null)[]> {
	const written = new Map<string, number>();
	let rows: string[] = [];
	let chars = 0;
	const flush = async () => {
		if (!rows.length) return;
		const { results } = await db
			.prepare(WRITE_MANY)
			.bind(`[${rows.join(",")}]`, now)
			.all<{ dataset: string; key: string; rev: number }>();
		for (const r of results) written.set(recordCacheKey(r.dataset, r.key), r.rev);
		rows = [];
		chars = 0;
	};
	for (const w of writes) {
		const s = w.state;
		const row = JSON.stringify([
			w.dataset,
			w.key,
			s.value,
			s.base?.[0] ?? null,
			s.base?.[1] ?? null,
			s.baseDeleted ? 1 : 0,
			s.fieldClocks,
			s.clock[0],
			s.clock[1],
			(w.prevRev ?? 0) + 1,
		]);
		if (rows.length && (rows.length >= WRITE_ROWS || chars + row.length > WRITE_CHARS)) await flush();
		rows.push(row);
		chars += row.length;
	}
	await flush();
	return writes.map((w) => {
		const rev = written.get(recordCacheKey(w.dataset, w.key));
		return rev === (w.prevRev ?? 0) + 1 ? rev : null;
	});
}
