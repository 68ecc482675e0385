/**
 * D1 queries for aggregate tiles (schema aggTiles, aggHll) and the log facts at a window's edges.
 * No policy here: which tiles a fact goes to and how a window is read are in src/aggregates.
 */

/** One fact in one tile: [dataset, key, event id, aggregate, resolution, tile start, value or null]. */
export type TileRow = [string, string, string, string, number, number, number | null];
/** One HyperLogLog register of a tile, from one fact: [dataset, key, event id, aggregate, resolution, tile start, register, rank]. */
export type HllRow = [string, string, string, string, number, number, number, number];
/** What many facts of one key add to one tile: [dataset, key, aggregate, resolution, tile start, count, sum, min or null, max or null]. */
export type TileSum = [string, string, string, number, number, number, number, number | null, number | null];
/** The highest rank many facts of one key give one register of a tile: [dataset, key, aggregate, resolution, tile start, register, rank]. */
export type RegisterMax = [string, string, string, number, number, number, number];

// Counts only facts whose log row this transaction inserted (its writer token): a fact applied
// before, redelivered now, is not in the log under this token, so it adds nothing.
const TILES_MANY = `INSERT INTO agg_tiles (dataset, key, agg, res, start, cnt, sum, mn, mx)
SELECT f.value ->> 0, f.value ->> 1, f.value ->> 3, f.value ->> 4, f.value ->> 5, count(*), total(f.value ->> 6), min(f.value ->> 6), max(f.value ->> 6)
FROM json_each(?1) AS f JOIN event_log AS l ON l.dataset = f.value ->> 0 AND l.key = f.value ->> 1 AND l.event_id = f.value ->> 2 AND l.writer = ?2
WHERE true GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (dataset, key, agg, res, start) DO UPDATE SET cnt = cnt + excluded.cnt, sum = sum + excluded.sum,
  mn = CASE WHEN mn IS NULL THEN excluded.mn WHEN excluded.mn IS NULL THEN mn ELSE min(mn, excluded.mn) END,
  mx = CASE WHEN mx IS NULL THEN excluded.mx WHEN excluded.mx IS NULL THEN mx ELSE max(mx, excluded.mx) END`;

// Registers merge by max, so a fact redelivered as it was changes nothing; but an id sent again
// with another time or value lands in another tile or register, so registers too are set only by
// facts whose log row this transaction inserted.
const HLL_MANY = `INSERT INTO agg_hll (dataset, key, agg, res, start, idx, rank)
SELECT h.value ->> 0, h.value ->> 1, h.value ->> 3, h.value ->> 4, h.value ->> 5, h.value ->> 6, h.value ->> 7
FROM json_each(?1) AS h JOIN event_log AS l ON l.dataset = h.value ->> 0 AND l.key = h.value ->> 1 AND l.event_id = h.value ->> 2 AND l.writer = ?2
WHERE true
ON CONFLICT (dataset, key, agg, res, start, idx) DO UPDATE SET rank = max(rank, excluded.rank)`;

/** The statements that fold rows of single facts into tiles; run them after the log insert of `token`, in its transaction. */
export function tileStatements(db: D1Database, tiles: readonly string[], hll: readonly string[], token: number): D1PreparedStatement[] {
	return [...tiles.map((json) => db.prepare(TILES_MANY).bind(json, token)), ...hll.map((json) => db.prepare(HLL_MANY).bind(json, token))];
}

// Sums of a key's facts, added only if this transaction wrote the key's record (its writer token):
// that write was refused if any of its events' ids was logged before, so it logged every one of
// them now, and their sums count each fact once. One row per tile instead of one per fact and
// tile, and one record seek per row instead of a log seek: facts of a hot key that share a minute
// cost one row.
const TILE_SUMS_MANY = `INSERT INTO agg_tiles (dataset, key, agg, res, start, cnt, sum, mn, mx)
SELECT t.value ->> 0, t.value ->> 1, t.value ->> 2, t.value ->> 3, t.value ->> 4, t.value ->> 5, t.value ->> 6, t.value ->> 7, t.value ->> 8
FROM json_each(?1) AS t CROSS JOIN records AS r ON r.dataset = t.value ->> 0 AND r.key = t.value ->> 1 AND r.writer = ?2
WHERE true
ON CONFLICT (dataset, key, agg, res, start) DO UPDATE SET cnt = cnt + excluded.cnt, sum = sum + excluded.sum,
  mn = CASE WHEN mn IS NULL THEN excluded.mn WHEN excluded.mn IS NULL THEN mn ELSE min(mn, excluded.mn) END,
  mx = CASE WHEN mx IS NULL THEN excluded.mx WHEN excluded.mx IS NULL THEN mx ELSE max(mx, excluded.mx) END`;

const REGISTER_MAX_MANY = `INSERT INTO agg_hll (dataset, key, agg, res, start, idx, rank)
SELECT t.value ->> 0, t.value ->> 1, t.value ->> 2, t.value ->> 3, t.value ->> 4, t.value ->> 5, t.value ->> 6
FROM json_each(?1) AS t CROSS JOIN records AS r ON r.dataset = t.value ->> 0 AND r.key = t.value ->> 1 AND r.writer = ?2
WHERE true
ON CONFLICT (dataset, key, agg, res, start, idx) DO UPDATE SET rank = max(rank, excluded.rank)`;

/** The statements that add the sums of keys whose records `token` wrote; run them after that write, in its transaction. */
export function tileSumStatements(db: D1Database, sums: readonly string[], registers: readonly string[], token: number): D1PreparedStatement[] {
	return [...sums.map((json) => db.prepare(TILE_SUMS_MANY).bind(json, token)), ...registers.map((json) => db.prepare(REGISTER_MAX_MANY).bind(json, token))];
}

/** A range [from, to) of tiles of resolution `res`, for aggregate `agg`. */
export type TileRangeRow = [agg: string, res: number, from: number, to: number];

export interface TileSums {
	key: string;
	agg: string;
	cnt: number;
	sum: number;
	mn: number | null;
	mx: number | null;
}

export interface RegisterRow {
	key: string;
	agg: string;
	idx: number;
	rank: number;
}

export interface EdgeFact {
	key: string;
	event_time: number;
	event_id: string;
	value: string | null;
}

export interface LastRow {
	key: string;
	agg: string;
	/** The field's value as JSON text. */
	v: string;
	event_time: number;
	event_id: string;
}

// Every read below walks its ranges (and keys) in the outer loop and seeks each one in the
// primary key or event_log_time: CROSS JOIN fixes that order (SQLite never reorders it). Left to
// itself the planner scanned every tile or fact of the key and re-parsed the ranges' JSON for
// each: ~500 ms for a key with 10,000 facts in 7 days, against ~1 ms this way.
const TILE_SUMS = `SELECT t.key, r.agg, sum(t.cnt) AS cnt, total(t.sum) AS sum, min(t.mn) AS mn, max(t.mx) AS mx
FROM (SELECT value ->> 0 AS agg, value ->> 1 AS res, value ->> 2 AS lo, value ->> 3 AS hi FROM json_each(?2)) AS r
  CROSS JOIN (SELECT value AS key FROM json_each(?3)) AS k
  CROSS JOIN agg_tiles AS t ON t.dataset = ?1 AND t.key = k.key AND t.agg = r.agg AND t.res = r.res AND t.start >= r.lo AND t.start < r.hi
GROUP BY t.key, r.agg`;

const REGISTERS = `SELECT h.key, r.agg, h.idx, max(h.rank) AS rank
FROM (SELECT value ->> 0 AS agg, value ->> 1 AS res, value ->> 2 AS lo, value ->> 3 AS hi FROM json_each(?2)) AS r
  CROSS JOIN (SELECT value AS key FROM json_each(?3)) AS k
  CROSS JOIN agg_hll AS h ON h.dataset = ?1 AND h.key = k.key AND h.agg = r.agg AND h.res = r.res AND h.start >= r.lo AND h.start < r.hi
GROUP BY h.key, r.agg, h.idx`;

const EDGE_FACTS = `SELECT DISTINCT l.key, l.event_time, l.event_id, l.value
FROM (SELECT value ->> 0 AS lo, value ->> 1 AS hi FROM json_each(?2)) AS e
  CROSS JOIN (SELECT value AS key FROM json_each(?3)) AS k
  CROSS JOIN event_log AS l ON l.dataset = ?1 AND l.key = k.key AND l.event_time >= e.lo AND l.event_time < e.hi AND l.op != 'delete'`;

// The n newest facts per key that carry the field, by event_time (not by arrival), and every fact
// tied with the n-th on its event_time. Per key, once: the n-th fact's time (a walk back through
// event_log_time from the window's end that stops at the n-th); then the facts from that time to the
// window's end, a range of the same index. (Compared row by row instead, the planner scanned every
// fact of the window: 40 ms for a key with 10,000 facts in 7 days, against 1 ms.) The caller orders
// ties by id as the merge does (JS strings, UTF-16): D1 orders text by UTF-8 bytes, which differs
// once an id holds a character beyond U+FFFF.
const carries = (l: string) => `${l}op != 'delete' AND json_type(${l}value, ?4) IS NOT NULL AND json_type(${l}value, ?4) != 'null'`;
const LAST_N = `WITH k AS MATERIALIZED (
  SELECT j.value AS key, (SELECT event_time FROM event_log WHERE dataset = ?1 AND key = j.value AND event_time > ?3 AND event_time <= ?6 AND ${carries("")}
    ORDER BY event_time DESC LIMIT 1 OFFSET ?7 - 1) AS edge
  FROM json_each(?2) AS j)
SELECT k.key, ?5 AS agg, l.value -> ?4 AS v, l.event_time, l.event_id
FROM k CROSS JOIN event_log AS l ON l.dataset = ?1 AND l.key = k.key AND l.event_time >= coalesce(k.edge, ?3) AND l.event_time > ?3 AND l.event_time <= ?6
WHERE ${carries("l.")}`;

// Facts of the keys read that a backfill still running has not folded into its aggregates' tiles
// yet: those its writers counted into no aggregate as new as the job's (agg_version below its
// `before`), of keys past its cursor (pages go in key order, and move the cursor in the transaction
// that writes their tiles), in the range of tiles read. With no job running, a seek of the dataset's
// running jobs that finds none. A job of a dataset its PUT created is left out: no fact predates it
// (those a consumer on the registry of a moment before logs are counted by its pages 30 s later),
// and looking would read every fact of the keys read until then.
const PENDING_FACTS = `SELECT j.before, j.aggs, l.key, l.event_time, l.event_id, l.value
FROM agg_backfills AS j
  CROSS JOIN (SELECT value AS key FROM json_each(?2)) AS k
  CROSS JOIN event_log AS l ON l.dataset = ?1 AND l.key = k.key AND l.event_time >= ?3 AND l.event_time < ?4
WHERE j.dataset = ?1 AND j.done = 0 AND j.new_dataset = 0 AND (j.cursor IS NULL OR k.key > j.cursor) AND l.op != 'delete' AND coalesce(l.agg_version, 0) < j.before`;

/** A fact not yet in the tiles of the aggregates of a running backfill (`aggs`, a JSON array of names, added at `before`). */
export interface PendingFact extends EdgeFact {
	before: number;
	aggs: string;
}

export interface AggregateQuery {
	/** Tile ranges of the count/sum/min/max/mean aggregates. */
	sumRanges: TileRangeRow[];
	/** Tile ranges of the distinct aggregates. */
	registerRanges: TileRangeRow[];
	/** Log ranges [from, to) whose facts are read one by one (the windows' edges). */
	edges: [number, number][];
	/** last_n aggregates: the window's start (exclusive), the field and n (the rows hold the facts tied with the n-th too, in no order). */
	lastN: { agg: string; field: string; after: number; n: number }[];
	/** The span [from, to) of every tile range above: where facts a running backfill has not counted yet are looked for. */
	tileSpan?: [number, number];
}

/** Everything the aggregates of some keys need at time `at`, in one round trip. */
export async function readAggregateParts(
	db: D1Database,
	dataset: string,
	keys: readonly string[],
	q: AggregateQuery,
	at: number,
): Promise<{ sums: TileSums[]; registers: RegisterRow[]; edgeFacts: EdgeFact[]; last: LastRow[]; pending: PendingFact[] }> {
	const keysJson = JSON.stringify(keys);
	// In the same batch (one transaction) as the tiles: a backfill page that lands between the two
	// reads would otherwise count its facts twice, or not at all.
	const stmts: D1PreparedStatement[] = [
		db.prepare(TILE_SUMS).bind(dataset, JSON.stringify(q.sumRanges), keysJson),
		db.prepare(REGISTERS).bind(dataset, JSON.stringify(q.registerRanges), keysJson),
		db.prepare(EDGE_FACTS).bind(dataset, JSON.stringify(q.edges), keysJson),
		...q.lastN.map((l) => db.prepare(LAST_N).bind(dataset, keysJson, l.after, `$."${l.field}"`, l.agg, at, l.n)),
		...(q.tileSpan ? [db.prepare(PENDING_FACTS).bind(dataset, keysJson, q.tileSpan[0], q.tileSpan[1])] : []),
	];
	const results = await db.batch(stmts);
	const pendingAt = 3 + q.lastN.length;
	return {
		sums: (results[0]?.results ?? []) as TileSums[],
		registers: (results[1]?.results ?? []) as RegisterRow[],
		edgeFacts: (results[2]?.results ?? []) as EdgeFact[],
		last: results.slice(3, pendingAt).flatMap((r) => r.results as LastRow[]),
		pending: q.tileSpan ? ((results[pendingAt]?.results ?? []) as PendingFact[]) : [],
	};
}

/** Deletes tiles of resolution `res` that start before `before`; returns how many. */
export async function pruneTiles(db: D1Database, res: number, before: number): Promise<number> {
	const [a, b] = await db.batch([
		db.prepare("DELETE FROM agg_tiles WHERE res = ?1 AND start < ?2").bind(res, before),
		db.prepare("DELETE FROM agg_hll WHERE res = ?1 AND start < ?2").bind(res, before),
	]);
	return (a?.meta.changes ?? 0) + (b?.meta.changes ?? 0);
}

// A backfill's tiles: plain additions, written only while the job's cursor is still where this page began.
const BACKFILL_TILES = `INSERT INTO agg_tiles (dataset, key, agg, res, start, cnt, sum, mn, mx)
SELECT f.value ->> 0, f.value ->> 1, f.value ->> 3, f.value ->> 4, f.value ->> 5, count(*), total(f.value ->> 6), min(f.value ->> 6), max(f.value ->> 6)
FROM json_each(?1) AS f
WHERE EXISTS (SELECT 1 FROM agg_backfills WHERE job = ?2 AND cursor IS ?3 AND done = 0) GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (dataset, key, agg, res, start) DO UPDATE SET cnt = cnt + excluded.cnt, sum = sum + excluded.sum,
  mn = CASE WHEN mn IS NULL THEN excluded.mn WHEN excluded.mn IS NULL THEN mn ELSE min(mn, excluded.mn) END,
  mx = CASE WHEN mx IS NULL THEN excluded.mx WHEN excluded.mx IS NULL THEN mx ELSE max(mx, excluded.mx) END`;

// A backfill's registers: its facts come from the log, each once per page; written only while the job's cursor is still where this page began.
const BACKFILL_HLL = `INSERT INTO agg_hll (dataset, key, agg, res, start, idx, rank)
SELECT h.value ->> 0, h.value ->> 1, h.value ->> 3, h.value ->> 4, h.value ->> 5, h.value ->> 6, h.value ->> 7 FROM json_each(?1) AS h
WHERE EXISTS (SELECT 1 FROM agg_backfills WHERE job = ?2 AND cursor IS ?3 AND done = 0)
ON CONFLICT (dataset, key, agg, res, start, idx) DO UPDATE SET rank = max(rank, excluded.rank)`;

const ADVANCE = `UPDATE agg_backfills SET cursor = ?3, keys_done = keys_done + ?4, done = ?5 WHERE job = ?1 AND cursor IS ?2 AND done = 0 RETURNING job`;

export interface BackfillJob {
	job: string;
	dataset: string;
	aggs: string[];
	before: number;
	cursor: string | null;
	keysDone: number;
	done: boolean;
}

/** Records a backfill job; false when a job of that id was already recorded (another writer started it). */
export async function startBackfill(
	db: D1Database,
	job: { job: string; dataset: string; aggs: string[]; before: number; startedAt: number; newDataset?: boolean },
): Promise<boolean> {
	const r = await db
		.prepare(
			"INSERT INTO agg_backfills (job, dataset, aggs, before, cursor, keys_done, done, started_at, new_dataset) VALUES (?1, ?2, ?3, ?4, NULL, 0, 0, ?5, ?6) ON CONFLICT (job) DO NOTHING",
		)
		.bind(job.job, job.dataset, JSON.stringify(job.aggs), job.before, job.startedAt, job.newDataset ? 1 : 0)
		.run();
	return (r.meta.changes ?? 0) > 0;
}

export async function getBackfill(db: D1Database, job: string): Promise<BackfillJob | null> {
	const r = await db
		.prepare("SELECT job, dataset, aggs, before, cursor, keys_done, done FROM agg_backfills WHERE job = ?1")
		.bind(job)
		.first<{ job: string; dataset: string; aggs: string; before: number; cursor: string | null; keys_done: number; done: number }>();
	return (
		r && { job: r.job, dataset: r.dataset, aggs: JSON.parse(r.aggs) as string[], before: r.before, cursor: r.cursor, keysDone: r.keys_done, done: r.done === 1 }
	);
}

/** Every backfill job of a dataset: which aggregates (by the time they were added, `before`) have one, and how far each got. */
export async function backfillsOf(db: D1Database, dataset: string): Promise<BackfillJob[]> {
	const { results } = await db
		.prepare("SELECT job, dataset, aggs, before, cursor, keys_done, done FROM agg_backfills WHERE dataset = ?1")
		.bind(dataset)
		.all<{ job: string; dataset: string; aggs: string; before: number; cursor: string | null; keys_done: number; done: number }>();
	return results.map((r) => ({
		job: r.job,
		dataset: r.dataset,
		aggs: JSON.parse(r.aggs) as string[],
		before: r.before,
		cursor: r.cursor,
		keysDone: r.keys_done,
		done: r.done === 1,
	}));
}

/** The facts of some keys whose writers counted no aggregate as new as `version`, with event_time after `after`: what a backfill page folds. */
export async function factsNotCounted(
	db: D1Database,
	dataset: string,
	keys: readonly string[],
	before: number,
	after: number,
): Promise<{ key: string; event_time: number; event_id: string; op: "upsert" | "patch" | "delete"; value: string | null }[]> {
	const { results } = await db
		.prepare(
			"SELECT key, event_time, event_id, op, value FROM event_log WHERE dataset = ?1 AND key IN (SELECT value FROM json_each(?2)) AND coalesce(agg_version, 0) < ?3 AND event_time > ?4 AND op != 'delete'",
		)
		.bind(dataset, JSON.stringify(keys), before, after)
		.all();
	return results as never;
}

/**
 * Writes one backfill page and moves the job's cursor from `from` to `to`, in one transaction, only
 * if the cursor is still at `from`. Returns false when another delivery of the page already did.
 */
export async function writeBackfillPage(
	db: D1Database,
	job: string,
	from: string | null,
	to: string | null,
	keys: number,
	done: boolean,
	tiles: readonly TileRow[],
	hll: readonly HllRow[],
): Promise<boolean> {
	const chunks = <T>(rows: readonly T[]) =>
		Array.from({ length: Math.ceil(rows.length / 5000) }, (_, i) => JSON.stringify(rows.slice(i * 5000, i * 5000 + 5000)));
	const stmts = [
		...chunks(tiles).map((json) => db.prepare(BACKFILL_TILES).bind(json, job, from)),
		...chunks(hll).map((json) => db.prepare(BACKFILL_HLL).bind(json, job, from)),
		db.prepare(ADVANCE).bind(job, from, to, keys, done ? 1 : 0),
	];
	const results = await db.batch(stmts);
	return ((results[results.length - 1]?.results ?? []) as unknown[]).length > 0;
}
