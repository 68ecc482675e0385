/**
 * Numbers JSON cannot carry. `JSON.parse` reads `1e400` as Infinity and `JSON.stringify` writes
 * Infinity and NaN as null, so a client that parses a line and sends it again turns a number the
 * server would refuse ("expected a finite number") into a missing value it accepts.
 */

/** A member name as a path step: `.name` when it reads as one, else `["na me"]`. */
const step = (name: string): string => (/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`);

/**
 * The path (from `where`: `value.score`, `tags[2]`) and a description of the first value in `v`
 * that JSON cannot carry: a number that is not finite (NaN, ±Infinity, also inside typed arrays, as
 * Parquet hands vectors over) or an invalid Date. Undefined when there is none.
 */
export function nonFinite(v: unknown, where = ""): { path: string; what: string; value?: number } | undefined {
	if (typeof v === "number") return Number.isFinite(v) ? undefined : { path: where, what: String(v), value: v };
	if (v === null || typeof v !== "object") return undefined;
	if (v instanceof Date) return Number.isNaN(v.getTime()) ? { path: where, what: "an invalid date" } : undefined;
	if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) {
		const list = v as unknown as ArrayLike<unknown>;
		for (let i = 0; i < list.length; i++) {
			const found = nonFinite(list[i], `${where}[${i}]`);
			if (found) return found;
		}
		return undefined;
	}
	for (const [name, x] of Object.entries(v)) {
		const found = nonFinite(x, where ? `${where}${step(name)}` : name);
		if (found) return found;
	}
	return undefined;
}

/** Why a parsed document cannot be sent as it is (`value.score: expected a finite number, not Infinity (1e400 is read as Infinity)`), or undefined. */
export function nonFiniteError(v: unknown, where = ""): string | undefined {
	const found = nonFinite(v, where);
	if (!found) return undefined;
	if (found.value === undefined) return `${found.path || "the value"}: ${found.what} cannot be sent as JSON`;
	const hint = Number.isNaN(found.value) ? "" : ` (a number too large for JSON, such as 1e400, reads as ${found.value})`;
	return `${found.path || "the value"}: expected a finite number, not ${found.what}${hint}`;
}
