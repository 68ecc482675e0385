// Data of the search scenarios, shared by the orchestrator (run.ts) and the load child (load.ts):
// the searchable copy of the bench dataset and the query bodies each scenario sends. Deterministic,
// so every run sends the same queries.
//
// The copy holds the bench dataset's values (common.ts makeValue), with the embedding kept on the
// first SEARCH_VECTORS records only: exact vector search is limited to 50,000 vectors per dataset
// (src/search/vectors.ts), and the issue asks for k-NN over 20,000 64-dim vectors beside text and
// filters over 100,000 records. It is a dataset of its own so that the other scenarios (ingest and
// import into bench_users above all) keep measuring a dataset without a search index to follow.
import { CATEGORIES, COUNTRIES, FIRST, LAST, makeValue, rng, SPEC, TAGS, VECTOR_DIM } from "./common.ts";

export const SEARCH_DATASET = "bench_search";
/** Records of the search dataset that carry their embedding (the first ones). */
export const SEARCH_VECTORS = 20_000;

/** The search part of the spec: text over names, tags and categories; filters of every kind; the embedding. */
export const SEARCH_PART = {
	text: ["name", "tags", "recent_categories"],
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
		note: "one word (a first or last name, a tag or a category: 8,000-20,000 of the 100,000 docs match), BM25, top 10",
	},
	{
		name: "search-text-2terms",
		variant: "text-2",
		groups: ["search", "search-text"],
		targetP99Ms: 50,
		note: "two words, all required (first and last name: ~700 docs match; or tag and category: ~4,000), BM25, top 10",
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
		note: `exact cosine k-NN, k 10, over the ${SEARCH_VECTORS.toLocaleString("en-US")} 64-dim vectors (the query: a record's embedding plus noise)`,
	},
	{
		name: "search-hybrid",
		variant: "hybrid",
		groups: ["search", "search-hybrid"],
		targetP99Ms: 100,
		note: "one word (a name) and a vector (k 100), the two rankings fused by reciprocal rank, top 10",
	},
];

/** Every --only name that selects some search scenario. */
export const SEARCH_SELECTORS = new Set(SEARCH_SCENARIOS.flatMap((s) => [s.name, ...s.groups]));

/** A query vector near record j's embedding (j < vectors): the embedding plus uniform noise of ±0.05 per dim. */
function nearVector(r: () => number, vectors: number): { value: number[]; near: number } {
	const near = Math.floor(r() * vectors);
	const base = makeValue(near).embedding as number[];
	const value = new Array<number>(VECTOR_DIM);
	for (let d = 0; d < VECTOR_DIM; d++) value[d] = Number(((base[d] as number) + (r() - 0.5) * 0.1).toFixed(5));
	return { value, near };
}

/**
 * `n` request bodies of a variant, the same for the same seed. `vectors`: how many records of the
 * dataset carry their embedding (SEARCH_VECTORS, fewer with a small --keys).
 */
export function searchBodies(variant: SearchVariant, n: number, seed: number, vectors = SEARCH_VECTORS): string[] {
	const r = rng(seed);
	const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
	const oneWord = [...FIRST, ...LAST, ...TAGS, ...CATEGORIES];
	const out: string[] = [];
	for (let i = 0; i < n; i++) {
		let body: Record<string, unknown>;
		switch (variant) {
			case "text-1":
				body = { q: pick(oneWord), limit: 10 };
				break;
			case "text-2":
				body = { q: i % 2 ? `${pick(FIRST)} ${pick(LAST)}` : `${pick(TAGS)} ${pick(CATEGORIES)}`, limit: 10 };
				break;
			case "filter-range": {
				const from = Math.floor(r() * 19) * 250;
				body = { filter: { ltv: { gte: from, lt: from + 250 } }, limit: 10 };
				break;
			}
			case "filter-in": {
				const set = new Set<string>();
				while (set.size < 3) set.add(pick(COUNTRIES));
				body = { filter: { country: { in: [...set] } }, limit: 10 };
				break;
			}
			case "vector":
				body = { vector: { value: nearVector(r, vectors).value, k: 10 }, limit: 10 };
				break;
			case "hybrid":
				body = { q: pick([...FIRST, ...LAST]), vector: { value: nearVector(r, vectors).value, k: 100 }, limit: 10 };
				break;
		}
		out.push(JSON.stringify(body));
	}
	return out;
}
