/**
 * Rebuild: rewrite (refill) or drop the KV and Redis copies of a dataset from D1, the truth, a page
 * of keys at a time through the queue, with progress in D1. D1 alone can rebuild everything else.
 */
import { HotpathError } from "../errors";
import { log } from "../observability/log";
import { hasDerived, withDerived } from "../registry/derived";
import type { DatasetSpec } from "../registry/spec";
import { indexApplied } from "../search/jobs";
import type { Services } from "../services";
import { type CachedRecord, encodeRecord, recordCacheKey } from "../storage/cached-record";
import { failRebuild, failSilentRebuild, getRebuild, noteRebuildRetry, type RebuildRow, recordPage, startRebuild, touchRebuilds } from "../storage/rebuilds";
import { countRecords, hasRecords, listRecords, readRecords, rewriteValues } from "../storage/records";
import { MAX_RECORD_BYTES } from "./apply";
import { enqueueRebuildPage, type RebuildPage } from "./producer";

/** Keys per page: each costs one KV operation, and an invocation may spend 1,000. */
export const REBUILD_PAGE_KEYS = 400;
/** Pages one consumer invocation works on; the rest of its batch comes back a second later. */
export const REBUILD_PAGES_PER_INVOCATION = 2;

export type RebuildMode = RebuildPage["mode"];
type ListedRecord = Awaited<ReturnType<typeof listRecords>>[number];

/**
 * How long a running rebuild may go without showing life (a page worked, or put off behind other
 * pages) before it counts as lost: its queued pages are gone (a dev server restarted, a message
 * dropped), nothing will finish it, and it is reported failed and may be started again. Pages are
 * retried for about a minute at most; ten minutes, as the event log pruner's lease.
 */
export const REBUILD_LEASE_MS = 10 * 60_000;

/**
 * How long one page may keep failing (a tier timing out or down) before its run is marked failed.
 * The tiers are caches and D1 holds the truth, but a refill or drop that skipped Redis would leave
 * the very copies it was asked to replace (a row edited in D1, a restore) to be served as current
 * once Redis answers again: so a page waits for its tiers, and only a long outage fails the run.
 */
export const REBUILD_PAGE_RETRY_MS = 30 * 60_000;

/** Delay before a failed page's next attempt: 2, 4, 8... seconds, at most a minute (well within the lease). */
const pageRetryDelaySeconds = (failures: number) => Math.min(60, 2 ** failures);

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
	firstPageDelaySeconds?: number,
): Promise<{ row: RebuildRow; started: boolean }> {
	const { env } = services;
	const job = crypto.randomUUID();
	const run = { dataset, job, mode, totalKeys: await countRecords(env.DB, dataset), startedAt: now };
	const { row, started } = await startRebuild(env.DB, run, now - REBUILD_LEASE_MS);
	if (!started) return { row, started };
	try {
		await enqueueRebuildPage(env.EVENTS_QUEUE, { dataset, mode, job, index: 0, after: null }, firstPageDelaySeconds);
	} catch (e) {
		// Nothing will work this run: its progress says so, rather than "running" for good.
		const reason = `the event queue refused the rebuild's first page (${(e as Error).message ?? e})`;
		await failRebuild(env.DB, dataset, job, reason, Date.now()).catch(() => {});
		throw new HotpathError("unavailable", `${reason}; nothing was rebuilt, and starting it again is safe`, { retryAfterSeconds: 1 });
	}
	return { row, started };
}

/**
 * Starts the refill that computes derived fields new to a dataset (`next` has them, `prev` did not)
 * for the records it already holds. Its first page is read only once every isolate sees the new
 * spec (the registry is at most CONTROL_CHECK_MS behind, as a search build waits): a record the
 * refill does not see is then written by a writer that derives the new fields itself. The spec is
 * saved whatever happens here: a refill that cannot start (D1 or the queue refusing) is logged, and
 * `POST /v1/datasets/:name/rebuild` starts it later.
 */
export async function refillForNewDerivedFields(services: Services, prev: DatasetSpec, next: DatasetSpec): Promise<void> {
	const added = Object.entries(next.fields).some(([name, f]) => f.derive !== undefined && !Object.hasOwn(prev.fields, name));
	if (!added) return;
	try {
		if (!(await hasRecords(services.env.DB, next.name))) return;
		const delay = Math.ceil(services.settings.CONTROL_CHECK_MS / 1000) + 1;
		const { started } = await startDatasetRebuild(services, next.name, "refill", Date.now(), delay);
		if (!started)
			log.warn("a rebuild of this dataset is running: POST a refill once it ends to derive the new fields for every record", { dataset: next.name });
	} catch (e) {
		log.warn("the refill that derives new fields could not start; POST /v1/datasets/:name/rebuild starts it", { dataset: next.name, error: String(e) });
	}
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
	const listed = await listRecords(env.DB, page.dataset, page.after, REBUILD_PAGE_KEYS, true);
	// The spec as D1 holds it, not as this isolate last saw it: a refill started by a new derived field must derive it.
	const spec = page.mode === "refill" ? await services.registry.fresh(page.dataset) : undefined;
	// A refill first brings the records' derived fields up to date in D1 (a derived field added to a
	// dataset that has records starts one), then copies what D1 holds.
	const records = spec && hasDerived(spec) ? await deriveStored(env.DB, spec, listed, now) : listed;
	const cks = records.map((r) => recordCacheKey(page.dataset, r.key));
	if (page.mode === "refill") {
		const ttl = spec?.ttl_seconds;
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
	if (!done) await enqueueRebuildPage(env.EVENTS_QUEUE, { dataset: page.dataset, mode: page.mode, job: page.job, index: index + 1, after: last });
	await recordPage(env.DB, { ...page, index }, records.length, now, done);
}

/**
 * Rewrites in D1 the records of a page whose derived fields differ from what the spec computes
 * (stored before the field was added), each only while it is at the revision listed and stays
 * within MAX_RECORD_BYTES; returns the page as D1 now holds it. A record written meanwhile is read
 * again (its writer derived it); one the new fields would take past the limit keeps its value,
 * and a warning names it.
 */
async function deriveStored(db: D1Database, spec: DatasetSpec, records: ListedRecord[], now: number): Promise<ListedRecord[]> {
	const stale: { key: string; value: Record<string, unknown>; rev: number }[] = [];
	for (const r of records) {
		const value = withDerived(spec, r.rec.v);
		if (value && value !== r.rec.v) stale.push({ key: r.key, value, rev: r.rec.r });
	}
	if (!stale.length) return records;
	const written = await rewriteValues(db, spec.name, stale, MAX_RECORD_BYTES, now);
	const byKey = new Map(stale.map((s) => [s.key, s.value]));
	const missed = stale.filter((s) => !written.has(s.key));
	const reread = missed.length
		? await readRecords(
				db,
				missed.map((m) => ({ dataset: spec.name, key: m.key })),
			)
		: new Map<string, CachedRecord>();
	const tooLarge = missed.filter((m) => reread.get(recordCacheKey(spec.name, m.key))?.r === m.rev).map((m) => m.key);
	if (tooLarge.length)
		log.warn("records not rewritten with their derived fields: they would pass the record size limit", {
			dataset: spec.name,
			limit: MAX_RECORD_BYTES,
			keys: tooLarge.slice(0, 10),
			count: tooLarge.length,
		});
	return records.map((r) => {
		const rev = written.get(r.key);
		if (rev !== undefined) return { key: r.key, rec: { ...r.rec, v: byKey.get(r.key) ?? r.rec.v, r: rev } };
		const again = byKey.has(r.key) ? reread.get(recordCacheKey(spec.name, r.key)) : undefined;
		return again ? { key: r.key, rec: again } : r;
	});
}

/** Marks the runs of pages put off behind others alive; a failure only costs that sign of life, not the pages. */
export async function keepRebuildsAlive(services: Services, jobs: string[], now = Date.now()): Promise<void> {
	await touchRebuilds(services.env.DB, [...new Set(jobs)], now).catch((e: unknown) => log.warn("rebuild heartbeat not written", { error: String(e) }));
}

/**
 * A page that failed: sent again after a back-off as a new message (the queue's own retries span
 * about half a minute, less than a tier outage may last), the run staying running with the failure
 * in its status, until the page has been failing for REBUILD_PAGE_RETRY_MS: then the run is marked
 * failed. Throws when the page could not be sent again (the caller falls back on the queue's retry).
 */
export async function retryRebuildPage(services: Services, page: RebuildPage, failure: string, now = Date.now()): Promise<"retrying" | "failed"> {
	const error = briefError(failure);
	const failingSince = page.failing_since ?? now;
	const failures = (page.failures ?? 0) + 1;
	const what = `page ${page.index ?? 0} failed ${failures} time${failures === 1 ? "" : "s"} since ${new Date(failingSince).toISOString()}`;
	if (now - failingSince >= REBUILD_PAGE_RETRY_MS) {
		await failRebuildPage(services, page, `${what} (last: ${error}); POST the rebuild again once the tier is back`);
		return "failed";
	}
	const delaySeconds = pageRetryDelaySeconds(failures);
	await enqueueRebuildPage(services.env.EVENTS_QUEUE, { ...page, failing_since: failingSince, failures }, delaySeconds);
	log.warn("rebuild page failed; retrying it", { dataset: page.dataset, job: page.job, index: page.index ?? 0, failures, delay_s: delaySeconds, error });
	// Only the status and a sign of life: the page is on its way again whatever happens here.
	await noteRebuildRetry(services.env.DB, page.dataset, page.job, `${what}, retrying in ${delaySeconds} s: ${error}`, now).catch((e: unknown) =>
		log.warn("rebuild retry not noted", { error: String(e) }),
	);
	return "retrying";
}

/** A failure as the status reports it: a Redis error quotes the whole pipeline it failed on (hundreds of KB for a page). */
const briefError = (error: string, max = 500) => (error.length > max ? `${error.slice(0, max)}...` : error);

/** A page that kept failing: the run is marked failed with the reason. */
export async function failRebuildPage(services: Services, page: RebuildPage, failure: string): Promise<void> {
	// Room for retryRebuildPage's account around an error it already shortened.
	const error = briefError(failure, 1000);
	log.error("rebuild page kept failing; the rebuild is marked failed", { dataset: page.dataset, job: page.job, error });
	await failRebuild(services.env.DB, page.dataset, page.job, error, Date.now());
}
