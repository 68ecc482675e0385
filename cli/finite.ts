/**
 * Numbers JSON cannot carry. `JSON.parse` reads `1e400` as Infinity and `JSON.stringify` writes
 * Infinity and NaN as null, so a client that parses a line and sends it again turns a number the
 * server would refuse ("expected a finite number") into a missing value it accepts.
 */

/** A member name as a path step: `.name` when it reads as one, else `["na me"]`. */
const step = (name: string): string => (/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`);

/**
 * The path (from `where`: `value.score`, `tags[2]`) and the value of the first number in `v` that
 * is not finite, or undefined when there is none.
 */
export function nonFinite(v: unknown, where = ""): { path: string; value: number } | undefined {
	if (typeof v === "number") return Number.isFinite(v) ? undefined : { path: where, value: v };
	if (v === null || typeof v !== "object") return undefined;
	if (Array.isArray(v)) {
		for (let i = 0; i < v.length; i++) {
			const found = nonFinite(v[i], `${where}[${i}]`);
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
	const hint = Number.isNaN(found.value) ? "" : ` (a number too large for JSON, such as 1e400, reads as ${found.value})`;
	return `${found.path || "the value"}: expected a finite number, not ${found.value}${hint}`;
}
