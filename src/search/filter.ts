/**
 * The query language's structured parts, checked against the index layout and compiled to SQL over
 * the docs table (alias `d`): filters (`{"price": {"lt": 20}, "or": [...]}`), sorts, and the text
 * query's MATCH expression. Every literal is a bound parameter (an `in` list is one JSON parameter
 * read with json_each), so no input reaches SQL or FTS5 as syntax, and a statement never needs more
 * than D1's 100 bound parameters.
 */
import { type ProblemItem, pointerToken } from "../errors";
import type { FilterType, IndexLayout } from "./layout";

/** Nesting of and/or a filter may have. */
export const MAX_FILTER_DEPTH = 8;
/** Operators one filter may hold in all (each binds one parameter). */
export const MAX_FILTER_CONDITIONS = 64;
/**
 * Filter objects one filter may hold in all, the top one and every and/or member included. Each
 * becomes SQL even when it holds no operator (`{}` matches everything), so without this bound a
 * body of empty objects compiles to a statement past D1's length limit.
 */
export const MAX_FILTER_NODES = 256;
/** Values one `in` list may hold. */
export const MAX_IN_VALUES = 1000;
/** Words a text query may have. */
export const MAX_QUERY_TERMS = 32;

const OPS: Record<FilterType, readonly string[]> = {
	string: ["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"],
	int: ["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"],
	float: ["eq", "ne", "lt", "lte", "gt", "gte", "in", "exists"],
	bool: ["eq", "ne", "in", "exists"],
	"string[]": ["contains", "exists"],
};
const ALL_OPS = ["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists"];
const COMPARE: Record<string, string> = { lt: "<", lte: "<=", gt: ">", gte: ">=" };

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Collects problems, up to a bound: a hostile filter of a million bad names gets a short answer. */
export class Problems {
	readonly items: ProblemItem[] = [];
	add(pointer: string, detail: string): void {
		if (this.items.length < 20) this.items.push({ pointer, detail });
	}
	get full(): boolean {
		return this.items.length >= 20;
	}
}

export interface CompileContext {
	layout: IndexLayout;
	/** Binds a value, returning its placeholder (`?N`). */
	bind: (v: unknown) => string;
	problems: Problems;
	/** Why a field that is not a filter field of the index is not one (a spec change being indexed, say). */
	unknownField: (field: string) => string;
}

/** Compiles a filter to a SQL condition on `d`, or records what is wrong with it. */
export function compileFilter(filter: unknown, pointer: string, cx: CompileContext): string {
	const conditions = { n: 0, nodes: 0 };
	return compileNode(filter, pointer, 1, cx, conditions);
}

function compileNode(node: unknown, pointer: string, depth: number, cx: CompileContext, conditions: { n: number; nodes: number }): string {
	if (++conditions.nodes > MAX_FILTER_NODES) {
		// Said once, where the bound was passed.
		if (conditions.nodes === MAX_FILTER_NODES + 1)
			cx.problems.add(pointer, `a filter holds at most ${MAX_FILTER_NODES} filter objects in all (the top one and every and/or member)`);
		return "0";
	}
	if (!isObject(node)) {
		cx.problems.add(pointer, 'a filter is an object of filter fields and "and"/"or" lists');
		return "0";
	}
	const parts: string[] = [];
	for (const [name, v] of Object.entries(node)) {
		if (cx.problems.full) break;
		const at = `${pointer}/${pointerToken(name)}`;
		if (name === "and" || name === "or") {
			if (!Array.isArray(v) || v.length === 0) {
				cx.problems.add(at, `"${name}" takes a non-empty array of filters`);
				continue;
			}
			if (depth >= MAX_FILTER_DEPTH) {
				cx.problems.add(at, `filters nest at most ${MAX_FILTER_DEPTH} levels deep`);
				continue;
			}
			if (v.length > MAX_FILTER_CONDITIONS) {
				cx.problems.add(at, `a filter holds at most ${MAX_FILTER_CONDITIONS} conditions`);
				continue;
			}
			const subs = v.map((sub, i) => compileNode(sub, `${at}/${i}`, depth + 1, cx, conditions));
			parts.push(`(${subs.join(name === "and" ? " AND " : " OR ")})`);
			continue;
		}
		const index = cx.layout.filters.findIndex((f) => f.field === name);
		const field = cx.layout.filters[index];
		if (!field) {
			cx.problems.add(at, cx.unknownField(name));
			continue;
		}
		parts.push(compileField(`d.f${index}`, field.type, v, at, cx, conditions));
	}
	return parts.length ? parts.join(" AND ") : "1";
}

function compileField(col: string, type: FilterType, spec: unknown, pointer: string, cx: CompileContext, conditions: { n: number }): string {
	// A bare value is shorthand for eq (string[] fields: for contains).
	const ops: Record<string, unknown> | null =
		spec === null || isObject(spec) ? (spec as Record<string, unknown> | null) : { [type === "string[]" ? "contains" : "eq"]: spec };
	if (!ops) {
		cx.problems.add(pointer, 'null is no value to compare with: {"exists": false} matches a missing value, {"exists": true} a present one');
		return "0";
	}
	if (Object.keys(ops).length === 0) {
		cx.problems.add(pointer, `expected an object of operators: ${OPS[type].join(", ")}`);
		return "0";
	}
	const parts: string[] = [];
	for (const [op, arg] of Object.entries(ops)) {
		const at = `${pointer}/${pointerToken(op)}`;
		if (!OPS[type].includes(op)) {
			cx.problems.add(
				at,
				ALL_OPS.includes(op)
					? `"${op}" does not apply to a ${type} field; it takes ${OPS[type].join(", ")}`
					: `unknown operator "${op}"; operators are ${ALL_OPS.join(", ")}`,
			);
			continue;
		}
		if (++conditions.n > MAX_FILTER_CONDITIONS) {
			cx.problems.add(at, `a filter holds at most ${MAX_FILTER_CONDITIONS} conditions`);
			return "0";
		}
		if (op === "exists") {
			if (typeof arg !== "boolean") cx.problems.add(at, "exists takes true or false");
			else parts.push(`${col} IS ${arg ? "NOT " : ""}NULL`);
			continue;
		}
		if (op === "in") {
			if (!Array.isArray(arg) || arg.length === 0) {
				cx.problems.add(at, "in takes a non-empty array of values");
				continue;
			}
			if (arg.length > MAX_IN_VALUES) {
				cx.problems.add(at, `in takes at most ${MAX_IN_VALUES} values, not ${arg.length}`);
				continue;
			}
			const values: unknown[] = [];
			for (const [i, x] of arg.entries()) {
				const sqlValue = operand(type, x, true);
				if (sqlValue === undefined) {
					cx.problems.add(`${at}/${i}`, expected(type, true));
					break;
				}
				values.push(sqlValue);
			}
			parts.push(`${col} IN (SELECT value FROM json_each(${cx.bind(JSON.stringify(values))}))`);
			continue;
		}
		const exact = op === "eq" || op === "ne";
		const sqlValue = operand(type === "string[]" ? "string" : type, arg, exact);
		if (sqlValue === undefined) {
			cx.problems.add(at, expected(type === "string[]" ? "string" : type, exact));
			continue;
		}
		const p = cx.bind(sqlValue);
		if (op === "eq") parts.push(`${col} = ${p}`);
		// A missing value is "not equal" too (IS NOT is SQL's null-safe inequality).
		else if (op === "ne") parts.push(`${col} IS NOT ${p}`);
		else if (op === "contains") parts.push(`EXISTS (SELECT 1 FROM json_each(${col}) WHERE value = ${p})`);
		else parts.push(`${col} ${COMPARE[op]} ${p}`);
	}
	return parts.length ? parts.join(" AND ") : "0";
}

/**
 * The SQL value of an operand for a field of `type`, or undefined when it is the wrong type.
 * Booleans are stored as 1/0. `exact` (eq, ne, in): an int field is compared with an int, as a
 * value written to it must be one (1.5 or 2^53 is a mistake that would otherwise silently match
 * nothing, or everything under ne); a range (lt, gte...) takes any number.
 */
function operand(type: FilterType, v: unknown, exact = false): string | number | undefined {
	switch (type) {
		case "string":
		case "string[]":
			return typeof v === "string" ? v : undefined;
		case "int":
			return typeof v === "number" && (exact ? Number.isSafeInteger(v) : Number.isFinite(v)) ? v : undefined;
		case "float":
			return typeof v === "number" && Number.isFinite(v) ? v : undefined;
		case "bool":
			return typeof v === "boolean" ? (v ? 1 : 0) : undefined;
	}
}

const expected = (type: FilterType, exact = false): string =>
	type === "bool"
		? "expected true or false"
		: type === "int" && exact
			? `expected an integer from -${Number.MAX_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER} (an int field holds nothing else)`
			: type === "int" || type === "float"
				? "expected a finite number"
				: "expected a string";

// ---------------------------------------------------------------- sort

export type SortKey = { kind: "score" } | { kind: "field"; field: string; col: string; desc: boolean };

/** Sorts as the API takes them: "price", "-price", "_score", a list of those, or [{field, order}]. */
export function parseSort(raw: unknown, pointer: string, layout: IndexLayout, problems: Problems, unknownField: (f: string) => string): SortKey[] {
	if (raw === undefined) return [];
	const list = Array.isArray(raw) ? raw : [raw];
	if (list.length === 0 || list.length > 3) {
		problems.add(pointer, "sort takes one to three keys");
		return [];
	}
	const keys: SortKey[] = [];
	list.forEach((item, i) => {
		const at = Array.isArray(raw) ? `${pointer}/${i}` : pointer;
		let name: string;
		let desc: boolean;
		if (typeof item === "string") {
			desc = item.startsWith("-");
			name = desc ? item.slice(1) : item;
		} else if (isObject(item) && typeof item.field === "string" && (item.order === undefined || item.order === "asc" || item.order === "desc")) {
			name = item.field;
			desc = item.order === "desc" || (item.order === undefined && item.field === "_score");
		} else {
			problems.add(at, 'a sort key is "field", "-field", "_score", or {"field", "order": "asc" | "desc"}');
			return;
		}
		if (name === "_score") {
			if (typeof item === "string" ? desc : !desc) problems.add(at, "_score sorts best first only");
			else keys.push({ kind: "score" });
			return;
		}
		const index = layout.filters.findIndex((f) => f.field === name);
		const field = layout.filters[index];
		if (!field) problems.add(at, unknownField(name));
		else if (field.type === "string[]") problems.add(at, `"${name}" is a string[] field: it filters (contains) but does not sort`);
		else keys.push({ kind: "field", field: name, col: `d.f${index}`, desc });
	});
	return keys;
}

// ---------------------------------------------------------------- text

/**
 * The MATCH expression of a user's text: its words, each a quoted FTS5 string, all required. Only
 * letters, digits and combining marks are taken, so quotes, NEAR(, *, ^, column filters (title:)
 * and the like are plain separators: user text is never FTS5 syntax. Null when there is no word.
 */
export function matchExpression(q: string): { expr: string; terms: number } | null {
	const terms = q.normalize("NFKC").match(/[\p{L}\p{N}\p{M}]+/gu);
	if (!terms) return null;
	return { expr: terms.map((t) => `"${t.replaceAll('"', '""')}"`).join(" "), terms: terms.length };
}
