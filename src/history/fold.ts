/** Folding logged events under the merge rules: the state a key had after a given event, or as of a given time. */
import { applyEvent, type ChangeEvent, type RecordState } from "../ingest/merge";
import type { LogEntry } from "../storage/event-log";

const toEvent = (dataset: string, key: string, e: LogEntry): ChangeEvent =>
	e.value === null ? { id: e.id, dataset, key, op: e.op, time: e.time } : { id: e.id, dataset, key, op: e.op, time: e.time, value: e.value };

/** Folds entries (in any order: the merge rules do not depend on it) onto a state. */
export function foldEntries(dataset: string, key: string, base: RecordState | null, entries: readonly LogEntry[]): RecordState | null {
	let state = base;
	for (const e of entries) state = applyEvent(state, toEvent(dataset, key, e));
	return state;
}

/** The state after each entry, entries in (event_time, event_id) order: a late event changes every state after it. */
export function* statesAfterEach(
	dataset: string,
	key: string,
	base: RecordState | null,
	entries: readonly LogEntry[],
): Generator<{ entry: LogEntry; state: RecordState | null }> {
	let state = base;
	for (const entry of entries) {
		state = applyEvent(state, toEvent(dataset, key, entry));
		yield { entry, state };
	}
}
