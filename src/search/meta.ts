/**
 * The index catalogue in SEARCH_DB: per dataset, the generation queries use (`gen`), the one being
 * built (`build_gen`, the same as `gen` for a first build), each with its layout, and the build's
 * progress. Created at runtime (no migrations for SEARCH_DB): `CREATE TABLE IF NOT EXISTS` once per
 * isolate.
 */
import type { IndexLayout } from "./layout";

export type IndexStatus = "building" | "ready" | "failed";

export interface IndexMeta {
	dataset: string;
	gen: number | null;
	layout: IndexLayout | null;
	buildGen: number | null;
	buildLayout: IndexLayout | null;
	job: string | null;
	status: IndexStatus;
	/** The last key of D1 the build has indexed (key order), or null before its first page. */
	afterKey: string | null;
	indexed: number;
	total: number;
	startedAt: number | null;
	finishedAt: number | null;
	error: string | null;
}

const CREATE = `CREATE TABLE IF NOT EXISTS search_indexes (
  dataset TEXT PRIMARY KEY, gen INTEGER, layout TEXT, build_gen INTEGER, build_layout TEXT, next_gen INTEGER NOT NULL DEFAULT 1,
  job TEXT, status TEXT NOT NULL DEFAULT 'ready', after_key TEXT, indexed INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER, finished_at INTEGER, error TEXT)`;

const ready = new WeakSet<D1Database>();

/** Creates the catalogue table if needed, once per isolate and database binding. */
export async function ensureCatalogue(db: D1Database): Promise<void> {
	if (ready.has(db)) return;
	await db.prepare(CREATE).run();
	ready.add(db);
}

interface MetaRow {
	dataset: string;
	gen: number | null;
	layout: string | null;
	build_gen: number | null;
	build_layout: string | null;
	job: string | null;
	status: string;
	after_key: string | null;
	indexed: number;
	total: number;
	started_at: number | null;
	finished_at: number | null;
	error: string | null;
}

const parse = (text: string | null): IndexLayout | null => (text === null ? null : (JSON.parse(text) as IndexLayout));

const toMeta = (r: MetaRow): IndexMeta => ({
	dataset: r.dataset,
	gen: r.gen,
	layout: parse(r.layout),
	buildGen: r.build_gen,
	buildLayout: parse(r.build_layout),
	job: r.job,
	status: r.status as IndexStatus,
	afterKey: r.after_key,
	indexed: r.indexed,
	total: r.total,
	startedAt: r.started_at,
	finishedAt: r.finished_at,
	error: r.error,
});

/** The catalogue rows of some datasets, by name. */
export async function readMetas(db: D1Database, datasets: readonly string[]): Promise<Map<string, IndexMeta>> {
	await ensureCatalogue(db);
	const { results } = await db
		.prepare("SELECT * FROM search_indexes WHERE dataset IN (SELECT value FROM json_each(?1))")
		.bind(JSON.stringify(datasets))
		.all<MetaRow>();
	return new Map(results.map((r) => [r.dataset, toMeta(r)]));
}

export async function readMeta(db: D1Database, dataset: string): Promise<IndexMeta | undefined> {
	return (await readMetas(db, [dataset])).get(dataset);
}

/** The generations index writes go to: the one queries use and the one being built (once when they are the same). */
export function writeTargets(meta: IndexMeta): { gen: number; layout: IndexLayout }[] {
	const out: { gen: number; layout: IndexLayout }[] = [];
	if (meta.gen !== null && meta.layout) out.push({ gen: meta.gen, layout: meta.layout });
	if (meta.buildGen !== null && meta.buildLayout && meta.buildGen !== meta.gen) out.push({ gen: meta.buildGen, layout: meta.buildLayout });
	return out;
}

/** Claims a new generation number for the dataset: no two builds ever share tables. */
export async function claimGeneration(db: D1Database, dataset: string): Promise<number> {
	await ensureCatalogue(db);
	const row = await db
		.prepare(
			"INSERT INTO search_indexes (dataset, next_gen) VALUES (?1, 2) ON CONFLICT (dataset) DO UPDATE SET next_gen = next_gen + 1 RETURNING next_gen - 1 AS gen",
		)
		.bind(dataset)
		.first<{ gen: number }>();
	if (!row) throw new Error("claiming a search index generation returned nothing");
	return row.gen;
}

/**
 * Registers a build of generation `gen`, if the catalogue still holds the generations the caller
 * saw (`seenGen`, `seenBuild`): of two concurrent starts, one registers and the other tries again.
 * A first build becomes the queries' generation at once (they see it fill up).
 */
export async function registerBuild(
	db: D1Database,
	b: { dataset: string; gen: number; layout: IndexLayout; job: string; total: number; now: number; seenGen: number | null; seenBuild: number | null },
): Promise<boolean> {
	const layout = JSON.stringify(b.layout);
	const row = await db
		.prepare(
			`UPDATE search_indexes SET build_gen = ?2, build_layout = ?3, gen = coalesce(gen, ?2), layout = coalesce(layout, ?3), job = ?4, status = 'building',
			 after_key = NULL, indexed = 0, total = ?5, started_at = ?6, finished_at = NULL, error = NULL
			 WHERE dataset = ?1 AND gen IS ?7 AND build_gen IS ?8 RETURNING dataset`,
		)
		.bind(b.dataset, b.gen, layout, b.job, b.total, b.now, b.seenGen, b.seenBuild)
		.first();
	return row !== null;
}

/**
 * The statement that records one page of a build, if `job` is still the running one and no other
 * delivery of its message recorded this page already (RETURNING a row then).
 */
export function pageProgressStatement(
	db: D1Database,
	dataset: string,
	job: string,
	fromKey: string | null,
	toKey: string | null,
	count: number,
): D1PreparedStatement {
	return db
		.prepare(
			"UPDATE search_indexes SET after_key = ?4, indexed = indexed + ?5, total = max(total, indexed + ?5) WHERE dataset = ?1 AND job = ?2 AND status = 'building' AND after_key IS ?3 RETURNING dataset",
		)
		.bind(dataset, job, fromKey, toKey, count);
}

/** Makes the built generation the queries' one. Returns false when `job` was replaced meanwhile. */
export async function finishBuild(db: D1Database, dataset: string, job: string, now: number): Promise<boolean> {
	const row = await db
		.prepare(
			`UPDATE search_indexes SET gen = build_gen, layout = build_layout, build_gen = NULL, build_layout = NULL, status = 'ready', finished_at = ?3
			 WHERE dataset = ?1 AND job = ?2 AND status = 'building' RETURNING dataset`,
		)
		.bind(dataset, job, now)
		.first();
	return row !== null;
}

export async function failBuild(db: D1Database, dataset: string, job: string, error: string, now: number): Promise<void> {
	await db
		.prepare("UPDATE search_indexes SET status = 'failed', error = ?3, finished_at = ?4 WHERE dataset = ?1 AND job = ?2")
		.bind(dataset, job, error.slice(0, 1000), now)
		.run();
}

/**
 * Forgets a dataset's index (the caller drops its tables). The row stays, with its next generation
 * number: a writer still holding the old catalogue can never write into a later build's tables.
 */
export async function clearMeta(db: D1Database, dataset: string): Promise<void> {
	await ensureCatalogue(db);
	await db
		.prepare(
			"UPDATE search_indexes SET gen = NULL, layout = NULL, build_gen = NULL, build_layout = NULL, job = NULL, status = 'ready', after_key = NULL, indexed = 0, total = 0, error = NULL WHERE dataset = ?1",
		)
		.bind(dataset)
		.run();
}

/** Catalogue rows as queries last read them, per dataset: queries need not read the catalogue every time. */
const forQueries = new Map<string, { meta: IndexMeta | undefined; at: number }>();
/** How long a query may use a catalogue row read earlier: a generation dropped meanwhile is noticed by its missing tables. */
const QUERY_META_MS = 1000;

/** The catalogue row of a dataset for a query: read at most every QUERY_META_MS per isolate, or now when `fresh`. */
export async function metaForQuery(db: D1Database, dataset: string, fresh = false, now = Date.now()): Promise<IndexMeta | undefined> {
	const hit = forQueries.get(dataset);
	if (hit && !fresh && now - hit.at < QUERY_META_MS) return hit.meta;
	const meta = await readMeta(db, dataset);
	forQueries.set(dataset, { meta, at: now });
	return meta;
}

/** Forgets what this isolate cached of a dataset's catalogue row (its generations changed). */
export function forgetMeta(dataset: string): void {
	forQueries.delete(dataset);
}
