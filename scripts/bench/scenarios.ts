// The scenarios, and the key layout that lets each single-tier scenario be answered by one tier.
//
// One isolate's L0 would absorb repeated reads, so the tier scenarios read every key once, from a
// slice of the key space whose copies were written (in the worker's own cached-record format) to
// exactly the tiers that should hold them:
//
//   hot     [0, 100)   read over and over: L0 answers after the first read of each key
//   redis   copies in Redis only                 -> Redis answers (L0 has never seen them)
//   kv      copies in KV only                    -> KV answers
//   d1      no copies                            -> D1 answers
//   zipfKv  copies in KV only, kept for the Zipf run so that KV-only keys exist there too
//
// The batch lookups draw from the Redis slice: every key is in Redis, the recently read ones in L0,
// so batch sizes compare on the same (warm) tiers rather than on how many cold keys a batch drags in.
// Every response's X-Hotpath-Tier is counted, so the table shows which tier really answered.
import type { Gen } from "./load.ts";
import { RANKING_CACHE, SEARCH_DATASET, SEARCH_SCENARIOS, SEARCH_SELECTORS, searchBodies } from "./search-data.ts";
import { AGG_DATASET } from "./time-data.ts";

export interface Layout {
	n: number;
	hot: [number, number];
	redis: [number, number];
	kv: [number, number];
	d1: [number, number];
	zipfKv: [number, number];
}

export interface SliceCaps {
	redis: number;
	kv: number;
	d1: number;
	zipfKv: number;
}

export function layout(n: number, caps: SliceCaps): Layout {
	const hot = 100;
	const quarter = Math.floor((n - hot) * 0.24);
	let at = hot;
	const take = (size: number): [number, number] => {
		const r: [number, number] = [at, at + Math.min(size, quarter)];
		at = r[1];
		return r;
	};
	return { n, hot: [0, hot], redis: take(caps.redis), kv: take(caps.kv), d1: take(caps.d1), zipfKv: take(caps.zipfKv) };
}

export interface Timing {
	warmupS: number;
	durationS: number;
	/** Warm-up of the tier scenarios, which spends keys of their slice. */
	tierWarmupS: number;
	/** Keys per tier slice at most (see layout). KV copies cost ~3-4 ms each to write in Miniflare. */
	slices: SliceCaps;
	/** Ingest, saturating phase: this many events, POSTed as fast as the API takes them. */
	burstEvents: number;
	/** Ingest, paced phase at the target rate. */
	pacedS: number;
	/** How long to wait after a phase's last POST for the events to become readable. */
	drainS: number;
	/** A freshness probe not seeing its value after this long counts as a timeout (a censored sample). */
	probeTimeoutS: number;
	/** fixed-load: measured seconds per rate of /ping and of reads each, and the cap on the reads' warm-up. */
	fixedLoadS: number;
	fixedLoadWarmupS: number;
	/** as-of: keys with 20 versions each. */
	asOfKeys: number;
	/** aggregate: keys with 10,000 facts each (their facts are the aggregate-facts ingest phase). */
	aggKeys: number;
	/** import: rows imported in all. */
	importRows: number;
	/** graphql-batch-100 against lookup-batch-100: back-to-back rounds, and each window's length. */
	pairRounds: number;
	pairWindowS: number;
}

export const QUICK: Timing = {
	warmupS: 2,
	durationS: 5,
	tierWarmupS: 1,
	slices: { redis: 15_000, kv: 4_500, d1: 15_000, zipfKv: 1_000 },
	burstEvents: 15_000,
	pacedS: 5,
	drainS: 15,
	probeTimeoutS: 10,
	fixedLoadS: 8,
	fixedLoadWarmupS: 6,
	asOfKeys: 1_000,
	aggKeys: 4,
	importRows: 60_000,
	pairRounds: 3,
	pairWindowS: 5,
};
export const FULL: Timing = {
	warmupS: 3,
	durationS: 15,
	tierWarmupS: 2,
	slices: { redis: 40_000, kv: 10_000, d1: 30_000, zipfKv: 5_000 },
	burstEvents: 60_000,
	pacedS: 20,
	drainS: 60,
	probeTimeoutS: 30,
	fixedLoadS: 30,
	fixedLoadWarmupS: 15,
	asOfKeys: 2_000,
	aggKeys: 8,
	importRows: 200_000,
	pairRounds: 6,
	pairWindowS: 5,
};

export interface ReadScenario {
	name: string;
	gen: Gen;
	/** The tier that must answer, as X-Hotpath-Tier names it. */
	expect?: string;
	keysPerRequest: number;
	warmupS: number;
	note: string;
	/** --only names that select it besides its own (as-of-batch-100 runs with `--only as-of`, search-vector with `--only search`). */
	groups?: string[];
	/** The dataset its read key must be allowed (default: the bench dataset). */
	dataset?: string;
	/** Connections, when not --concurrency (the search scenarios measure latency at a light load). */
	connections?: number;
	/** p99 target in ms, for scenarios judged on their own latency (search). */
	targetP99Ms?: number;
	/** The row its ratio columns compare with, when not baseline-hello (a baseline at the same connections). */
	ratioBase?: string;
	/** A warm-up of this many requests before the timed one (search: each distinct query once). */
	warmupRequests?: number;
	/** A Server-Timing metric to collect from the responses (search: "search", the ranking's time). */
	serverTiming?: string;
}

/** The search scenarios' setting, once their dataset is indexed. */
export interface SearchSetup {
	/** Connections each search scenario (and its /ping baseline) runs with. */
	connections: number;
	/** Records of the search dataset with an embedding. */
	vectors: number;
}

/** The keys of the as-of and aggregate scenarios, known once they are seeded. */
export interface TimeKeys {
	/** Keys prefixedKey(prefix, 0 .. count-1) of the bench dataset with VERSIONS versions each, read as of `asOf`. */
	asOf?: { prefix: string; count: number; asOf: number };
	/** Keys prefixedKey(prefix, 0 .. count-1) of the aggregate dataset, with their facts. */
	aggregate?: { prefix: string; count: number };
}

/** Routes that can serve as the bare baseline, best first: constant answers with no auth and no I/O. */
export const BASELINE_ROUTES = ["/bench/hello", "/ping", "/"];

export function readScenarios(l: Layout, t: Timing, baselinePath: string, time: TimeKeys = {}, search?: SearchSetup): ReadScenario[] {
	const slice = (name: string, r: [number, number], expect: string, note: string): ReadScenario => ({
		name,
		gen: { kind: "keys", start: r[0], count: r[1] - r[0] },
		expect,
		keysPerRequest: 1,
		warmupS: t.tierWarmupS,
		note,
	});
	return [
		{
			name: "baseline-hello",
			gen: { kind: "fixed", method: "GET", path: baselinePath, auth: false },
			keysPerRequest: 0,
			warmupS: t.warmupS,
			note: `GET ${baselinePath}: a constant answer, no auth, no I/O`,
		},
		{
			name: "read-l0-hit",
			gen: { kind: "cycle", start: l.hot[0], count: l.hot[1] - l.hot[0] },
			expect: "l0",
			keysPerRequest: 1,
			warmupS: t.warmupS,
			note: `GET record, ${l.hot[1] - l.hot[0]} hot keys round-robin`,
		},
		slice("read-redis-hit", l.redis, "redis", "GET record, each key once; keys held by Redis only"),
		slice("read-kv-hit", l.kv, "kv", "GET record, each key once; keys held by KV only"),
		slice("read-d1-miss", l.d1, "d1", "GET record, each key once; keys held by D1 only"),
		// Right after read-d1-miss, which their targets compare them with.
		...asOfScenarios(time, t),
		...aggregateScenarios(time, t),
		...[1, 10, 100].map(
			(batch): ReadScenario => ({
				name: `lookup-batch-${batch}`,
				gen: { kind: "lookup", batch, start: l.redis[0], count: l.redis[1] - l.redis[0], seed: 1000 + batch },
				keysPerRequest: batch,
				warmupS: t.tierWarmupS,
				note: `POST /v1/lookup, ${batch} distinct key(s) drawn uniformly from the ${l.redis[1] - l.redis[0]} Redis-resident keys (warm: L0 and Redis answer)`,
			}),
		),
		{
			name: "graphql-batch-100",
			gen: { kind: "graphql", batch: 100, start: l.redis[0], count: l.redis[1] - l.redis[0], seed: 4100 },
			keysPerRequest: 100,
			warmupS: t.tierWarmupS,
			note: `POST /graphql, every field of 100 distinct keys drawn uniformly from the ${l.redis[1] - l.redis[0]} Redis-resident keys, as lookup-batch-100 draws them (another seed)`,
		},
		{
			name: "read-zipf",
			gen: { kind: "zipf", n: l.n, s: 1.0, seed: 4242 },
			keysPerRequest: 1,
			warmupS: t.tierWarmupS,
			note: `GET record, Zipf(1.0) over all ${l.n} keys, every tier live`,
		},
		...searchScenarios(search, t, baselinePath),
	];
}

/**
 * The search scenarios, after every read of bench_users (their hits fill L0 with keys of another
 * dataset). First /ping at the same connections: the harness's own latency at that load, the
 * same-run reference for targets that are absolute.
 */
function searchScenarios(search: SearchSetup | undefined, t: Timing, baselinePath: string): ReadScenario[] {
	if (!search) return [];
	const c = search.connections;
	return [
		{
			name: "search-baseline",
			groups: [...SEARCH_SELECTORS],
			gen: { kind: "fixed", method: "GET", path: baselinePath, auth: false },
			keysPerRequest: 0,
			warmupS: t.warmupS,
			connections: c,
			note: `GET ${baselinePath} at the search scenarios' ${c} connection(s): the harness's latency at that load`,
		},
		...SEARCH_SCENARIOS.map((s, i): ReadScenario => {
			const distinct = searchBodies(s.variant, 6100 + i, search.vectors).length;
			return {
				name: s.name,
				warmupRequests: distinct,
				serverTiming: "search",
				groups: s.groups,
				gen: { kind: "search", dataset: SEARCH_DATASET, variant: s.variant, seed: 6100 + i, vectors: search.vectors },
				keysPerRequest: 10,
				warmupS: t.warmupS,
				dataset: SEARCH_DATASET,
				connections: c,
				targetP99Ms: s.targetP99Ms,
				ratioBase: "search-baseline",
				note: `POST /v1/datasets/${SEARCH_DATASET}/search, ${c} connection(s): ${s.note}; ${distinct} distinct queries round-robin (ranked every time: more than the isolate's ${RANKING_CACHE} cached rankings), each sent once before the warm-up`,
			};
		}),
	];
}

function asOfScenarios(time: TimeKeys, t: Timing): ReadScenario[] {
	const a = time.asOf;
	if (!a) return [];
	const at = new Date(a.asOf).toISOString();
	return [
		{
			name: "as-of",
			gen: { kind: "cycle", start: 0, count: a.count, prefix: a.prefix, query: `?as_of=${encodeURIComponent(at)}` },
			expect: "d1",
			keysPerRequest: 1,
			warmupS: t.warmupS,
			note: `GET record ?as_of, ${a.count} keys of 20 versions each round-robin, as of after the last version (all 20 fold)`,
		},
		{
			name: "as-of-batch-100",
			groups: ["as-of"],
			gen: { kind: "lookup", batch: 100, start: 0, count: a.count, seed: 4200, prefix: a.prefix, asOf: a.asOf },
			expect: "d1",
			keysPerRequest: 100,
			warmupS: t.warmupS,
			note: `POST /v1/lookup with as_of, 100 distinct keys drawn uniformly from the ${a.count} keys of 20 versions each`,
		},
	];
}

function aggregateScenarios(time: TimeKeys, t: Timing): ReadScenario[] {
	const a = time.aggregate;
	if (!a) return [];
	return [
		{
			name: "aggregate",
			gen: { kind: "cycle", start: 0, count: a.count, prefix: a.prefix, dataset: AGG_DATASET },
			keysPerRequest: 1,
			warmupS: t.warmupS,
			dataset: AGG_DATASET,
			note: `GET record of ${AGG_DATASET} (7 aggregates over 10,000 facts in 7 days per key), ${a.count} keys round-robin`,
		},
	];
}
