/**
 * Rebuild: rewrite (refill) or drop the KV and Redis copies of a dataset from D1, the truth, a page
 * of keys at a time through the queue, with progress in D1. D1 alone can rebuild everything else.
 */
import { HotpathError } from "../errors";
import { log } from "../observability/log";
import { indexApplied } from "../search/jobs";
import type { Services } from "../services";
import { encodeRecord, recordCacheKey } from "../storage/cached-record";
import { failRebuild, isCurrentJob, type RebuildRow, recordPage, startRebuild } from "../storage/rebuilds";
import { countRecords, listRecords } from "../storage/records";
import { enqueueRebuildPage, type RebuildPage } from "./producer";

/** Keys per page: each costs one KV operation, and an invocation may spend 1,000. */
export const REBUILD_PAGE_KEYS = 400;
/** Pages one consumer invocation works on; the rest of its batch comes back a second later. */
export const REBUILD_PAGES_PER_INVOCATION = 2;

export type RebuildMode = RebuildPage["mode"];

/** Starts a rebuild of one dataset (replacing a running one) and queues its first page. */
export async function startDatasetRebuild(services: Services, dataset: string, mode: RebuildMode, now = Date.now()): Promise<RebuildRow> {
	const { env } = services;
	const job = crypto.randomUUID();
	const row = await startRebuild(env.DB, { dataset, job, mode, totalKeys: await countRecords(env.DB, dataset), startedAt: now });
	try {
		await enqueueRebuildPage(env.EVENTS_QUEUE, { dataset, mode, job, after: null });
	} catch (e) {
		// Nothing will work this run: its progress says so, rather than "running" for good.
		const reason = `the event queue refused the rebuild's first page (${(e as Error).message ?? e})`;
		await failRebuild(env.DB, dataset, job, reason, Date.now()).catch(() => {});
		throw new HotpathError("unavailable", `${reason}; nothing was rebuilt, and starting it again is safe`, { retryAfterSeconds: 1 });
	}
	return row;
}

/** Works one page: rewrites or drops its keys' copies, records progress, and queues the next page. */
export async function rebuildPage(services: Services, page: RebuildPage, now = Date.now()): Promise<void> {
	const { env } = services;
	if (!(await isCurrentJob(env.DB, page.dataset, page.job))) return; // a newer run replaced this one
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
	if (!(await recordPage(env.DB, page.dataset, page.job, records.length, done ? now : null))) return;
	if (!done) await enqueueRebuildPage(env.EVENTS_QUEUE, { ...page, after: last });
}

/** A page that kept failing: the run is marked failed with the reason. */
export async function failRebuildPage(services: Services, page: RebuildPage, error: string): Promise<void> {
	log.error("rebuild page kept failing; the rebuild is marked failed", { dataset: page.dataset, job: page.job, error });
	await failRebuild(services.env.DB, page.dataset, page.job, error, Date.now());
}
