/**
 * The stored shape of a record's merge state: its value and the clocks the merge rules need.
 * The rules themselves live in src/ingest/merge.ts; storage only keeps and returns this shape.
 */

/** (event_time ms, event id): orders events; a tie on time breaks on id. */
export type Clock = readonly [time: number, id: string];

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
