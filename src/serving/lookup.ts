/** Batch and single lookups: resolves keys through the tiered reader and renders them under the freshness contract. */
import { ApiError } from "../errors";
import type { DatasetSpec } from "../registry/spec";
import { recordCacheKey } from "../storage/cached-record";
import { type FreshnessOptions, freshnessLimitMs, type RecordView, viewRecord } from "./freshness";
import type { LookupRef, ReadContext, Resolved, TieredReader } from "./reader";
import type { TierName } from "./tier";

export interface LookupRequest {
	spec: DatasetSpec;
	keys: string[];
	fields?: string[];
}

export interface LookupResult {
	results: { dataset: string; records: RecordView[] }[];
	/** Per request, per key: the D1 revision served (0 when not found), for ETags. */
	revisions: number[][];
	/** Tiers that answered at least one key, in tier order. */
	tiers: TierName[];
}

const TIER_ORDER: TierName[] = ["l0", "redis", "kv", "d1"];

/**
 * Looks up every key of every request in one pass through the tiers. Results keep request
 * order and key order. Throws a 503 problem if some key could be answered by no tier.
 */
export async function lookupRecords(
	reader: TieredReader,
	requests: LookupRequest[],
	opts: Omit<FreshnessOptions, "fields">,
	ctx: ReadContext,
): Promise<LookupResult> {
	const refs: LookupRef[] = [];
	for (const req of requests) {
		// A copy may lag D1 by no more than the read's freshness limit.
		const maxLagMs = freshnessLimitMs(req.spec, opts.maxStalenessS);
		const fallbackMaxAgeMs = opts.maxStalenessS === undefined ? undefined : opts.maxStalenessS * 1000;
		for (const key of req.keys) {
			refs.push({ dataset: req.spec.name, key, ck: recordCacheKey(req.spec.name, key), maxLagMs, fallbackMaxAgeMs, ttlSeconds: req.spec.ttl_seconds });
		}
	}
	const resolved = await reader.lookup(refs, ctx);
	let unanswered = 0;
	for (const ref of refs) if (!resolved.has(ref.ck)) unanswered++;
	if (unanswered) {
		throw new ApiError("unavailable", `no storage tier could answer ${unanswered} key(s), and no copy within max_staleness was cached; retry shortly`, {
			headers: { "retry-after": "1" },
		});
	}
	const now = Date.now();
	const used = new Set<TierName>();
	const revisions: number[][] = [];
	let next = 0; // refs are in request order, then key order
	const results = requests.map((req) => {
		const revs: number[] = [];
		revisions.push(revs);
		const viewOpts: FreshnessOptions = { ...opts, fields: req.fields };
		return {
			dataset: req.spec.name,
			records: req.keys.map((key) => {
				const r = resolved.get((refs[next++] as LookupRef).ck) as Resolved;
				used.add(r.tier);
				revs.push(r.rec.r);
				return viewRecord(key, r.rec, req.spec, viewOpts, now, r.fallback);
			}),
		};
	});
	return { results, revisions, tiers: TIER_ORDER.filter((t) => used.has(t)) };
}
