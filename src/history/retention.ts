/**
 * Retention of the applied-event log: entries older than their dataset's `history_days` (both by
 * event_time and by when they were applied) leave the log, a bounded amount per cron run. They are
 * folded into their key's base first, in the same transaction, so history and point-in-time reads
 * within the retention stay exact; current records are never touched. The log grows in application
 * order (seq), so the prune walks each dataset's entries from its oldest, through the (dataset, seq)
 * index, and stops where the dataset's cutoff is passed: the entries of a longer history it keeps are
 * not read on every run.
 */
import { pruneMessage } from "../ingest/producer";
import { log } from "../observability/log";
import { type DatasetSpec, DEFAULT_HISTORY_DAYS } from "../registry/spec";
import { basesOf, entryAtOrAfter, historyKey, type LogEntry, logBounds, loggedDatasets, pruneCandidates, replaceWithBases } from "../storage/event-log";
import { pruneReceipts } from "../storage/idempotency";
import { isLeaseLost, leaseGuard, releaseLease, takeLease } from "../storage/leases";
import type { RecordState } from "../storage/record-state";
import { foldEntries } from "./fold";

export const DAY_MS = 86_400_000;
const CHUNK = 2000;
/** Chunks per step of a prune: 100,000 entries, about 380 D1 statements (7 a chunk, and the bisection) of the 1,000 an invocation may make. */
export const PRUNE_CHUNKS_PER_STEP = 50;
const PRUNE_LEASE = "event-log-prune";
/** How long a step holds the prune lease (each chunk extends it): past it, a cron run takes over from a step that died. */
export const PRUNE_LEASE_MS = 10 * 60_000;
/** The most bytes of logged values a chunk reads at once (a Worker has 128 MB; 2,000 large records could pass it). */
export const PRUNE_CHUNK_BYTES = 16 * 1024 * 1024;

export interface PruneResult {
	pruned: number;
	/** Whether the step stopped at its chunk budget with entries past the cutoffs left. */
	more: boolean;
}

/**
 * One step of pruning the log: the cron starts one every few minutes (no `from`), and a step that
 * stops at its chunk budget with more to prune queues the next (`from`: its own holder), so the
 * prune keeps pace with any ingest rate instead of a fixed amount per cron run. Steps take turns
 * through a lease: a cron run finds a running prune holding it and leaves it be, a step delivered
 * twice finds it handed on, and each chunk commits only while its step holds it, so two pruners
 * never fold the same key's base at once. Returns null when another pruner holds the lease.
 */
export async function pruneStep(
	db: D1Database,
	queue: Queue<unknown>,
	specs: ReadonlyMap<string, DatasetSpec>,
	from?: string,
	now = Date.now(),
	maxChunks = PRUNE_CHUNKS_PER_STEP,
): Promise<PruneResult | null> {
	const holder = crypto.randomUUID();
	if (!(await takeLease(db, PRUNE_LEASE, holder, now, now + PRUNE_LEASE_MS, from))) return null;
	let result: PruneResult;
	try {
		result = await pruneEventLog(db, specs, now, maxChunks, () => leaseGuard(db, PRUNE_LEASE, holder, Date.now() + PRUNE_LEASE_MS));
	} catch (e) {
		// Lost to a pruner that took over an expired lease: it goes on, this one stops.
		if (isLeaseLost(e)) return { pruned: 0, more: false };
		// Free for the retry (or the next cron run) rather than held until it expires.
		await releaseLease(db, PRUNE_LEASE, holder).catch(() => {});
		throw e;
	}
	if (!result.more) {
		await releaseLease(db, PRUNE_LEASE, holder);
		return result;
	}
	try {
		// The lease stays with this holder until the next step takes it over.
		await queue.send(pruneMessage(holder), { contentType: "text" });
	} catch (e) {
		await releaseLease(db, PRUNE_LEASE, holder).catch(() => {});
		throw e;
	}
	return result;
}

/** Where a dataset's history begins: events before it may have been folded into bases. */
export const historyStart = (spec: DatasetSpec, now: number): number => now - spec.history_days * DAY_MS;

/**
 * Prunes the log: at most `maxChunks` chunks of CHUNK entries. `guard` gives statements that go
 * first in each chunk's transaction (pruneStep's lease).
 */
export async function pruneEventLog(
	db: D1Database,
	specs: ReadonlyMap<string, DatasetSpec>,
	now = Date.now(),
	maxChunks = PRUNE_CHUNKS_PER_STEP,
	guard: () => D1PreparedStatement[] = () => [],
	maxBytes = PRUNE_CHUNK_BYTES,
): Promise<PruneResult> {
	const bounds = await logBounds(db);
	if (!bounds) return { pruned: 0, more: false };
	const defaultCutoff = now - DEFAULT_HISTORY_DAYS * DAY_MS;
	// The last seq applied before each cutoff, found once per distinct cutoff.
	const lastSeqs = new Map<number, number | null>();
	const lastSeqBefore = async (cutoff: number) => {
		if (!lastSeqs.has(cutoff)) lastSeqs.set(cutoff, await lastSeqAppliedBefore(db, bounds, cutoff));
		return lastSeqs.get(cutoff) ?? null;
	};
	let pruned = 0;
	let more = false;
	let chunks = 0;
	// Dataset by dataset (a dataset with no spec, deleted, takes the default retention): each walks
	// only its own entries, and stops at the last one applied before its cutoff.
	for (const dataset of await loggedDatasets(db)) {
		const spec = specs.get(dataset);
		const cutoff = spec ? historyStart(spec, now) : defaultCutoff;
		const maxSeq = await lastSeqBefore(cutoff);
		if (maxSeq === null) continue;
		let after = bounds.lo - 1;
		for (;;) {
			if (chunks === maxChunks) {
				// Out of budget with this dataset's walk (or the next datasets') not done: the next step goes on.
				more = true;
				break;
			}
			chunks++;
			const { entries, more: left, through } = await pruneCandidates(db, dataset, cutoff, after, maxSeq, CHUNK, maxBytes);
			if (!entries.length) break;
			after = through;
			pruned += await foldIntoBases(db, entries, now, guard());
			if (!left) break;
		}
		if (more) break;
	}
	if (pruned) log.info("pruned the event log", { pruned, more });
	return { pruned, more };
}

/** Folds one chunk's entries into their keys' bases and deletes them, in one transaction; returns how many. */
async function foldIntoBases(
	db: D1Database,
	entries: (LogEntry & { seq: number; dataset: string; key: string })[],
	now: number,
	guard: D1PreparedStatement[],
): Promise<number> {
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
		guard,
	);
	return entries.length;
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

/** Receipts deleted per statement, and statements per cron run. */
const RECEIPTS_PER_DELETE = 5000;
const RECEIPT_DELETES_PER_RUN = 20;

/**
 * Prunes Idempotency-Key receipts older than the longest history_days of any dataset: past that, the
 * log no longer holds the ids a resend would be checked against, so its receipt protects nothing.
 * At most 100,000 per cron run.
 */
export async function pruneIdempotencyReceipts(db: D1Database, specs: Iterable<DatasetSpec>, now = Date.now()): Promise<number> {
	let days = DEFAULT_HISTORY_DAYS;
	for (const spec of specs) days = Math.max(days, spec.history_days);
	let pruned = 0;
	for (let i = 0; i < RECEIPT_DELETES_PER_RUN; i++) {
		const n = await pruneReceipts(db, now - days * DAY_MS, RECEIPTS_PER_DELETE);
		pruned += n;
		if (n < RECEIPTS_PER_DELETE) break;
	}
	if (pruned) log.info("pruned idempotency receipts", { pruned, older_than_days: days });
	return pruned;
}
