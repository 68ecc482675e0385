/** Batch and single lookups: resolves keys through the tiered reader and renders them under the freshness contract. */
import { HotpathError } from "../errors";
import type { DatasetSpec } from "../registry/spec";
import { recordCacheKey } from "../storage/cached-record";
import { type FreshnessOptions, type RecordView, readLimits, viewRecord } from "./freshness";
import type { LookupRef, ReadContext, Resolved, TieredReader } from "./reader";
import { TIER_ORDER, type TierName } from "./tier";

/** Keys per lookup, across all datasets (REST and GraphQL). More is payload_too_large. */
export const MAX_LOOKUP_KEYS = 1000;

export interface LookupRequest {
	spec: DatasetSpec;
	keys: string[];
	fields?: string[];
	/** This request's own freshness options in place of the call's. Requests with different ones still share the one pass: a key is read within the strictest limits any request asks of it, and each request's views are rendered under its own options. */
	freshness?: Omit<FreshnessOptions, "fields">;
}

/** What a served copy was: its D1 revision (0 when not found) and event time, for ETags, and its lag behind D1 when served. */
export interface ServedCopy {
	rev: number;
	eventTimeMs: number;
	lagMs: number;
}

export interface LookupResult {
	results: { dataset: string; records: RecordView[] }[];
	/** Per request, per key: the copy served. */
	served: ServedCopy[][];
	/** Tiers that answered at least one key, in tier order. */
	tiers: TierName[];
}

/**
 * Looks up every key of every request in one pass through the tiers (each key once, whatever
 * the requests' freshness options). Results keep request order and key order. Throws `unavailable` if some key could be answered by no tier.
 */
export async function lookupRecords(
	reader: TieredReader,
	requests: LookupRequest[],
	opts: Omit<FreshnessOptions, "fields">,
	ctx: ReadContext,
): Promise<LookupResult> {
	// One ref per key: a key several requests ask for is read once, within the tightest of their limits.
	const refs: LookupRef[] = [];
	const byCk = new Map<string, LookupRef>();
	const cks: string[] = []; // per request, per key
	for (const req of requests) {
		const limits = readLimits(req.spec, (req.freshness ?? opts).maxStalenessS);
		for (const key of req.keys) {
			const ck = recordCacheKey(req.spec.name, key);
			cks.push(ck);
			const seen = byCk.get(ck);
			if (!seen) {
				const ref: LookupRef = { dataset: req.spec.name, key, ck, ...limits, ttlSeconds: req.spec.ttl_seconds };
				byCk.set(ck, ref);
				refs.push(ref);
				continue;
			}
			seen.maxLagMs = Math.min(seen.maxLagMs, limits.maxLagMs);
			// A last-resort copy only where every request of the key allows one, within the tightest.
			seen.fallbackMaxLagMs =
				seen.fallbackMaxLagMs === undefined || limits.fallbackMaxLagMs === undefined ? undefined : Math.min(seen.fallbackMaxLagMs, limits.fallbackMaxLagMs);
		}
	}
	const resolved = await reader.lookup(refs, ctx);
	let unanswered = 0;
	for (const ref of refs) if (!resolved.has(ref.ck)) unanswered++;
	if (unanswered) {
		throw new HotpathError("unavailable", `no storage tier could answer ${unanswered} key(s), and no copy within max_staleness was cached; retry shortly`, {
			retryAfterSeconds: 1,
		});
	}
	const now = Date.now();
	const used = new Set<TierName>();
	const served: ServedCopy[][] = [];
	let next = 0; // cks are in request order, then key order
	const results = requests.map((req) => {
		const copies: ServedCopy[] = [];
		served.push(copies);
		const viewOpts: FreshnessOptions = { ...(req.freshness ?? opts), fields: req.fields };
		return {
			dataset: req.spec.name,
			records: req.keys.map((key) => {
				const r = resolved.get(cks[next++] as string) as Resolved;
				used.add(r.tier);
				copies.push({ rev: r.rec.r, eventTimeMs: r.rec.t, lagMs: Math.max(0, now - r.syncedAt) });
				return viewRecord(key, r.rec, req.spec, viewOpts, now, r.fallback);
			}),
		};
	});
	return { results, served, tiers: TIER_ORDER.filter((t) => used.has(t)) };
}
