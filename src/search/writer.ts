/**
 * The index writer: the consumer, imports, rebuilds and index builds hand it D1's state of keys
 * after D1 committed, and it brings every generation of the dataset's index (the one queries use,
 * and the one being built) up to that state in one SEARCH_DB transaction.
 *
 * Index writes follow the same convergence rule as the caches: each doc carries the D1 revision it
 * reflects, and a write lands only over an older revision, so a late or replayed write never
 * replaces a newer one. A delete leaves the doc as a tombstone (live = 0, out of the FTS table and
 * of every filter), so an older write cannot bring it back.
 */
import { log } from "../observability/log";
import type { Services } from "../services";
import type { CachedRecord } from "../storage/cached-record";
import { packRows } from "../storage/json-rows";
import { type IndexLayout, ITEM_SEPARATOR, isMissingTable, tablesOf, vectorHex } from "./layout";
import { readMetas, writeTargets } from "./meta";

/** D1's state of one key, as the writer takes it. */
export interface IndexDoc {
	dataset: string;
	key: string;
	rec: CachedRecord;
}

const ATTEMPTS = 3;

/** The search database, when the worker has one (search is off without it). */
export function searchDb(services: Services): D1Database | undefined {
	return (services.env as { SEARCH_DB?: D1Database }).SEARCH_DB;
}

/**
 * A text field as FTS5 indexes it: in Unicode compatibility form (NFKC), as queries are
 * (matchExpression), so a word copied from a record finds it whatever form it was written in
 * (full-width "ＰＣ", half-width "ｶﾀｶﾅ", the ligature "ﬁ", "x²"). Highlights show this form.
 */
const textOf = (v: unknown, list: boolean): string | null =>
	list
		? Array.isArray(v)
			? v
					.filter((x) => typeof x === "string")
					.map((x) => x.normalize("NFKC"))
					.join(ITEM_SEPARATOR)
			: null
		: typeof v === "string"
			? v.normalize("NFKC")
			: null;

function filterOf(v: unknown, type: IndexLayout["filters"][number]["type"]): unknown {
	switch (type) {
		case "string":
			return typeof v === "string" ? v : null;
		case "int":
		case "float":
			return typeof v === "number" && Number.isFinite(v) ? v : null;
		case "bool":
			return typeof v === "boolean" ? v : null;
		case "string[]":
			return Array.isArray(v) ? JSON.stringify(v.filter((x) => typeof x === "string")) : null;
	}
}

function vectorOf(v: unknown, dim: number): string | null {
	if (!Array.isArray(v) || v.length !== dim || !v.every((x) => typeof x === "number" && Number.isFinite(x))) return null;
	return vectorHex(v);
}

/** One doc as a JSON row: [key, rev, live, ...text columns, ...filter columns, vector hex]. */
function docRow(layout: IndexLayout, key: string, rec: CachedRecord): string {
	const v = rec.v;
	const row: unknown[] = [key, rec.r, v ? 1 : 0];
	for (const t of layout.text) row.push(v ? textOf(v[t.field], t.list) : null);
	for (const f of layout.filters) row.push(v ? filterOf(v[f.field], f.type) : null);
	row.push(v && layout.vector ? vectorOf(v[layout.vector.field], layout.vector.dim) : null);
	return JSON.stringify(row);
}

/**
 * The statements that write docs (one per key, the newest revision of each) into one generation:
 * FTS rows of docs about to be replaced go, the docs are upserted where newer, and FTS rows are
 * written for live docs now at the written revision that have none.
 */
export function docStatements(db: D1Database, dataset: string, gen: number, layout: IndexLayout, docs: readonly IndexDoc[]): D1PreparedStatement[] {
	const t = tablesOf(dataset, gen);
	const T = layout.text.length;
	const F = layout.filters.length;
	const fcols = layout.filters.map((_, i) => `, f${i}`).join("");
	const fvals = layout.filters.map((_, i) => `, w.value ->> ${3 + T + i}`).join("");
	const fset = layout.filters.map((_, i) => `, f${i} = excluded.f${i}`).join("");
	const upsert = `INSERT INTO ${t.docs} (key, rev, live, seq${fcols})
SELECT w.value ->> 0, w.value ->> 1, w.value ->> 2, (SELECT coalesce(max(seq), 0) + 1 FROM ${t.docs})${fvals} FROM json_each(?1) AS w WHERE true
ON CONFLICT (key) DO UPDATE SET rev = excluded.rev, live = excluded.live, seq = excluded.seq${fset} WHERE excluded.rev > ${t.docs}.rev`;
	// A doc's vector row follows its doc row: written with the doc's new seq when the doc was, null for a tombstone.
	const putVec = `INSERT INTO ${t.vecs} (id, seq, vec) SELECT d.id, d.seq, CASE WHEN d.live = 1 THEN unhex(w.value ->> ${3 + T + F}) END
FROM json_each(?1) AS w JOIN ${t.docs} AS d ON d.key = w.value ->> 0 WHERE d.rev = w.value ->> 1
ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, vec = excluded.vec WHERE excluded.seq > ${t.vecs}.seq`;
	const ftsCols = layout.text.map((_, i) => `, c${i}`).join("");
	const ftsVals = layout.text.map((_, i) => `, w.value ->> ${3 + i}`).join("");
	const dropFts = `DELETE FROM ${t.fts} WHERE rowid IN (SELECT d.id FROM json_each(?1) AS w JOIN ${t.docs} AS d ON d.key = w.value ->> 0 WHERE d.rev < w.value ->> 1)`;
	const addFts = `INSERT INTO ${t.fts} (rowid${ftsCols}) SELECT d.id${ftsVals} FROM json_each(?1) AS w JOIN ${t.docs} AS d ON d.key = w.value ->> 0
WHERE d.rev = w.value ->> 1 AND d.live = 1 AND NOT EXISTS (SELECT 1 FROM ${t.fts} AS x WHERE x.rowid = d.id)`;

	// The newest revision of each key: a statement writes a key once.
	const newest = new Map<string, IndexDoc>();
	for (const d of docs) {
		const seen = newest.get(d.key);
		if (!seen || seen.rec.r < d.rec.r) newest.set(d.key, d);
	}
	const rows = [...newest.values()].map((d) => docRow(layout, d.key, d.rec));
	const out: D1PreparedStatement[] = [];
	for (const json of packRows(rows)) {
		if (T) out.push(db.prepare(dropFts).bind(json));
		out.push(db.prepare(upsert).bind(json));
		if (T) out.push(db.prepare(addFts).bind(json));
		if (layout.vector) out.push(db.prepare(putVec).bind(json));
	}
	return out;
}

/**
 * Writes D1's state of these keys into every generation of their datasets' indexes. Keys of
 * datasets that are not searchable are skipped without I/O. Throws when SEARCH_DB refuses.
 */
export async function indexDocs(services: Services, docs: readonly IndexDoc[]): Promise<void> {
	const db = searchDb(services);
	if (!db || !docs.length) return;
	const specs = await services.registry.all();
	const byDataset = new Map<string, IndexDoc[]>();
	for (const d of docs) {
		if (!specs.get(d.dataset)?.search) continue;
		const list = byDataset.get(d.dataset);
		if (list) list.push(d);
		else byDataset.set(d.dataset, [d]);
	}
	if (!byDataset.size) return;
	for (let attempt = 1; ; attempt++) {
		// The catalogue is read for every write, never cached: a build registered a moment ago must
		// get this write too, or the keys its pages already passed would miss it.
		const metas = await readMetas(db, [...byDataset.keys()]);
		const stmts: D1PreparedStatement[] = [];
		for (const [dataset, list] of byDataset) {
			const meta = metas.get(dataset);
			if (meta) for (const target of writeTargets(meta)) stmts.push(...docStatements(db, dataset, target.gen, target.layout, list));
		}
		if (!stmts.length) return;
		try {
			await db.batch(stmts);
			return;
		} catch (e) {
			// A generation was dropped under us (a build finished, or search was turned off): read the catalogue again.
			if (!isMissingTable(e) || attempt >= ATTEMPTS) throw e;
			log.info("a search index generation went away during a write; writing again", { datasets: [...byDataset.keys()] });
		}
	}
}
