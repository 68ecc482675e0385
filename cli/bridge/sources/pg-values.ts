/**
 * PostgreSQL column values to JSON for Hotpath. `pg` parses the text form first (the same parsers for
 * the snapshot's SELECTs and the replication stream); this finishes the job by column type:
 *
 * - int2, int4, float4, float8, oid: numbers (pg already); int8 and numeric: numbers when that loses
 *   nothing (an integer within 2^53, at most 15 significant digits), else their text;
 * - bool: booleans; json, jsonb: the parsed document; arrays: arrays of converted elements;
 * - timestamptz: ISO 8601 in UTC (`2026-01-02T03:04:05.678Z`, millisecond precision); timestamp
 *   (no zone): the same without the `Z`; date: `YYYY-MM-DD`;
 * - bytea: base64; pgvector's `vector`: an array of numbers; everything else (text, uuid, enums,
 *   intervals, ...): the text PostgreSQL gives.
 */

export interface PgType {
	name: string;
	/** pg_type.typcategory: N numeric, A array, D date/time, ... */
	category: string;
	/** Element type of an array type, else 0. */
	elem: number;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** A Date pg built in local time (timestamp, date) back to the wall-clock text PostgreSQL stored. */
function localText(d: Date, withTime: boolean): string {
	const date = `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
	if (!withTime) return date;
	return `${date}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Whether a numeric's text survives the trip through a double. */
function numberIfExact(text: string): number | string {
	const n = Number(text);
	if (!Number.isFinite(n)) return text;
	if (Number.isInteger(n) && !/[.eE]/.test(text)) return Number.isSafeInteger(n) ? n : text;
	const digits = text
		.replace(/^[-+]?0*/, "")
		.replace(".", "")
		.replace(/[eE].*$/, "")
		.replace(/^0+/, "");
	return digits.length <= 15 ? n : text;
}

export function toJsonValue(value: unknown, typeOid: number, types: ReadonlyMap<number, PgType>): unknown {
	if (value === null || value === undefined) return value;
	const type = types.get(typeOid);
	if (Array.isArray(value)) {
		const elem = type?.elem ?? 0;
		return value.map((v) => toJsonValue(v, elem, types));
	}
	if (value instanceof Date) {
		if (Number.isNaN(value.getTime())) return String(value);
		if (type?.name === "date") return localText(value, false);
		if (type?.name === "timestamp") return localText(value, true);
		return value.toISOString();
	}
	if (Buffer.isBuffer(value)) return value.toString("base64");
	if (typeof value === "string") {
		if (type?.category === "N") return numberIfExact(value);
		if (type?.name === "vector" && value.startsWith("[")) {
			try {
				return JSON.parse(value);
			} catch {
				return value;
			}
		}
		return value;
	}
	if (typeof value === "number" && !Number.isFinite(value)) return String(value);
	if (typeof value === "object" && typeof (value as { toPostgres?: unknown }).toPostgres === "function") {
		// postgres-interval and the like: their PostgreSQL text.
		return (value as { toPostgres: () => string }).toPostgres();
	}
	return value;
}

/** Reads the catalog entries of the given type oids (and their array elements). */
export async function loadTypes(
	query: (sql: string, params: unknown[]) => Promise<{ rows: Record<string, unknown>[] }>,
	oids: number[],
): Promise<Map<number, PgType>> {
	const types = new Map<number, PgType>();
	let want = [...new Set(oids)];
	while (want.length) {
		const { rows } = await query("select oid::int as oid, typname, typcategory, typelem::int as elem from pg_type where oid = any($1::oid[])", [want]);
		for (const r of rows) types.set(r.oid as number, { name: r.typname as string, category: r.typcategory as string, elem: r.elem as number });
		want = rows.map((r) => r.elem as number).filter((e) => e && !types.has(e));
	}
	return types;
}
