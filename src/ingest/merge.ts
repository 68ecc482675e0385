/**
 * The merge rules. Folding events with `applyEvent` gives the same state whatever order they
 * arrive in and however often each arrives, equal to applying each distinct event once in
 * (event_time, id) order:
 *
 * - Every event has a clock (time, id). Ties on time break on id, compared as strings, the
 *   larger winning, so two events never tie unless they are the same event.
 * - An upsert or a delete is a "base": it replaces the whole record. Only the newest base
 *   counts, so a late older upsert cannot bring back a deleted record (the delete's base clock
 *   stays as a tombstone).
 * - A patch writes each of its fields under the patch's clock. A field keeps the value of
 *   whichever is newer: the base, or the newest patch that wrote it. So a patch older than the
 *   base is lost (in order, the base would have overwritten it), and an upsert older than a
 *   patch keeps that patch's fields on top.
 * - Applying an event whose clock is not newer than what it would overwrite changes nothing,
 *   which makes redelivery harmless.
 */
import { type Clock, compareClocks, type RecordState } from "../storage/record-state";

export { type Clock, compareClocks, type RecordState };

export type Op = "upsert" | "patch" | "delete";

export interface ChangeEvent {
	id: string;
	dataset: string;
	key: string;
	op: Op;
	/** Fields for upsert and patch; absent for delete. */
	value?: Record<string, unknown>;
	/** event_time in epoch ms. */
	time: number;
}

const newer = (a: Clock, b: Clock | null | undefined) => !b || compareClocks(a, b) > 0;

/**
 * Folds one event into a state. Returns the same object when the event changes nothing
 * (a duplicate, or older than everything it touches), so callers can skip the write.
 */
export function applyEvent(state: RecordState | null, e: ChangeEvent): RecordState | null {
	const clock: Clock = [e.time, e.id];
	if (e.op === "patch") return applyPatch(state, clock, e.value ?? {});
	if (state && !newer(clock, state.base)) return state;

	// A new base. Fields patched after it survive on top of it.
	const fieldClocks: Record<string, Clock> = {};
	let value: Record<string, unknown> | null = e.op === "upsert" ? { ...e.value } : null;
	if (state) {
		for (const [field, fc] of Object.entries(state.fieldClocks)) {
			if (!newer(fc, clock)) continue;
			fieldClocks[field] = fc;
			value ??= {};
			value[field] = state.value?.[field] ?? null;
		}
	}
	return {
		value,
		base: clock,
		baseDeleted: e.op === "delete",
		fieldClocks,
		clock: state && !newer(clock, state.clock) ? state.clock : clock,
	};
}

function applyPatch(state: RecordState | null, clock: Clock, fields: Record<string, unknown>): RecordState | null {
	if (state && !newer(clock, state.base)) return state;
	let next: RecordState | null = null;
	for (const [field, v] of Object.entries(fields)) {
		if (!newer(clock, (next ?? state)?.fieldClocks[field])) continue;
		next ??= state
			? { ...state, value: { ...state.value }, fieldClocks: { ...state.fieldClocks } }
			: { value: {}, base: null, baseDeleted: false, fieldClocks: {}, clock };
		(next.value as Record<string, unknown>)[field] = v;
		next.fieldClocks[field] = clock;
	}
	if (!next) return state;
	if (newer(clock, next.clock)) next.clock = clock;
	return next;
}
