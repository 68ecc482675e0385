/**
 * The stored shape of a record's merge state: its value and the clocks the merge rules need.
 * The rules themselves live in src/ingest/merge.ts; storage only keeps and returns this shape.
 */

/** (event_time ms, event id): orders events; a tie on time breaks on id. */
export type Clock = readonly [time: number, id: string];

/**
 * Orders clocks by time, then by id compared as JS strings (UTF-16 code units, not SQLite's UTF-8
 * bytes): the order the merge rules (src/ingest/merge.ts), history and last_n all follow.
 */
export function compareClocks(a: Clock, b: Clock): number {
	if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
	return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

export interface RecordState {
	/** The materialised value, or null for a tombstone. */
	value: Record<string, unknown> | null;
	/** Clock of the newest upsert or delete, if any. */
	base: Clock | null;
	baseDeleted: boolean;
	/** Clocks of fields patched after the base; their values are in `value`. */
	fieldClocks: Record<string, Clock>;
	/** Clock of the newest event applied. */
	clock: Clock;
}
