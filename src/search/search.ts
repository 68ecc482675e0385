/**
 * Search: plans a query against the dataset's index, ranks docs in SEARCH_DB (FTS5 BM25, filters
 * and sorts in SQL, exact cosine k-NN in the isolate, or text and vector fused by reciprocal rank),
 * then reads the page's keys through the normal tiered read, so values, event_time, age_ms and
 * staleness are those of any read. The one function REST, GraphQL and the CLI share: searchDataset.
 *
 * Paging (src/search/cursor.ts): the first page ranks up to MAX_DEPTH docs and the cursor carries
 * the rest of that ranking. Guarantee: across the pages of one query, a doc that exists throughout
 * is served at most once, and every such doc among the first MAX_DEPTH of the first page's ranking
 * is served; docs deleted meanwhile are left out, docs added meanwhile are not, and values are read
 * fresh on each page. Past MAX_DEPTH hits there is no next page: narrow the query instead.
 */
import { HotpathError, itemsDetail } from "../errors";
import { log } from "../observability/log";
import type { DatasetSpec } from "../registry/spec";
import type { Services } from "../services";
import type { IfStale } from "../serving/freshness";
import { lookupRecords } from "../serving/lookup";
import { keyProblem } from "../serving/params";
import type { ReadContext } from "../serving/reader";
import type { TierName } from "../serving/tier";
import { decodeSearchCursor, encodeSearchCursor, MAX_DEPTH, queryHash, type Ranked } from "./cursor";
import { compileFilter, MAX_QUERY_TERMS, matchExpression, Problems, parseSort, type SortKey } from "./filter";
import { type IndexLayout, type IndexTables, ITEM_SEPARATOR, isMissingTable, tablesOf } from "./layout";
import { metaForQuery } from "./meta";
import { normalise, vectorsOf } from "./vectors";
import { searchDb } from "./writer";

export const DEFAULT_LIMIT = 10;
export const MAX_LIMIT = 100;
/** Neighbours a vector query ranks when it does not say (`vector.k`). */
export const DEFAULT_K = 100;
/** Characters of a text query. */
export const MAX_QUERY_CHARS = 1000;
/** Reciprocal rank fusion's constant (Cormack et al.): a doc scores 1 / (RRF_K + rank) per ranking it is in. */
export const RRF_K = 60;
const MARK = ["<mark>", "</mark>"] as const;

/** A search request, as POST /v1/datasets/:name/search takes it (and GraphQL passes it on). */
export interface SearchQuery {
	q?: string;
	filter?: unknown;
	sort?: unknown;
	vector?: { value?: number[]; key?: string; k?: number };
	limit?: number;
	cursor?: string;
	fields?: string[];
	highlight?: boolean;
	max_staleness?: number;
	if_stale?: IfStale;
}

/** A query whose null members (and the vector's) mean not given, as REST and GraphQL take them: without those. */
export function withoutNulls(input: { readonly [member: string]: unknown }): SearchQuery {
	const query: Record<string, unknown> = {};
	for (const [name, v] of Object.entries(input)) {
		if (v === null || v === undefined) continue;
		if (name === "vector" && typeof v === "object") {
			const vector: Record<string, unknown> = {};
			for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) vector[k] = x;
			query.vector = vector;
		} else query[name] = v;
	}
	return query as SearchQuery;
}

export interface SearchHit {
	key: string;
	/** BM25 (text), cosine similarity (vector), the fused RRF score (both), or 0 when nothing ranks (filters and sorts only). */
	score: number;
	status: "present" | "stale";
	value: Record<string, unknown> | null;
	event_time: string | null;
	age_ms: number | null;
	/** Text fields where the query's words matched, the words marked with <mark></mark>; string[] fields: the matching items. */
	highlights?: Record<string, string | string[]>;
}

export interface SearchResult {
	hits: SearchHit[];
	next_cursor: string | null;
	took_ms: number;
	/** The tiers that answered the hits' values, in tier order. */
	tiers: TierName[];
}

/** A ranked doc; `key` once known. */
interface Entry extends Ranked {
	key?: string;
}

interface Plan {
	match: string | null;
	/** SQL condition on `d` (the docs table), its parameters numbered from ?4. */
	where: string;
	params: unknown[];
	sort: SortKey[];
	vector: { value: Float32Array | null; key: string | null; k: number } | null;
	limit: number;
	fields: string[] | undefined;
	highlight: boolean;
}

/** Ranking statements bind ?1 (the MATCH expression), ?2 (the depth) and ?3 (the page's size); filters bind from ?4. */
const FIRST_FILTER_PARAM = 4;

/** Checks a query against the index's layout and the spec; every problem is a 400 naming where (JSON Pointers into the body). */
function planQuery(query: SearchQuery, spec: DatasetSpec, layout: IndexLayout, building: boolean): Plan {
	const problems = new Problems();
	// A field the spec makes searchable but the index does not hold yet: a build for the new spec is under way.
	const notIndexed = (role: "text" | "filters", field: string, what: string) =>
		(spec.search?.[role] ?? []).includes(field) && building
			? `"${field}" is not in the search index yet: the index for the dataset's new search spec is being built (GET /v1/datasets/${spec.name}/search)`
			: what;
	const unknownField = (field: string) =>
		notIndexed(
			"filters",
			field,
			`"${field}" is not a filter field of dataset "${spec.name}"; its filter fields are ${layout.filters.map((f) => f.field).join(", ") || "none"}`,
		);

	let match: string | null = null;
	if (query.q !== undefined) {
		const m = matchExpression(query.q);
		if (!layout.text.length) problems.add("/q", `dataset "${spec.name}" has no text fields in its search spec`);
		else if (query.q.length > MAX_QUERY_CHARS) problems.add("/q", `at most ${MAX_QUERY_CHARS} characters`);
		else if (!m) problems.add("/q", "has no words to search for (letters or digits)");
		else if (m.terms > MAX_QUERY_TERMS) problems.add("/q", `at most ${MAX_QUERY_TERMS} words`);
		else match = m.expr;
	}

	const params: unknown[] = [];
	const bind = (v: unknown) => `?${FIRST_FILTER_PARAM + params.push(v) - 1}`;
	const where = query.filter === undefined ? "1" : compileFilter(query.filter, "/filter", { layout, bind, problems, unknownField });
	const sort = parseSort(query.sort, "/sort", layout, problems, unknownField);

	let vector: Plan["vector"] = null;
	if (query.vector !== undefined) {
		const v = query.vector;
		const dim = layout.vector?.dim ?? 0;
		if (!layout.vector) problems.add("/vector", `dataset "${spec.name}" has no vector field in its search spec`);
		else if ((v.value === undefined) === (v.key === undefined))
			problems.add("/vector", 'give exactly one of "value" (the query vector) and "key" (a record whose vector to use)');
		else if (v.k !== undefined && (!Number.isInteger(v.k) || v.k < 1 || v.k > MAX_DEPTH)) problems.add("/vector/k", `an integer from 1 to ${MAX_DEPTH}`);
		else if (v.value !== undefined) {
			const value = new Float32Array(dim);
			if (v.value.length !== dim) problems.add("/vector/value", `expected ${dim} numbers (the dim of "${layout.vector.field}"), got ${v.value.length}`);
			else if (!v.value.every((x) => typeof x === "number" && Number.isFinite(x) && Math.abs(x) <= 3.4e38))
				problems.add("/vector/value", "every number must be finite (and within float32 range)");
			else {
				value.set(v.value);
				if (!normalise(value, 0, dim)) problems.add("/vector/value", "a zero vector has no direction to compare by");
			}
			vector = { value, key: null, k: v.k ?? DEFAULT_K };
		} else {
			// As any key (REST's body schema bounds it too; GraphQL's String does not): a clear 400, never "no such record".
			const why = keyProblem(v.key as string);
			if (why) problems.add("/vector/key", why);
			vector = { value: null, key: v.key as string, k: v.k ?? DEFAULT_K };
		}
		if (vector && sort.some((s) => s.kind === "field"))
			problems.add("/sort", "vector and hybrid results rank by _score; sort by fields is for text and filter queries");
	}

	const limit = query.limit ?? DEFAULT_LIMIT;
	if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) problems.add("/limit", `an integer from 1 to ${MAX_LIMIT}`);
	query.fields?.forEach((f, i) => {
		if (!Object.hasOwn(spec.fields, f)) problems.add(`/fields/${i}`, `unknown field "${f}"; ${spec.name} has ${Object.keys(spec.fields).join(", ")}`);
	});
	if (query.max_staleness !== undefined && !(Number.isFinite(query.max_staleness) && query.max_staleness >= 0))
		problems.add("/max_staleness", "expected seconds >= 0");

	if (problems.items.length) {
		throw new HotpathError("validation_failed", itemsDetail(problems.items), { errors: problems.items });
	}
	return { match, where, params, sort, vector, limit, fields: query.fields, highlight: query.highlight === true && match !== null };
}

/** ORDER BY of a ranking: the sort keys, then best score first where there is a score, then key (every order is total). */
function orderBy(sort: SortKey[], scored: boolean): string {
	const parts = sort.map((s) => (s.kind === "score" ? (scored ? "score DESC" : "") : `${s.col} ${s.desc ? "DESC" : "ASC"}`)).filter(Boolean);
	if (scored && !sort.some((s) => s.kind === "score")) parts.push("score DESC");
	parts.push("d.key");
	return parts.join(", ");
}

interface RankingRow {
	ids: string | null;
	scores: string | null;
	keys: string | null;
	version: number | null;
}

/**
 * Rankings this isolate computed, by statement and parameters, with the generation's version they
 * were read at: the docs table's highest `seq`, which every index write raises. A ranking is reused
 * only while the version is unchanged, so it is exactly as fresh as the index (one indexed lookup
 * instead of ranking again: a common word's BM25 over every match costs tens of milliseconds).
 */
const rankings = new Map<string, { version: number; entries: Entry[] }>();
const MAX_CACHED_RANKINGS = 64;

/**
 * Runs a ranking (`SELECT id, score ... ORDER BY ... LIMIT ?2`) and hands it back as one row: the
 * ids and scores in order as group_concat strings, the keys of the first ?3 (the first page) as
 * JSON, and the generation's version. D1 hands one row of a thousand ids over far faster than a
 * thousand rows.
 */
async function runRanking(db: D1Database, t: IndexTables, ranking: string, match: string | null, depth: number, plan: Plan): Promise<Entry[]> {
	const cacheKey = JSON.stringify([t.docs, ranking, match, depth, plan.params]);
	const cached = rankings.get(cacheKey);
	if (cached) {
		const now = await db.prepare(`SELECT max(seq) AS v FROM ${t.docs}`).first<{ v: number | null }>();
		if ((now?.v ?? 0) === cached.version) {
			rankings.delete(cacheKey);
			rankings.set(cacheKey, cached);
			return cached.entries;
		}
	}
	const sql = `WITH r AS MATERIALIZED (${ranking})
SELECT (SELECT group_concat(id) FROM r) AS ids, (SELECT group_concat(score) FROM r) AS scores,
  (SELECT json_group_array(json_array(p.id, d.key)) FROM (SELECT id FROM r LIMIT ?3) AS p JOIN ${t.docs} AS d ON d.id = p.id) AS keys,
  (SELECT max(seq) FROM ${t.docs}) AS version`;
	const row = await db
		.prepare(sql)
		.bind(match, depth, plan.limit, ...plan.params)
		.first<RankingRow>();
	let entries: Entry[] = [];
	if (row?.ids) {
		const scores = (row.scores ?? "").split(",");
		const keys = new Map<number, string>(JSON.parse(row.keys ?? "[]") as [number, string][]);
		entries = row.ids.split(",").map((id, i) => ({ id: Number(id), score: Number(scores[i] ?? 0), key: keys.get(Number(id)) }));
	}
	rankings.delete(cacheKey);
	rankings.set(cacheKey, { version: row?.version ?? 0, entries });
	for (const k of rankings.keys()) {
		if (rankings.size <= MAX_CACHED_RANKINGS) break;
		rankings.delete(k);
	}
	return entries;
}

/**
 * Text ranking: BM25 (FTS5's bm25() is lower-is-better; the score is its negation). Only live docs
 * have FTS rows, so a query with neither filter nor field sort needs no join with the docs. FTS5's
 * functions and MATCH take the table's own name, not an alias.
 */
function rankText(db: D1Database, t: IndexTables, plan: Plan, depth: number): Promise<Entry[]> {
	const plain = plan.where === "1" && !plan.sort.some((s) => s.kind === "field");
	// The plain ranking sorts by BM25 alone inside FTS5, then the page's depth is put in the documented
	// order, equal scores by key (as the joined ranking below orders them): a tie is only ever cut
	// arbitrarily at the depth's edge, past which nothing is served.
	const ranking = plain
		? `SELECT m.id AS id, m.score AS score FROM (SELECT rowid AS id, -rank AS score FROM ${t.fts} WHERE ${t.fts} MATCH ?1 ORDER BY rank LIMIT ?2) AS m
JOIN ${t.docs} AS d ON d.id = m.id ORDER BY m.score DESC, d.key`
		: `SELECT d.id AS id, -bm25(${t.fts}) AS score FROM ${t.fts} JOIN ${t.docs} AS d ON d.id = ${t.fts}.rowid
WHERE ${t.fts} MATCH ?1 AND (${plan.where}) ORDER BY ${orderBy(plan.sort, true)} LIMIT ?2`;
	return runRanking(db, t, ranking, plan.match, depth, plan);
}

/** Filter-only ranking: by the sort keys, else by key. */
function rankFilter(db: D1Database, t: IndexTables, plan: Plan, depth: number): Promise<Entry[]> {
	const ranking = `SELECT d.id AS id, 0 AS score FROM ${t.docs} AS d WHERE d.live = 1 AND (${plan.where}) ORDER BY ${orderBy(plan.sort, false)} LIMIT ?2`;
	return runRanking(db, t, ranking, null, depth, plan);
}

/** Vector neighbours a filtered vector query ranks first, then keeps those the filter passes. */
const POSTFILTER_DEPTH = 1000;

/** The ids (of `among`, when given) of live docs the filter passes. */
async function passing(db: D1Database, t: IndexTables, plan: Plan, among: number[] | null): Promise<Set<number>> {
	const sql = `SELECT group_concat(d.id) AS ids FROM ${t.docs} AS d WHERE d.live = 1 AND (${plan.where})${among ? " AND d.id IN (SELECT value FROM json_each(?1))" : ""}`;
	const row = await db
		.prepare(sql)
		.bind(among ? JSON.stringify(among) : null, null, null, ...plan.params)
		.first<{ ids: string | null }>();
	return new Set(row?.ids ? row.ids.split(",").map(Number) : []);
}

/**
 * Vector ranking: exact cosine k-NN within the filter; by a record's own vector, that record left
 * out. With a filter, the nearest POSTFILTER_DEPTH are ranked first and filtered: when k of them
 * pass, they are exactly the k nearest that pass (every doc past them is no nearer); otherwise the
 * filter's whole set is read and ranked. Docs that tie with the k-th come too (the caller cuts by key).
 */
async function rankVector(
	db: D1Database,
	dataset: string,
	gen: number,
	t: IndexTables,
	layout: IndexLayout,
	plan: Plan,
): Promise<{ entries: Entry[]; exclude: number | null }> {
	const v = plan.vector as NonNullable<Plan["vector"]>;
	const [set, byKey] = await Promise.all([
		vectorsOf(db, dataset, gen, t, layout.vector?.dim ?? 0),
		v.key === null ? null : db.prepare(`SELECT id FROM ${t.docs} WHERE key = ?1 AND live = 1`).bind(v.key).first<{ id: number }>(),
	]);
	let query = v.value;
	let exclude: number | null = null;
	if (v.key !== null) {
		if (!byKey) throw new HotpathError("not_found", `no record "${v.key}" in the search index of "${dataset}" (vector.key)`);
		query = set.vectorOf(byKey.id);
		if (!query) {
			throw new HotpathError("validation_failed", `record "${v.key}" has no ${layout.vector?.field} vector to search by`, {
				errors: [{ pointer: "/vector/key", detail: "the record has no vector" }],
			});
		}
		exclude = byKey.id;
	}
	const q = query as Float32Array;
	if (plan.where === "1") return { entries: set.nearest(q, v.k, null, exclude), exclude };
	const depth = Math.max(POSTFILTER_DEPTH, v.k);
	const nearest = set.nearest(q, depth, null, exclude);
	const pass = await passing(
		db,
		t,
		plan,
		nearest.map((e) => e.id),
	);
	const kept = nearest.filter((e) => pass.has(e.id));
	if (kept.length >= v.k || nearest.length < depth) return { entries: kept, exclude };
	return { entries: set.nearest(q, v.k, await passing(db, t, plan, null), exclude), exclude };
}

/** Reciprocal rank fusion of rankings: each doc scores the sum of 1 / (RRF_K + its rank) over the rankings it is in. */
export function fuse(rankings: Entry[][]): Entry[] {
	const fused = new Map<number, Entry>();
	for (const ranking of rankings) {
		ranking.forEach((e, i) => {
			const seen = fused.get(e.id);
			const add = 1 / (RRF_K + i + 1);
			if (seen) {
				seen.score += add;
				seen.key ??= e.key;
			} else fused.set(e.id, { id: e.id, score: add, key: e.key });
		});
	}
	return [...fused.values()].sort((a, b) => b.score - a.score || a.id - b.id);
}

/**
 * Puts equal scores of a ranking in key order, as the SQL rankings do ("ties by key"): the vector
 * ranking and the fusion tie by doc id, which is the order docs were first indexed. Only tied
 * entries are looked up (one statement, none when nothing ties); they get their keys on the way.
 */
async function tiesByKey(db: D1Database, t: IndexTables, entries: Entry[]): Promise<Entry[]> {
	const tied: Entry[] = [];
	for (let i = 0; i < entries.length; i++) {
		const e = entries[i] as Entry;
		if (entries[i - 1]?.score === e.score || entries[i + 1]?.score === e.score) tied.push(e);
	}
	if (!tied.length) return entries;
	// In SQL's own key order (BINARY, as the rankings' ORDER BY d.key), not JavaScript's.
	const rows = await db
		.prepare(`SELECT id, key FROM ${t.docs} WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY key`)
		.bind(JSON.stringify(tied.map((e) => e.id)))
		.raw<[number, string]>();
	const byId = new Map(tied.map((e) => [e.id, e]));
	const order = new Map<number, number>();
	rows.forEach(([id, key], i) => {
		order.set(id, i);
		const e = byId.get(id);
		if (e) e.key ??= key;
	});
	const at = (e: Entry) => order.get(e.id) ?? Number.MAX_SAFE_INTEGER;
	// Stable: only entries of equal score move, and only among themselves.
	return [...entries].sort((a, b) => b.score - a.score || at(a) - at(b));
}

/** The ranking of the first page, up to MAX_DEPTH docs. */
async function rank(db: D1Database, dataset: string, gen: number, layout: IndexLayout, plan: Plan): Promise<Entry[]> {
	const t = tablesOf(dataset, gen);
	if (!plan.vector) return plan.match ? rankText(db, t, plan, MAX_DEPTH) : rankFilter(db, t, plan, MAX_DEPTH);
	// Cut after ties are put in key order: of docs tied at the k-th place (or the depth's edge), those first by key make it.
	const k = plan.vector.k;
	const vector = rankVector(db, dataset, gen, t, layout, plan).then(async ({ entries, exclude }) => ({
		near: (await tiesByKey(db, t, entries)).slice(0, k),
		exclude,
	}));
	if (!plan.match) return (await vector).near;
	const [text, { near, exclude }] = await Promise.all([rankText(db, t, plan, MAX_DEPTH), vector]);
	// Records like vector.key: the record itself is left out of the whole result, not only of the
	// vector ranking (its text may well match q too).
	const others = exclude === null ? text : text.filter((e) => e.id !== exclude);
	return (await tiesByKey(db, t, fuse([others, near]))).slice(0, MAX_DEPTH);
}

/**
 * Takes the next `limit` entries whose docs still exist, finding their keys where the ranking did
 * not carry them. Returns the page and the entries left.
 */
async function takePage(db: D1Database, t: IndexTables, entries: Entry[], limit: number): Promise<{ page: Required<Entry>[]; rest: Entry[] }> {
	const page: Required<Entry>[] = [];
	let next = 0;
	// A few rounds at most: each replaces the docs deleted since the ranking.
	for (let round = 0; round < 3 && page.length < limit && next < entries.length; round++) {
		const chunk = entries.slice(next, next + limit - page.length);
		next += chunk.length;
		const unknown = chunk.filter((e) => e.key === undefined).map((e) => e.id);
		const keys = new Map<number, string>();
		if (unknown.length) {
			const rows = await db
				.prepare(`SELECT id, key FROM ${t.docs} WHERE id IN (SELECT value FROM json_each(?1)) AND live = 1`)
				.bind(JSON.stringify(unknown))
				.raw<[number, string]>();
			for (const [id, key] of rows) keys.set(id, key);
		}
		for (const e of chunk) {
			const key = e.key ?? keys.get(e.id);
			if (key !== undefined) page.push({ id: e.id, score: e.score, key });
		}
	}
	return { page, rest: entries.slice(next) };
}

/** FTS5 highlight() of the page's docs: per doc, the text fields the query matched. */
async function highlights(
	db: D1Database,
	t: IndexTables,
	layout: IndexLayout,
	plan: Plan,
	ids: number[],
): Promise<Map<number, Record<string, string | string[]>>> {
	const cols = layout.text.map((_, i) => `highlight(${t.fts}, ${i}, ?3, ?4) AS h${i}`).join(", ");
	const rows = await db
		.prepare(`SELECT rowid AS id, ${cols} FROM ${t.fts} WHERE ${t.fts} MATCH ?1 AND rowid IN (SELECT value FROM json_each(?2))`)
		.bind(plan.match, JSON.stringify(ids), MARK[0], MARK[1])
		.all<Record<string, string | number | null>>();
	const out = new Map<number, Record<string, string | string[]>>();
	for (const row of rows.results) {
		const marked: Record<string, string | string[]> = {};
		layout.text.forEach((f, i) => {
			const h = row[`h${i}`];
			if (typeof h !== "string" || !h.includes(MARK[0])) return;
			marked[f.field] = f.list ? h.split(ITEM_SEPARATOR).filter((item) => item.includes(MARK[0])) : h;
		});
		out.set(row.id as number, marked);
	}
	return out;
}

/**
 * JSON text with every object's members in name order: JSON objects are unordered, so a filter
 * written {"gte": 0, "lt": 9} on one page and {"lt": 9, "gte": 0} on the next (or in another API)
 * is the same query to its cursor. Written as text, never rebuilt as an object, so a member named
 * "__proto__" is kept as what it is. The input passed planQuery: its nesting is bounded.
 */
function canonicalJson(v: unknown): string {
	if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
	if (v !== null && typeof v === "object") {
		const o = v as Record<string, unknown>;
		return `{${Object.keys(o)
			.sort()
			.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
			.join(",")}}`;
	}
	return JSON.stringify(v) ?? "null";
}

/** A score as reported: float32 precision, then 6 significant digits, so the first page and cursor pages agree. */
const reportScore = (s: number): number => Number(Math.fround(s).toPrecision(6));

/**
 * Searches a dataset. Throws HotpathError: validation_failed (a bad query, naming where),
 * bad_request (a bad cursor), conflict (no index yet, rebuilt since the cursor, past the vector
 * limit), not_found (vector.key unknown), unavailable (no SEARCH_DB, or no tier could read a hit).
 */
export async function searchDataset(services: Services, spec: DatasetSpec, query: SearchQuery, ctx: ReadContext): Promise<SearchResult> {
	try {
		return await searchOnce(services, spec, query, ctx);
	} catch (e) {
		if (e instanceof HotpathError) throw e;
		// SEARCH_DB failing is an outage of the index, not a bug of the request.
		log.error("search failed in SEARCH_DB", { dataset: spec.name, error: String(e) });
		throw new HotpathError("unavailable", `the search index of "${spec.name}" could not be read; retry shortly`, { retryAfterSeconds: 1 });
	}
}

async function searchOnce(services: Services, spec: DatasetSpec, query: SearchQuery, ctx: ReadContext): Promise<SearchResult> {
	const started = performance.now();
	const db = searchDb(services);
	if (!db) throw new HotpathError("unavailable", "search is not configured: the worker has no SEARCH_DB binding (wrangler.toml)", { retryAfterSeconds: 60 });
	if (!spec.search) {
		throw new HotpathError("bad_request", `dataset "${spec.name}" is not searchable: its spec has no "search" (PUT /v1/datasets/${spec.name} with one)`);
	}
	for (let attempt = 0; ; attempt++) {
		const meta = await metaForQuery(db, spec.name, attempt > 0);
		if (!meta || meta.gen === null || !meta.layout) {
			throw new HotpathError("conflict", `dataset "${spec.name}" has no search index yet; GET /v1/datasets/${spec.name}/search shows its status`);
		}
		try {
			const plan = planQuery(query, spec, meta.layout, meta.buildGen !== null);
			const t = tablesOf(spec.name, meta.gen);
			// The sort as parsed: "price", ["price"] and [{"field": "price"}] are one query (GraphQL's sort is always a list).
			const sort = query.sort === undefined ? null : plan.sort.map((k) => (k.kind === "score" ? "_score" : `${k.desc ? "-" : ""}${k.field}`));
			const hash = queryHash(JSON.stringify([spec.name, query.q ?? null, canonicalJson(query.filter ?? null), sort, canonicalJson(query.vector ?? null)]));
			let entries: Entry[];
			if (query.cursor !== undefined) {
				const state = decodeSearchCursor(query.cursor);
				if (state.hash !== hash) {
					throw new HotpathError("bad_request", "cursor belongs to another query: send the same q, filter, sort and vector as the first page", {
						errors: [{ pointer: "/cursor", detail: "made for another query" }],
					});
				}
				if (state.gen !== meta.gen) {
					throw new HotpathError("conflict", `the search index of "${spec.name}" was rebuilt since the first page; search again without cursor`);
				}
				entries = state.rest;
			} else entries = await ctx.timing.measure("search", () => rank(db, spec.name, meta.gen as number, meta.layout as IndexLayout, plan));

			const { page, rest } = await takePage(db, t, entries, plan.limit);
			const [marks, read] = await Promise.all([
				plan.highlight && page.length
					? highlights(
							db,
							t,
							meta.layout,
							plan,
							page.map((e) => e.id),
						)
					: null,
				page.length
					? lookupRecords(
							services.reader,
							[{ spec, keys: page.map((e) => e.key), fields: plan.fields }],
							{ maxStalenessS: query.max_staleness, ifStale: query.if_stale ?? "serve" },
							ctx,
						)
					: null,
			]);
			const views = read?.results[0]?.records ?? [];
			const hits: SearchHit[] = [];
			page.forEach((e, i) => {
				const view = views[i];
				// The index may lag D1 a moment: a doc whose record reads as gone is left out.
				if (!view || view.status === "not_found") return;
				const hit: SearchHit = {
					key: e.key,
					score: reportScore(e.score),
					status: view.status,
					value: view.value,
					event_time: view.event_time,
					age_ms: view.age_ms,
				};
				// A value withheld as stale (if_stale=omit) is withheld from its highlights too: they quote it.
				if (marks) hit.highlights = view.value === null ? {} : (marks.get(e.id) ?? {});
				hits.push(hit);
			});
			return {
				hits,
				next_cursor: rest.length ? encodeSearchCursor({ gen: meta.gen, hash, rest }) : null,
				took_ms: Math.round((performance.now() - started) * 10) / 10,
				tiers: read?.tiers ?? [],
			};
		} catch (e) {
			if (!isMissingTable(e)) throw e;
			// The generation was dropped under this query (a build finished): read the catalogue again, once.
			if (attempt === 0) continue;
			throw new HotpathError(
				"conflict",
				`the search index of "${spec.name}" has lost its tables; POST /v1/datasets/${spec.name}/search/reindex rebuilds it from D1`,
			);
		}
	}
}
