/**
 * Retention of the applied-event log: entries older than their dataset's `history_days` (both by
 * event_time and by when they were applied) are deleted by the Cron Trigger, a bounded amount per
 * run. Current records are never touched. The log grows in application order (seq), so the prune
 * walks it from the oldest entry and stops where entries become younger than every cutoff.
 */
import { log } from "../observability/log";
import { type DatasetSpec, DEFAULT_HISTORY_DAYS } from "../registry/spec";
import { entryAtOrAfter, logBounds, pruneEntries } from "../storage/event-log";

const DAY_MS = 86_400_000;
const CHUNK = 5000;

/** Prunes the log; returns how many entries went. At most `maxChunks` statements of CHUNK deletions per run. */
export async function pruneEventLog(db: D1Database, specs: ReadonlyMap<string, DatasetSpec>, now = Date.now(), maxChunks = 20): Promise<number> {
	const bounds = await logBounds(db);
	if (!bounds) return 0;
	const cutoffs: Record<string, number> = {};
	let latestCutoff = now - DEFAULT_HISTORY_DAYS * DAY_MS;
	for (const spec of specs.values()) {
		const cutoff = now - spec.history_days * DAY_MS;
		cutoffs[spec.name] = cutoff;
		latestCutoff = Math.max(latestCutoff, cutoff);
	}
	const maxSeq = await lastSeqAppliedBefore(db, bounds, latestCutoff);
	if (maxSeq === null) return 0;
	let pruned = 0;
	for (let i = 0; i < maxChunks; i++) {
		const n = await pruneEntries(db, cutoffs, now - DEFAULT_HISTORY_DAYS * DAY_MS, maxSeq, CHUNK);
		pruned += n;
		if (n < CHUNK) break;
	}
	if (pruned) log.info("pruned the event log", { pruned, max_seq: maxSeq });
	return pruned;
}

/**
 * The last seq applied before `cutoff`, found by bisection over seq (application times grow with
 * it), or null when even the oldest entry is younger. A few point reads instead of an index on time.
 */
async function lastSeqAppliedBefore(db: D1Database, bounds: { lo: number; hi: number }, cutoff: number): Promise<number | null> {
	let lo = bounds.lo;
	let hi = bounds.hi;
	const first = await entryAtOrAfter(db, lo);
	if (!first || first.applied_at >= cutoff) return null;
	// Invariant: the entry at or after lo was applied before the cutoff.
	while (lo < hi) {
		const mid = lo + Math.ceil((hi - lo) / 2);
		const e = await entryAtOrAfter(db, mid);
		if (e && e.applied_at < cutoff) lo = e.seq;
		else hi = mid - 1;
	}
	return lo;
}
