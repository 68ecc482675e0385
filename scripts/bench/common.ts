// Shared by the orchestrator (run.ts) and the load child (load.ts): the dataset, key names,
// deterministic record generation, and the random distributions the scenarios draw keys from.

import { rng } from "../lib/rng.ts";

export { rng };

export const DATASET = "bench_users";

/** Entity keys are `user_0000000` … `user_0099999`: fixed width, so ranges sort like numbers. */
export const keyOf = (i: number): string => `user_${String(i).padStart(7, "0")}`;

/** The dataset spec PUT through the admin API: 21 typed fields plus a 64-float embedding. */
export const SPEC = {
	key: "user_id",
	ttl_seconds: 86_400,
	description: "benchmark dataset: user features with a 64-d embedding",
	fields: {
		name: "string",
		email: "string",
		country: "string",
		segment: "string",
		plan: "string",
		label: "string",
		age: "int",
		visits_30d: "int",
		purchases_90d: "int",
		days_since_signup: "int",
		last_login_at: "int",
		ltv: "float",
		churn_score: "float",
		avg_order_value: "float",
		ctr_7d: "float",
		is_active: "bool",
		is_premium: "bool",
		marketing_opt_in: "bool",
		tags: "string[]",
		recent_categories: "string[]",
		preferences: "json",
		last_order: "json",
		embedding: { type: "vector", dim: 64 },
	},
} as const;

export const VECTOR_DIM = 64;

export const COUNTRIES = ["US", "DE", "FR", "GB", "BR", "IN", "JP", "CA", "ES", "IT", "NL", "SE", "PL", "MX", "AU"];
export const SEGMENTS = ["new", "casual", "regular", "loyal", "at_risk", "dormant", "vip"];
export const PLANS = ["free", "basic", "plus", "pro", "enterprise"];
export const TAGS = ["sports", "music", "tech", "travel", "food", "fashion", "gaming", "books", "finance", "health", "kids", "garden"];
export const CATEGORIES = ["shoes", "laptops", "phones", "toys", "groceries", "furniture", "beauty", "outdoor", "video", "audio"];
export const FIRST = ["ada", "alan", "grace", "linus", "ken", "barbara", "edsger", "donald", "margaret", "dennis", "frances", "john"];
export const LAST = ["lovelace", "turing", "hopper", "torvalds", "thompson", "liskov", "dijkstra", "knuth", "hamilton", "ritchie", "allen", "backus"];

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** The value of record `i` (without the entity key), the same on every run. `salt` varies ingest payloads. */
export function makeValue(i: number, salt = 0): Record<string, unknown> {
	const r = rng((Math.imul(i + 1, 2654435761) ^ Math.imul(salt + 7, 40503)) >>> 0);
	const first = pick(r, FIRST);
	const last = pick(r, LAST);
	const embedding = new Array<number>(VECTOR_DIM);
	for (let d = 0; d < VECTOR_DIM; d++) embedding[d] = round(r() * 2 - 1, 6);
	const nTags = 1 + Math.floor(r() * 4);
	const tags: string[] = [];
	for (let t = 0; t < nTags; t++) tags.push(pick(r, TAGS));
	return {
		name: `${first} ${last}`,
		email: `${first}.${last}.${i}@example.com`,
		country: pick(r, COUNTRIES),
		segment: pick(r, SEGMENTS),
		plan: pick(r, PLANS),
		label: `seed-${i}`,
		age: 18 + Math.floor(r() * 60),
		visits_30d: Math.floor(r() * 120),
		purchases_90d: Math.floor(r() * 25),
		days_since_signup: Math.floor(r() * 3000),
		last_login_at: 1_760_000_000_000 + Math.floor(r() * 10_000_000_000),
		ltv: round(r() * 5000, 2),
		churn_score: round(r(), 4),
		avg_order_value: round(10 + r() * 300, 2),
		ctr_7d: round(r() * 0.2, 5),
		is_active: r() < 0.8,
		is_premium: r() < 0.2,
		marketing_opt_in: r() < 0.5,
		tags: [...new Set(tags)],
		recent_categories: [pick(r, CATEGORIES), pick(r, CATEGORIES)],
		preferences: { theme: r() < 0.5 ? "dark" : "light", lang: pick(r, ["en", "de", "fr", "ja", "pt"]), notifications: { email: r() < 0.5, push: r() < 0.3 } },
		last_order: { id: `o_${Math.floor(r() * 1e9)}`, total: round(r() * 400, 2), items: 1 + Math.floor(r() * 6), at: "2026-10-30T12:00:00Z" },
		embedding,
	};
}

/** Zipf(s) over ranks 0..n-1 by inverse CDF; rank 0 is the most popular. */
export class Zipf {
	private readonly cdf: Float64Array;
	readonly n: number;
	readonly s: number;

	constructor(n: number, s = 1.0) {
		this.n = n;
		this.s = s;
		this.cdf = new Float64Array(n);
		let sum = 0;
		for (let k = 0; k < n; k++) {
			sum += 1 / (k + 1) ** s;
			this.cdf[k] = sum;
		}
		for (let k = 0; k < n; k++) (this.cdf as Float64Array)[k] = (this.cdf[k] as number) / sum;
	}

	/** The probability mass of the `k` most popular ranks. */
	head(k: number): number {
		return k <= 0 ? 0 : (this.cdf[Math.min(k, this.n) - 1] as number);
	}

	sample(u: number): number {
		let lo = 0;
		let hi = this.n - 1;
		while (lo < hi) {
			const mid = (lo + hi) >>> 1;
			if ((this.cdf[mid] as number) < u) lo = mid + 1;
			else hi = mid;
		}
		return lo;
	}
}

/** A fixed random permutation of 0..n-1, so Zipf-popular ranks land on keys spread over every partition. */
export function permutation(n: number, seed: number): Uint32Array {
	const p = new Uint32Array(n);
	for (let i = 0; i < n; i++) p[i] = i;
	const r = rng(seed);
	for (let i = n - 1; i > 0; i--) {
		const j = Math.floor(r() * (i + 1));
		const t = p[i] as number;
		p[i] = p[j] as number;
		p[j] = t;
	}
	return p;
}

/** Exact percentile (nearest rank) of unsorted samples; sorts a copy. */
export function percentiles(samples: ArrayLike<number>, ps: number[]): number[] {
	const a = Float64Array.from(samples as ArrayLike<number>).sort();
	if (!a.length) return ps.map(() => Number.NaN);
	return ps.map((p) => a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))] as number);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
