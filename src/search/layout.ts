/**
 * The shape of one dataset's search index, derived from its spec: which fields are full text (FTS5
 * columns c0, c1...), which are filters (typed columns f0, f1... of the docs table) and which one is
 * the vector (a Float32 blob). Columns are numbered, not named after fields: SQLite column names are
 * case-insensitive and FTS5 reserves some ("rank", "rowid"), while field names are neither.
 *
 * Each build of a dataset's index is a generation with tables of its own (`s_<dataset>_<gen>_*`),
 * so a changed spec is indexed into new tables while queries keep using the old ones.
 */
import type { DatasetSpec } from "../registry/spec";

export type FilterType = "string" | "int" | "float" | "bool" | "string[]";

export interface IndexLayout {
	/** Text fields in FTS column order; `list` for string[] fields (their items joined by ITEM_SEPARATOR). */
	text: { field: string; list: boolean }[];
	/** Filter fields in docs column order. */
	filters: { field: string; type: FilterType }[];
	vector: { field: string; dim: number } | null;
}

/**
 * Joins a string[] field's items into one FTS column: U+2029 (paragraph separator) is a separator
 * to FTS5's unicode61 tokenizer, so no phrase spans two items, and highlights split back on it.
 */
export const ITEM_SEPARATOR = "\u2029";

/** The index layout a spec asks for, or null when the dataset is not searchable. */
export function layoutOf(spec: DatasetSpec): IndexLayout | null {
	const s = spec.search;
	if (!s) return null;
	const typeOf = (field: string) => (Object.hasOwn(spec.fields, field) ? spec.fields[field]?.type : undefined);
	return {
		text: (s.text ?? []).map((field) => ({ field, list: typeOf(field) === "string[]" })),
		filters: (s.filters ?? []).map((field) => ({ field, type: typeOf(field) as FilterType })),
		vector: s.vector === undefined ? null : { field: s.vector, dim: spec.fields[s.vector]?.dim ?? 0 },
	};
}

export const sameLayout = (a: IndexLayout | null, b: IndexLayout | null): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Table and index names of one generation. Dataset names are ^[a-z][a-z0-9_]{0,62}$, so these need no escaping. */
export interface IndexTables {
	docs: string;
	fts: string;
	vecs: string;
	prefix: string;
}

export function tablesOf(dataset: string, gen: number): IndexTables {
	const prefix = `s_${dataset}_${gen}`;
	return { docs: `"${prefix}_docs"`, fts: `"${prefix}_fts"`, vecs: `"${prefix}_vecs"`, prefix };
}

const SQL_TYPES: Record<FilterType, string> = { string: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER", "string[]": "TEXT" };

/**
 * The statements that create one generation's tables. `docs` holds one row per key ever indexed:
 * an explicit integer id (the FTS rowid, stable for the key), the D1 revision it reflects (index
 * writes are guarded by it), `live` (0: deleted in D1, kept as a tombstone so an older write cannot
 * bring it back), `seq` (grows with every write statement) and the filter columns (each with an
 * index, for range filters and sorts). Vectors live in `vecs`, by doc id with the doc's `seq`
 * (what the vector cache reads deltas by), so docs rows stay small for scans. Live docs have an
 * FTS row; tombstones have none.
 */
export function createStatements(dataset: string, gen: number, layout: IndexLayout): string[] {
	const t = tablesOf(dataset, gen);
	const filterCols = layout.filters.map((f, i) => `, f${i} ${SQL_TYPES[f.type]}`).join("");
	const out = [
		`CREATE TABLE IF NOT EXISTS ${t.docs} (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, rev INTEGER NOT NULL, live INTEGER NOT NULL, seq INTEGER NOT NULL${filterCols})`,
		`CREATE INDEX IF NOT EXISTS "${t.prefix}_seq" ON ${t.docs} (seq)`,
	];
	if (layout.vector) {
		out.push(`CREATE TABLE IF NOT EXISTS ${t.vecs} (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, vec BLOB)`);
		out.push(`CREATE INDEX IF NOT EXISTS "${t.prefix}_vseq" ON ${t.vecs} (seq)`);
	}
	layout.filters.forEach((f, i) => {
		// A string[] filter is matched with json_each (contains); a b-tree index on its JSON text would not help.
		if (f.type !== "string[]") out.push(`CREATE INDEX IF NOT EXISTS "${t.prefix}_f${i}" ON ${t.docs} (f${i})`);
	});
	if (layout.text.length) {
		const cols = layout.text.map((_, i) => `c${i}`).join(", ");
		// remove_diacritics 2: "café" matches "cafe", also for letters with several diacritics.
		out.push(`CREATE VIRTUAL TABLE IF NOT EXISTS ${t.fts} USING fts5(${cols}, tokenize = 'unicode61 remove_diacritics 2')`);
	}
	return out;
}

export function dropStatements(dataset: string, gen: number): string[] {
	const t = tablesOf(dataset, gen);
	return [`DROP TABLE IF EXISTS ${t.fts}`, `DROP TABLE IF EXISTS ${t.vecs}`, `DROP TABLE IF EXISTS ${t.docs}`];
}

/** Whether a D1 error says a table is gone: a generation was dropped (replaced or unsearchable) under the caller. */
export const isMissingTable = (e: unknown): boolean => /no such table/i.test(String((e as Error)?.message ?? e));

/** Float32 vector -> lowercase hex of its bytes (little-endian), as unhex() in SQL turns it into a blob. */
export function vectorHex(values: readonly number[]): string {
	const bytes = new Uint8Array(new Float32Array(values).buffer);
	let out = "";
	for (const b of bytes) out += HEX[b];
	return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** A hex digit's value, or -1. */
function nibble(c: number): number {
	if (c >= 48 && c <= 57) return c - 48;
	const l = c | 32;
	return l >= 97 && l <= 102 ? l - 87 : -1;
}

/**
 * Hex of a Float32 blob (as SQL's hex() gives it, either case) -> the floats, written into `out` at
 * `offset`. Returns false when malformed. Decoded a character code at a time: a cold load decodes
 * millions of bytes.
 */
export function hexToFloats(hex: string, dim: number, out: Float32Array, offset: number): boolean {
	if (hex.length !== dim * 8) return false;
	const bytes = new Uint8Array(dim * 4);
	for (let i = 0; i < bytes.length; i++) {
		const hi = nibble(hex.charCodeAt(2 * i));
		const lo = nibble(hex.charCodeAt(2 * i + 1));
		if (hi < 0 || lo < 0) return false;
		bytes[i] = (hi << 4) | lo;
	}
	out.set(new Float32Array(bytes.buffer), offset);
	return true;
}
