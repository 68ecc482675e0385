/**
 * Point-in-time reads: the state that all events with event_time <= as_of produce under the merge
 * rules, late arrivals included, computed from the event log for many keys per statement. Never
 * from a cache tier: caches hold only current values.
 */
import { HotpathError } from "../errors";
import type { DatasetSpec } from "../registry/spec";
import { type FreshnessOptions, type RecordView, viewRecord } from "../serving/freshness";
import type { LookupRequest } from "../serving/lookup";
import { NOT_FOUND } from "../serving/tier";
import type { CachedRecord } from "../storage/cached-record";
import { foldInputsAsOf } from "../storage/event-log";
import { foldEntries } from "./fold";
import { historyStart } from "./retention";

/** Keys per statement of an as-of read. */
const KEYS_PER_READ = 200;

/** Refuses an as_of before where a dataset's history begins, saying where that is. */
export function assertWithinHistory(spec: DatasetSpec, asOfMs: number, now = Date.now()): void {
	const start = historyStart(spec, now);
	if (asOfMs < start) {
		throw new HotpathError(
			"bad_request",
			`as_of ${new Date(asOfMs).toISOString()} is before the history of dataset "${spec.name}" begins: ${new Date(start).toISOString()} (history_days = ${spec.history_days})`,
			{ errors: [{ pointer: "as_of", detail: `history begins at ${new Date(start).toISOString()}` }] },
		);
	}
}

/**
 * The state of each key as of `asOfMs`, as a copy the renderers take (a not-found copy for a key with no history then).
 * Throws bad_request when a key's base (what the retention folded) holds an event after `asOfMs`:
 * the dataset's history_days was raised after that prune, and the log no longer knows the state then.
 */
export async function statesAsOf(db: D1Database, dataset: string, keys: readonly string[], asOfMs: number): Promise<Map<string, CachedRecord>> {
	const out = new Map<string, CachedRecord>();
	const unique = [...new Set(keys)];
	for (let i = 0; i < unique.length; i += KEYS_PER_READ) {
		const slice = unique.slice(i, i + KEYS_PER_READ);
		const inputs = await foldInputsAsOf(db, dataset, slice, asOfMs);
		const folded = inputs.flatMap((h, j) =>
			h.baseThrough !== undefined && h.baseThrough > asOfMs ? [{ key: slice[j] as string, through: h.baseThrough }] : [],
		);
		if (folded.length) {
			const through = new Date(Math.max(...folded.map((f) => f.through))).toISOString();
			const names = folded
				.slice(0, 5)
				.map((f) => JSON.stringify(f.key))
				.join(", ");
			throw new HotpathError(
				"bad_request",
				`as_of ${new Date(asOfMs).toISOString()} is before the history of key(s) ${names} in dataset "${dataset}" begins: ${through} (events up to then were folded together when history_days was shorter)`,
				{ errors: [{ pointer: "as_of", detail: `history of these keys begins at ${through}` }] },
			);
		}
		slice.forEach((key, j) => {
			const h = inputs[j];
			const state = h ? foldEntries(dataset, key, h.base, h.entries) : null;
			// The revision is not known for a past state; 1 stands for "a record" (0 is a known miss).
			out.set(key, state ? { v: state.value, t: state.clock[0], i: state.clock[1], r: 1 } : NOT_FOUND);
		});
	}
	return out;
}

/**
 * Renders as-of reads: age and staleness are counted at `as_of` (how old the value was then).
 * Throws bad_request when as_of is before a dataset's history.
 */
export async function lookupAsOf(db: D1Database, req: LookupRequest, asOfMs: number, opts: Omit<FreshnessOptions, "fields">): Promise<RecordView[]> {
	assertWithinHistory(req.spec, asOfMs);
	const states = await statesAsOf(db, req.spec.name, req.keys, asOfMs);
	return req.keys.map((key) => viewRecord(key, states.get(key) ?? NOT_FOUND, req.spec, { ...opts, fields: req.fields }, asOfMs));
}
