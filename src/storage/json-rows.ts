/**
 * Many rows in one D1 statement: the rows travel as one JSON array parameter that `json_each`
 * unpacks (D1 allows 100 bound parameters, but strings of up to 2 MB).
 */

// Bounds on one statement: its JSON parameter stays under D1's 2 MB per string (counted in UTF-16
// units, at most 3 bytes each), and one statement's work well under D1's per-query time limit.
export const STATEMENT_CHARS = 600_000;
export const STATEMENT_ROWS = 500;

/** Packs JSON rows (each already JSON text) into arrays of at most STATEMENT_ROWS rows and STATEMENT_CHARS characters. */
export function packRows(rows: readonly string[]): string[] {
	const out: string[] = [];
	let cur: string[] = [];
	let chars = 0;
	for (const row of rows) {
		if (cur.length && (cur.length >= STATEMENT_ROWS || chars + row.length > STATEMENT_CHARS)) {
			out.push(`[${cur.join(",")}]`);
			cur = [];
			chars = 0;
		}
		cur.push(row);
		chars += row.length;
	}
	if (cur.length) out.push(`[${cur.join(",")}]`);
	return out;
}
