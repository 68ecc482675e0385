// Data of the search scenarios, shared by the orchestrator (run.ts) and the load child (load.ts):
// the searchable copy of the bench dataset and the query bodies each scenario sends. Deterministic,
// so every run sends the same queries.
//
// The copy holds the bench dataset's values (common.ts makeValue), with the embedding kept on the
// first SEARCH_VECTORS records only: exact vector search is limited to 50,000 vectors per dataset
// (src/search/vectors.ts), and the issue asks for k-NN over 20,000 64-dim vectors beside text and
// filters over 100,000 records. It is a dataset of its own so that the other scenarios (ingest and
// import into bench_users above all) keep measuring a dataset without a search index to follow.
import { CATEGORIES, COUNTRIES, FIRST, LAST, makeValue, PLANS, rng, SEGMENTS, SPEC, TAGS, VECTOR_DIM } from "./common.ts";

export const SEARCH_DATASET = "bench_search";
/** Records of the search dataset that carry their embedding (the first ones). */
export const SEARCH_VECTORS = 20_000;

/**
 * The search part of the spec: text over names, tags, categories, country, plan and segment (72
 * distinct words of one-word queries: more than the 64 rankings an isolate caches, see
 * searchBodies); filters of every kind; the embedding.
 */
export const SEARCH_PART = {
	text: ["name", "tags", "recent_categories", "country", "plan", "segment"],
	filters: ["country", "segment", "plan", "age", "ltv", "churn_score", "is_active", "tags"],
	vector: "embedding",
} as const;

/** The spec without its search part (PUT first, so the records can be seeded before the index is built from them). */
export const SEARCH_SPEC_PLAIN = { ...SPEC, description: "benchmark dataset: the bench values, searchable (20,000 with their embedding)" };
export const SEARCH_SPEC = { ...SEARCH_SPEC_PLAIN, search: SEARCH_PART };

/** Value i of the search dataset: the bench value, without its embedding past the first SEARCH_VECTORS records. */
export function searchValue(i: number): Record<string, unknown> {
	const v = makeValue(i);
	if (i >= SEARCH_VECTORS) delete v.embedding;
	return v;
}

export type SearchVariant = "text-1" | "text-2" | "filter-range" | "filter-in" | "vector" | "hybrid";

/** The scenarios: name, variant, the --only groups that select them, the p99 target (ms), and what they send. */
export const SEARCH_SCENARIOS: { name: string; variant: SearchVariant; groups: string[]; targetP99Ms: number; note: string }[] = [
	{
		name: "search-text-1term",
		variant: "text-1",
		groups: ["search", "search-text"],
		targetP99Ms: 50,
		note: "one word (a name, tag, category, country, plan or segment: 6,000-20,000 of the 100,000 docs match), BM25, top 10",
	},
	{
		name: "search-text-2terms",
		variant: "text-2",
		groups: ["search", "search-text"],
		targetP99Ms: 50,
		note: "two words, both required (first and last name: ~700 docs match; or tag and category: ~4,000), BM25, top 10",
	},
	{
		name: "search-filter-range",
		variant: "filter-range",
		groups: ["search", "search-filter"],
		targetP99Ms: 50,
		note: "filter ltv in [x, x+250) (~5% of the docs), no text: key order, first 10",
	},
	{
		name: "search-filter-in",
		variant: "filter-in",
		groups: ["search", "search-filter"],
		targetP99Ms: 50,
		note: "filter country in 3 of 15 values (~20% of the docs), no text: key order, first 10",
	},
	{
		name: "search-vector",
		variant: "vector",
		groups: ["search", "search-vector"],
		targetP99Ms: 100,
		note: `exact cosine k-NN, k 10, over the ${SEARCH_VECTORS.toLocaleString("en-US")} 64-dim vectors (each query a record's embedding plus noise)`,
	},
	{
		name: "search-hybrid",
		variant: "hybrid",
		groups: ["search", "search-hybrid"],
		targetP99Ms: 100,
		note: "one word and a vector (k 100), the two rankings fused by reciprocal rank, top 10",
	},
];

/** Every --only name that selects some search scenario. */
export const SEARCH_SELECTORS = new Set(SEARCH_SCENARIOS.flatMap((s) => [s.name, ...s.groups]));

/** Rankings one isolate caches (src/search/search.ts MAX_CACHED_RANKINGS): a query sent again within that many others is not ranked again. */
export const RANKING_CACHE = 64;

/** The one-word queries: 72 words of the text fields (SEGMENTS less at_risk, which is two words to FTS5). */
const ONE_WORD = [...FIRST, ...LAST, ...TAGS, ...CATEGORIES, ...COUNTRIES, ...PLANS, ...SEGMENTS.filter((s) => !s.includes("_"))];

/** A query vector near record j's embedding (j < vectors): the embedding plus uniform noise of ±0.05 per dim. */
function nearVector(r: () => number, vectors: number): number[] {
	const base = makeValue(Math.floor(r() * vectors)).embedding as number[];
	const value = new Array<number>(VECTOR_DIM);
	for (let d = 0; d < VECTOR_DIM; d++) value[d] = Number(((base[d] as number) + (r() - 0.5) * 0.1).toFixed(5));
	return value;
}

/** A deterministic shuffle. */
function shuffled<T>(xs: readonly T[], r: () => number): T[] {
	const a = [...xs];
	for (let i = a.length - 1; i > 0; i--) {
		const j = Math.floor(r() * (i + 1));
		[a[i], a[j]] = [a[j] as T, a[i] as T];
	}
	return a;
}

/**
 * The distinct request bodies of a variant, the same for the same seed, sent round-robin. Every
 * query (and, in hybrid, every query's text) comes back only after more than RANKING_CACHE other
 * queries, so the isolate's ranking cache never answers one: each request is ranked in SEARCH_DB,
 * which is what a stream of different queries costs. `vectors`: how many records carry their
 * embedding (SEARCH_VECTORS, fewer with a small --keys).
 */
export function searchBodies(variant: SearchVariant, seed: number, vectors = SEARCH_VECTORS): string[] {
	const r = rng(seed);
	const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
	const distinct = (n: number, make: () => Record<string, unknown>): Record<string, unknown>[] => {
		const seen = new Map<string, Record<string, unknown>>();
		while (seen.size < n) {
			const b = make();
			seen.set(JSON.stringify(b), b);
		}
		return [...seen.values()];
	};
	let bodies: Record<string, unknown>[];
	switch (variant) {
		case "text-1":
			bodies = shuffled(ONE_WORD, r).map((q) => ({ q, limit: 10 }));
			break;
		case "text-2": {
			let i = 0;
			bodies = distinct(128, () => ({ q: i++ % 2 ? `${pick(FIRST)} ${pick(LAST)}` : `${pick(TAGS)} ${pick(CATEGORIES)}`, limit: 10 }));
			break;
		}
		case "filter-range":
			bodies = shuffled(
				Array.from({ length: 96 }, (_, k) => k * 50),
				r,
			).map((from) => ({ filter: { ltv: { gte: from, lt: from + 250 } }, limit: 10 }));
			break;
		case "filter-in":
			bodies = distinct(128, () => {
				const set = new Set<string>();
				while (set.size < 3) set.add(pick(COUNTRIES));
				return { filter: { country: { in: [...set].sort() } }, limit: 10 };
			});
			break;
		case "vector":
			bodies = Array.from({ length: 128 }, () => ({ vector: { value: nearVector(r, vectors), k: 10 }, limit: 10 }));
			break;
		case "hybrid": {
			// Twice the words: a word's text ranking comes back every 72 queries, past the cache.
			const words = shuffled(ONE_WORD, r);
			bodies = Array.from({ length: 2 * words.length }, (_, i) => ({
				q: words[i % words.length],
				vector: { value: nearVector(r, vectors), k: 100 },
				limit: 10,
			}));
			break;
		}
	}
	if (new Set(bodies.map((b) => JSON.stringify(b))).size <= RANKING_CACHE) throw new Error(`search ${variant}: too few distinct queries`);
	return bodies.map((b) => JSON.stringify(b));
}
