/** D1 queries on the applied-event log (src/storage/schema.ts eventLog): which ids a key has applied, and retention. */

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
	const row = await db.prepare("SELECT min(seq) AS lo, max(seq) AS hi FROM event_log").first<{ lo: number | null; hi: number | null }>();
	return row?.lo == null || row.hi == null ? null : { lo: row.lo, hi: row.hi };
}

/** The first entry at or after `seq`: its seq and when it was applied. */
export function entryAtOrAfter(db: D1Database, seq: number): Promise<{ seq: number; applied_at: number } | null> {
	return db.prepare("SELECT seq, applied_at FROM event_log WHERE seq >= ?1 ORDER BY seq LIMIT 1").bind(seq).first();
}

// Entries up to `?2` (seq) whose dataset's cutoff (?1: {dataset: epoch ms}, else ?3) both their
// event_time and their application precede. An id stays deduplicated for at least the retention.
const PRUNE = `DELETE FROM event_log WHERE seq IN (
  SELECT l.seq FROM event_log AS l
  WHERE l.seq <= ?2 AND l.applied_at < coalesce(json_extract(?1, '$."' || l.dataset || '"'), ?3)
    AND l.event_time < coalesce(json_extract(?1, '$."' || l.dataset || '"'), ?3)
  ORDER BY l.seq LIMIT ?4)`;

/** Deletes up to `limit` entries past their dataset's cutoff, among seq <= `maxSeq`. Returns how many. */
export async function pruneEntries(db: D1Database, cutoffs: Record<string, number>, defaultCutoff: number, maxSeq: number, limit: number): Promise<number> {
	const res = await db.prepare(PRUNE).bind(JSON.stringify(cutoffs), maxSeq, defaultCutoff, limit).run();
	return res.meta.changes ?? 0;
}
