/** Per-isolate counters of hits, misses, errors and skips per tier (read path and write-through), read by GET /v1/stats. */
import type { TierName } from "./tier";

export interface TierCounters {
	hits: number;
	misses: number;
	errors: number;
	skipped: number;
}

export class TierStats {
	readonly startedAt = Date.now();
	/** L0 hits the fast lane answered (src/routes/fast-read.ts); they are counted in tiers.l0.hits too. */
	fastLaneHits = 0;
	readonly tiers: Record<TierName, TierCounters> = {
		l0: { hits: 0, misses: 0, errors: 0, skipped: 0 },
		redis: { hits: 0, misses: 0, errors: 0, skipped: 0 },
		kv: { hits: 0, misses: 0, errors: 0, skipped: 0 },
		d1: { hits: 0, misses: 0, errors: 0, skipped: 0 },
	};

	count(tier: TierName, what: keyof TierCounters, n = 1): void {
		this.tiers[tier][what] += n;
	}
}
