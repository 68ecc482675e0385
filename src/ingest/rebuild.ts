/**
 * Rebuild: rewrite (refill) or drop the KV and Redis copies of a dataset from D1, the truth, a page
 * of keys at a time through the queue, with progress in D1. D1 alone can rebuild everything else.
 */
import { HotpathError } from "../errors";
import { log } from "../observability/log";
import { indexApplied } from "../search/jobs";
import type { Services } from "../services";
import { encodeRecord, recordCacheKey } from "../storage/cached-record";
import { failRebuild, failSilentRebuild, getRebuild, type RebuildRow, recordPage, startRebuild, touchRebuilds } from "../storage/rebuilds";
import { countRecords, listRecords } from "../storage/records";
import { enqueueRebuildPage, type RebuildPage } from "./producer";

/** Keys per page: each costs one KV operation, and an invocation may spend 1,000. */
export const REBUILD_PAGE_KEYS = 400;
/** Pages one consumer invocation works on; the rest of its batch comes back a second later. */
export const REBUILD_PAGES_PER_INVOCATION = 2;

export type RebuildMode = RebuildPage["mode"];

/**
 * How long a running rebuild may go without showing life (a page worked, or put off behind other
 * pages) before it counts as lost: its queued pages are gone (a dev server restarted, a message
 * dropped), nothing will finish it, and it is reported failed and may be started again. Pages are
 * retried for about a minute at most; ten minutes, as the event log pruner's lease.
 */
export const REBUILD_LEASE_MS = 10 * 60_000;

/**
 * Starts a rebuild of one dataset and queues its first page, unless one is running: that one goes
 * on (`started` false), as starting over would throw its progress away. A run silent past
 * REBUILD_LEASE_MS is not running any more and is replaced.
 */
export async function startDatasetRebuild(
	services: Services,
	dataset: string,
	mode: RebuildMode,
	now = Date.now(),
): Promise<{ row: RebuildRow; started: boolean }> {
	const { env } = services;
	const job = crypto.randomUUID();
	const run = { dataset, job, mode, totalKeys: await countRecords(env.DB, dataset), startedAt: now };
	const { row, started } = await startRebuild(env.DB, run, now - REBUILD_LEASE_MS);
	if (!started) return { row, started };
	try {
		await enqueueRebuildPage(env.EVENTS_QUEUE, { dataset, mode, job, index: 0, after: null });
	} catch (e) {
		// Nothing will work this run: its progress says so, rather than "running" for good.
		const reason = `the event queue refused the rebuild's first page (${(e as Error).message ?? e})`;
		await failRebuild(env.DB, dataset, job, reason, Date.now()).catch(() => {});
		throw new HotpathError("unavailable", `${reason}; nothing was rebuilt, and starting it again is safe`, { retryAfterSeconds: 1 });
	}
	return { row, started };
}

/** The dataset's latest rebuild; a running one that went silent past its lease is marked failed first, so it reads as over. */
export async function rebuildStatus(db: D1Database, dataset: string, now = Date.now()): Promise<RebuildRow | undefined> {
	const row = await getRebuild(db, dataset);
	const alive = row?.heartbeatAt ?? row?.startedAt ?? now;
	if (row?.status !== "running" || alive >= now - REBUILD_LEASE_MS) return row;
	const reason = `interrupted: no progress since ${new Date(alive).toISOString()} (its queued pages were lost, as when a dev server restarts); POST the rebuild again to start it over`;
	await failSilentRebuild(db, dataset, row.job, now - REBUILD_LEASE_MS, reason, now);
	return getRebuild(db, dataset);
}

/**
 * Works one page: rewrites or drops its keys' copies, queues the next page, and counts this one.
 * Pages carry their number, so a page delivered twice counts once and does not fork the run.
 */
export async function rebuildPage(services: Services, page: RebuildPage, now = Date.now()): Promise<void> {
	const { env } = services;
	// Pages queued before pages were numbered have none; a first page's is 0.
	const index = page.index ?? 0;
	const run = await getRebuild(env.DB, page.dataset);
	if (run?.job !== page.job || run.status !== "running") return; // a newer run replaced this one, or it is over
	if (run.pagesDone > index) return; // delivered again after it was counted
	if (run.pagesDone < index) {
		// Queued by the page before, whose count has not landed yet (it is being retried): wait for it,
		// though not past the run's lease, when the page before is lost for good.
		if ((run.heartbeatAt ?? run.startedAt) >= now - REBUILD_LEASE_MS) await enqueueRebuildPage(env.EVENTS_QUEUE, page, 1);
		return;
	}
	const records = await listRecords(env.DB, page.dataset, page.after, REBUILD_PAGE_KEYS, true);
	const cks = records.map((r) => recordCacheKey(page.dataset, r.key));
	if (page.mode === "refill") {
		const ttl = (await services.registry.get(page.dataset))?.ttl_seconds;
		await Promise.all([
			...records.map((r, i) => env.RECORDS_KV.put(cks[i] as string, encodeRecord(r.rec), { expirationTtl: services.kv.fillTtlSeconds })),
			// Counted as changes: a refill repairs copies an outage left behind, and L0 copies taken from them must reload.
			// What D1 holds now: it replaces a copy of the same revision that differs (a row edited directly in D1).
			services.redis?.write(records.map((r, i) => ({ ck: cks[i] as string, rec: r.rec, ttlSeconds: ttl, dataset: page.dataset, fromD1: true }))),
			// The search index too (revision-guarded); drop leaves it: it serves no values, only rankings.
			// SEARCH_DB refusing hands the keys to refresh messages (indexed from D1 later), as after any write.
			indexApplied(
				services,
				records.map((r) => ({ dataset: page.dataset, key: r.key, rec: r.rec })),
			),
		]);
	} else {
		// Counted as changes too: a drop is how a direct D1 edit reaches the caches, L0 copies included.
		await Promise.all([...cks.map((ck) => env.RECORDS_KV.delete(ck)), services.redis?.drop(cks, page.dataset)]);
	}
	const last = records[records.length - 1]?.key ?? null;
	const done = records.length < REBUILD_PAGE_KEYS;
	// The next page is queued before this one is counted: if counting fails, this page is retried and
	// counts once (the next waits for it); counted first, a failed send would leave the run waiting for
	// a page nobody queued. A next page queued twice is worked once.
	if (!done) await enqueueRebuildPage(env.EVENTS_QUEUE, { ...page, index: index + 1, after: last });
	await recordPage(env.DB, { ...page, index }, records.length, now, done);
}

/** Marks the runs of pages put off behind others alive; a failure only costs that sign of life, not the pages. */
export async function keepRebuildsAlive(services: Services, jobs: string[], now = Date.now()): Promise<void> {
	await touchRebuilds(services.env.DB, [...new Set(jobs)], now).catch((e: unknown) => log.warn("rebuild heartbeat not written", { error: String(e) }));
}

/** A page that kept failing: the run is marked failed with the reason. */
export async function failRebuildPage(services: Services, page: RebuildPage, error: string): Promise<void> {
	log.error("rebuild page kept failing; the rebuild is marked failed", { dataset: page.dataset, job: page.job, error });
	await failRebuild(services.env.DB, page.dataset, page.job, error, Date.now());
}
