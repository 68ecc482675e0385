/**
 * The consumer's write-through: after D1 has committed, bring each cache tier up to D1's state.
 * The one place this policy lives.
 *
 * - L0: only copies this isolate already holds are replaced (an isolate consuming thousands of
 *   events a second would otherwise turn its L0 over to keys nobody reads here).
 * - KV: only keys KV holds are rewritten, each once per batch (KV takes one write per key per
 *   second), never with an older revision; at most `kvOps` operations per invocation. Every KV copy
 *   expires after the lag KV is allowed, so one the consumer missed cannot outlive the contract.
 * - Redis: every changed key that D1 held before the batch, version-guarded, even while this
 *   isolate's breaker is open. A key the batch created (revision 1) had no row in D1, so Redis can
 *   hold it only as a cached miss: that is dropped, and the value waits for a read's fill, as in
 *   KV. A bulk load of new keys thus costs Redis no writes for keys nobody reads yet.
 * - Whatever could not be done now (past the KV budget, KV refusing a put, a Redis write failing)
 *   goes into a refresh message, so the copy is rewritten from D1
 *   later: no tier keeps an older copy that reads would take for current. A Redis write that
 *   failed is also followed at once by a drop of those copies (Redis may refuse writes but not
 *   reads or deletes).
 */
import { log } from "../observability/log";
import { indexApplied } from "../search/jobs";
import type { Services } from "../services";
import { type CachedRecord, decodeRecord, encodeRecord, recordCacheKey } from "../storage/cached-record";
import { KV_BULK_LIMIT, kvGetMany } from "../storage/kv";
import { readRecords } from "../storage/records";
import type { AppliedRecord } from "./apply";
import { enqueueRefresh, type RefreshTier } from "./producer";

/**
 * KV operations one consumer invocation may spend on write-through. Workers allow 1,000 per
 * invocation (a bulk get of up to 100 keys is one); the rest is headroom.
 */
export const KV_OPS_PER_INVOCATION = 900;

/** A refresh message's request, as the consumer reads it. */
export interface RefreshRequest {
	refs: { dataset: string; key: string }[];
	tiers: RefreshTier[];
	until?: number;
}

interface Target {
	dataset: string;
	key: string;
	ck: string;
	rec: CachedRecord;
	/** For a KV refresh that is itself a retry: until when it is worth retrying (see refreshKv). */
	kvUntil?: number;
}

export interface RefreshOptions {
	/** KV operations this invocation may spend (see KV_OPS_PER_INVOCATION). */
	kvOps?: number;
}

/**
 * Refreshes the tiers for keys this batch applied and for keys refresh messages asked for.
 * Throws only if work that could not be done could not be queued either (the caller retries the batch).
 */
export async function refreshCaches(
	services: Services,
	applied: readonly AppliedRecord[],
	requests: readonly RefreshRequest[],
	opts: RefreshOptions = {},
): Promise<void> {
	const now = Date.now();
	const { env } = services;
	const kvTargets: Target[] = [];
	const redisTargets: Target[] = [];
	const created: Target[] = [];
	for (const a of applied) {
		const t = { dataset: a.dataset, key: a.key, ck: recordCacheKey(a.dataset, a.key), rec: a.rec };
		services.reader.l0.refreshHeld(t.ck, t.rec, a.syncedAt, now);
		// A key this batch created in D1 (now at revision 1) had no row before: KV cannot hold it
		// (KV never caches a miss), and Redis only as a cached miss.
		if (a.changed && a.rec.r === 1) created.push(t);
		else {
			kvTargets.push(t);
			if (a.changed) redisTargets.push(t);
		}
	}
	let redisUntil: number | undefined;
	if (requests.length) {
		const requested = await currentStates(env.DB, requests);
		const seenKv = new Set(kvTargets.map((t) => t.ck));
		const seenRedis = new Set(redisTargets.map((t) => t.ck));
		for (const r of requests) {
			const live = r.until === undefined || r.until > now;
			const redisLive = r.tiers.includes("redis") && live;
			if (redisLive && r.until !== undefined) redisUntil = Math.max(redisUntil ?? 0, r.until);
			const kvLive = r.tiers.includes("kv") && live;
			for (const ref of r.refs) {
				const ck = recordCacheKey(ref.dataset, ref.key);
				const rec = requested.get(ck);
				if (!rec) continue;
				const t = { ...ref, ck, rec };
				if (kvLive && !seenKv.has(ck)) {
					seenKv.add(ck);
					kvTargets.push({ ...t, kvUntil: r.until });
				}
				if (redisLive && !seenRedis.has(ck)) {
					seenRedis.add(ck);
					redisTargets.push(t);
				}
			}
		}
	}
	// The search index follows D1 like a tier (src/search/jobs.ts): revision-guarded, refreshed from D1 later when SEARCH_DB refuses.
	await Promise.all([
		refreshKv(services, kvTargets, now, opts.kvOps),
		refreshRedis(services, redisTargets, now, redisUntil),
		dropRedisMisses(services, created, now),
		indexApplied(services, applied),
	]);
}

/** D1's current state of every key the requests name. */
async function currentStates(db: D1Database, requests: readonly RefreshRequest[]): Promise<Map<string, CachedRecord>> {
	const refs = new Map<string, { dataset: string; key: string }>();
	for (const r of requests) for (const ref of r.refs) refs.set(recordCacheKey(ref.dataset, ref.key), ref);
	const all = [...refs.values()];
	const out = new Map<string, CachedRecord>();
	for (let i = 0; i < all.length; i += 500) for (const [ck, rec] of await readRecords(db, all.slice(i, i + 500))) out.set(ck, rec);
	return out;
}

async function refreshKv(services: Services, targets: Target[], now: number, kvOps = KV_OPS_PER_INVOCATION): Promise<void> {
	if (!targets.length) return;
	const { env } = services;
	let deferred: Target[];
	let refused = 0;
	try {
		({ deferred, refused } = await writeThroughKv(env.RECORDS_KV, targets, services.kv.fillTtlSeconds, kvOps));
	} catch (e) {
		// KV could not even be asked which keys it holds: have all of them checked again shortly.
		log.warn("KV write-through failed; queueing a refresh", { error: String(e), keys: targets.length });
		deferred = targets;
		refused = targets.length;
	}
	if (!deferred.length) return;
	if (refused) log.warn("KV refused some write-through puts; deferring them", { refused });
	// At least a second later: KV takes one write per key per second, and a key just written may be among them.
	// Every KV copy expires within its fill TTL, so one written before now is gone by now + that TTL:
	// past it there is nothing left to put right, and a KV that stays down is not asked again every
	// second for the rest of its outage. A retried refresh keeps the bound its first attempt set.
	const firstUntil = now + services.kv.fillTtlSeconds * 1000;
	const byUntil = new Map<number, Target[]>();
	for (const t of deferred) {
		const until = t.kvUntil ?? firstUntil;
		const group = byUntil.get(until);
		if (group) group.push(t);
		else byUntil.set(until, [t]);
	}
	for (const [until, group] of byUntil) await enqueueRefresh(env.EVENTS_QUEUE, group, { tiers: ["kv"], delaySeconds: 1, until });
}

/**
 * Refreshes copies KV holds, skipping keys where KV already holds the same or a newer revision.
 * Keys KV does not hold are left to read fills: writing every changed key would cost a KV write
 * per event for keys that may never be read at the edge, and KV holding nothing is as consistent
 * as KV holding D1's value. Spends at most `opsBudget` KV operations; entries it could not check
 * or write (past the budget, or refused by KV) are returned for a later invocation.
 */
export async function writeThroughKv<E extends Target>(
	kv: KVNamespace,
	entries: E[],
	ttlSeconds: number,
	opsBudget = KV_OPS_PER_INVOCATION,
): Promise<{ written: number; deferred: E[]; refused: number }> {
	if (!entries.length) return { written: 0, deferred: [], refused: 0 };
	// Look up at most half the budget's worth of bulk gets, so puts keep the other half at least.
	const checkable = Math.max(1, Math.floor(opsBudget / 2)) * KV_BULK_LIMIT;
	const checked = entries.slice(0, checkable);
	const deferred = entries.slice(checkable);
	const held = await kvGetMany(
		kv,
		checked.map((e) => e.ck),
	);
	const gets = Math.ceil(checked.length / KV_BULK_LIMIT);
	const behind = checked.filter((e) => {
		const r = decodeRecord(held.get(e.ck))?.r;
		return r !== undefined && r < e.rec.r;
	});
	const puts = Math.max(0, opsBudget - gets);
	const attempted = behind.slice(0, puts);
	// A put KV refuses (e.g. a second write to one key within a second) is handed back like the
	// ones past the budget, rather than failing the whole batch.
	const results = await Promise.allSettled(attempted.map((e) => kv.put(e.ck, encodeRecord(e.rec), { expirationTtl: ttlSeconds })));
	const refused = attempted.filter((_, i) => results[i]?.status === "rejected");
	deferred.push(...refused, ...behind.slice(puts));
	return { written: attempted.length - refused.length, deferred, refused: refused.length };
}

async function refreshRedis(services: Services, targets: Target[], now: number, requestedUntil: number | undefined): Promise<void> {
	const redis = services.redis;
	if (!redis || !targets.length) return;
	const specs = await services.registry.all();
	// Tried even while this isolate's breaker is open: the breaker keeps reads off a slow Redis, but
	// the consumer is on no read's critical path, and a breaker that opened on a latency blip says
	// nothing of Redis for readers elsewhere, whose breakers are closed. A change skipped here would
	// leave them the old copy, taken as at most Redis's lag behind D1, until the refresh got through.
	let failure: string;
	try {
		await redis.write(targets.map((t) => ({ ck: t.ck, rec: t.rec, ttlSeconds: specs.get(t.dataset)?.ttl_seconds, dataset: t.dataset })));
		return;
	} catch (e) {
		services.stats.count("redis", "errors");
		failure = String(e);
	}
	// Redis may refuse writes yet answer reads (over its memory or data-size limit): drop the copies
	// now, so no reader takes the old one as current while the refresh waits. The refresh still goes
	// out: a reader's fill of an older revision may land after the drop.
	try {
		await redis.dropUnwritten(targets);
	} catch (e) {
		failure += `; drop failed too: ${String(e)}`;
	}
	// Until every copy written before now has expired, Redis may still serve one: keep trying.
	const until = requestedUntil ?? now + redis.maxTtlSeconds * 1000;
	const since = until - redis.maxTtlSeconds * 1000;
	// Back off as the outage goes on: half the time it has lasted, between the breaker's cool-down and 5 minutes.
	const delaySeconds = Math.min(300, Math.max(Math.ceil(services.settings.REDIS_COOLDOWN_MS / 1000), Math.ceil((now - since) / 2000), 1));
	log.warn("Redis write-through not done; queueing a refresh", { reason: failure, keys: targets.length, delay_s: delaySeconds });
	await enqueueRefresh(services.env.EVENTS_QUEUE, targets, { tiers: ["redis"], delaySeconds, until });
}

/**
 * Drops the misses Redis may have cached of keys this batch created. If Redis will not take the
 * drop, the keys' current states go to Redis by a refresh message instead (a write replaces a
 * cached miss), tried until every miss cached before now has expired by itself (NEGATIVE_TTL_SECONDS).
 */
async function dropRedisMisses(services: Services, created: Target[], now: number): Promise<void> {
	const redis = services.redis;
	if (!redis || !created.length) return;
	try {
		await redis.drop(created.map((t) => t.ck));
		return;
	} catch (e) {
		services.stats.count("redis", "errors");
		log.warn("dropping cached misses of new keys from Redis failed; queueing a refresh", { error: String(e), keys: created.length });
	}
	const delaySeconds = Math.max(1, Math.ceil(services.settings.REDIS_COOLDOWN_MS / 1000));
	const until = now + redis.negativeTtlSeconds * 1000;
	// Misses cached for less than the delay are gone before a refresh could come.
	if (until > now + delaySeconds * 1000) await enqueueRefresh(services.env.EVENTS_QUEUE, created, { tiers: ["redis"], delaySeconds, until });
}
