/**
 * Typing the cells of untyped (CSV) or loosely typed (Parquet) files by the dataset's field types,
 * before rows are sent: the server checks types strictly, and a CSV cell is always text.
 */
import type { FieldSpec } from "@hotpath/client";
import { nonFinite } from "../finite.ts";

export type Coerced = { value: unknown } | { error: string };

const INT = /^[+-]?\d+$/;
/** A decimal number (`0.25`, `-3`, `.5`, `1e-3`): not hex, binary or octal, which Number() would read too. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const TRUE = new Set(["true", "1", "yes", "t", "y"]);
const FALSE = new Set(["false", "0", "no", "f", "n"]);

/**
 * One CSV cell as its field's type. An empty cell is null (a missing feature). Lists and vectors
 * are JSON array text (`[0.1,0.2]`), json fields JSON text; `string` cells are kept as they are.
 */
export function coerceText(field: FieldSpec, cell: string): Coerced {
	if (cell === "") return { value: null };
	switch (field.type) {
		case "string":
			return { value: cell };
		case "int": {
			const t = cell.trim();
			const n = Number(t);
			return INT.test(t) && Number.isSafeInteger(n) ? { value: n } : { error: `"${clip(cell)}" is not an integer` };
		}
		case "float": {
			const t = cell.trim();
			const n = Number(t);
			return DECIMAL.test(t) && Number.isFinite(n) ? { value: n } : { error: `"${clip(cell)}" is not a finite number` };
		}
		case "bool": {
			const t = cell.trim().toLowerCase();
			if (TRUE.has(t)) return { value: true };
			if (FALSE.has(t)) return { value: false };
			return { error: `"${clip(cell)}" is not a boolean (true/false, 1/0, yes/no)` };
		}
		case "json":
			return parseJson(cell, "JSON");
		case "string[]":
		case "float[]":
		case "vector": {
			const parsed = parseJson(cell, "a JSON array");
			if ("error" in parsed) return parsed;
			return Array.isArray(parsed.value) ? parsed : { error: `"${clip(cell)}" is not a JSON array` };
		}
		default:
			// A type this CLI does not know yet: the server decides.
			return { value: cell };
	}
}

/**
 * A Parquet value, already typed by the file, made JSON-ready: 64-bit integers (bigint) become
 * numbers when they fit, dates ISO text, typed arrays plain arrays. Text in a numeric, boolean or
 * list field is read as a CSV cell would be; text in a json field stays text. A NaN or infinite
 * double and an invalid date are rejected, as the same value in a CSV cell is: JSON has no such
 * value, and null would be a missing feature.
 */
export function coerceParquet(field: FieldSpec | undefined, v: unknown): Coerced {
	const bad = nonFinite(v);
	if (bad)
		return {
			error:
				bad.value === undefined ? `${bad.what}${bad.path ? ` at ${bad.path}` : ""}` : `${bad.what}${bad.path ? ` at ${bad.path}` : ""} is not a finite number`,
		};
	const value = jsonReady(v);
	if (typeof value === "string" && field && field.type !== "string" && field.type !== "json") return coerceText(field, value);
	return { value };
}

/** A value as JSON can carry it; a number that is not finite and an invalid date become null (coerceParquet rejects them first). */
export function jsonReady(v: unknown): unknown {
	if (v === null || v === undefined) return null;
	switch (typeof v) {
		case "bigint":
			return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
		case "number":
			return Number.isFinite(v) ? v : null;
		case "object":
			if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
			if (v instanceof Uint8Array) return new TextDecoder().decode(v);
			if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>, jsonReady);
			// Most values are JSON-ready already: copy a list or an object only when something in it changes.
			if (Array.isArray(v)) {
				for (let i = 0; i < v.length; i++) if (jsonReady(v[i]) !== v[i]) return v.map(jsonReady);
				return v;
			}
			for (const x of Object.values(v)) if (jsonReady(x) !== x) return Object.fromEntries(Object.entries(v).map(([k, y]) => [k, jsonReady(y)]));
			return v;
		default:
			return v;
	}
}

/** An event time from a cell or a column: epoch ms when numeric, a Date's ms, else the text (RFC 3339) as given. */
export function eventTimeValue(v: unknown): string | number | undefined {
	const value = jsonReady(v);
	if (value === null || value === "") return undefined;
	if (typeof value === "number") return value;
	if (typeof value === "string") return /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value.trim()) : value;
	return String(value);
}

function parseJson(cell: string, what: string): Coerced {
	try {
		return { value: JSON.parse(cell) };
	} catch {
		return { error: `"${clip(cell)}" is not ${what}` };
	}
}

const clip = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}...` : s);
