/**
 * Retention of the applied-event log: entries older than their dataset's `history_days` (both by
 * event_time and by when they were applied) leave the log, a bounded amount per cron run. They are
 * folded into their key's base first, in the same transaction, so history and point-in-time reads
 * within the retention stay exact; current records are never touched. The log grows in application
 * order (seq), so the prune walks it from the oldest entry and stops where every cutoff is passed.
 */
import { log } from "../observability/log";
import { type DatasetSpec, DEFAULT_HISTORY_DAYS } from "../registry/spec";
import { basesOf, entryAtOrAfter, historyKey, logBounds, pruneCandidates, replaceWithBases } from "../storage/event-log";
import type { RecordState } from "../storage/record-state";
import { foldEntries } from "./fold";

export const DAY_MS = 86_400_000;
const CHUNK = 2000;

/** Where a dataset's history begins: events before it may have been folded into bases. */
export const historyStart = (spec: DatasetSpec, now: number): number => now - spec.history_days * DAY_MS;

/** Prunes the log; returns how many entries went. At most `maxChunks` chunks of CHUNK entries per run. */
export async function pruneEventLog(db: D1Database, specs: ReadonlyMap<string, DatasetSpec>, now = Date.now(), maxChunks = 20): Promise<number> {
	const bounds = await logBounds(db);
	if (!bounds) return 0;
	const cutoffs: Record<string, number> = {};
	const defaultCutoff = now - DEFAULT_HISTORY_DAYS * DAY_MS;
	let latestCutoff = defaultCutoff;
	for (const spec of specs.values()) {
		cutoffs[spec.name] = historyStart(spec, now);
		latestCutoff = Math.max(latestCutoff, cutoffs[spec.name] as number);
	}
	const maxSeq = await lastSeqAppliedBefore(db, bounds, latestCutoff);
	if (maxSeq === null) return 0;
	let pruned = 0;
	for (let i = 0; i < maxChunks; i++) {
		const entries = await pruneCandidates(db, cutoffs, defaultCutoff, maxSeq, CHUNK);
		if (!entries.length) break;
		const byKey = new Map<string, typeof entries>();
		for (const e of entries) {
			const k = historyKey(e.dataset, e.key);
			const list = byKey.get(k);
			if (list) list.push(e);
			else byKey.set(k, [e]);
		}
		const refs = [...byKey.values()].map((list) => ({ dataset: (list[0] as (typeof entries)[0]).dataset, key: (list[0] as (typeof entries)[0]).key }));
		const bases = await basesOf(db, refs);
		const next: { dataset: string; key: string; state: RecordState; throughTime: number }[] = [];
		for (const [k, list] of byKey) {
			const { dataset, key } = list[0] as (typeof entries)[0];
			const state = foldEntries(dataset, key, bases.get(k) ?? null, list);
			if (state) next.push({ dataset, key, state, throughTime: Math.max(...list.map((e) => e.time)) });
		}
		await replaceWithBases(
			db,
			next,
			entries.map((e) => e.seq),
			now,
		);
		pruned += entries.length;
		if (entries.length < CHUNK) break;
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
