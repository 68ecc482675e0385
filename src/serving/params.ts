/**
 * Read parameters shared by every skin of the read path (REST routes, GraphQL): keys, projections,
 * max_staleness, if_stale, times. Each failure is a bad_request naming the parameter.
 */
import { HotpathError } from "../errors";
import { isWellFormedKey, MAX_KEY_BYTES, MAX_TIME_MS, parseEventTime } from "../input";
import type { DatasetSpec } from "../registry/spec";
import type { IfStale } from "./freshness";

const encoder = new TextEncoder();

export function parseIfStale(raw: string | undefined): IfStale {
	if (raw === undefined || raw === "serve" || raw === "omit") return raw ?? "serve";
	// Named at its pointer too, as every other bad query option is.
	throw badParam("if_stale", `if_stale must be "serve" (report the value marked stale) or "omit" (withhold it), not "${raw.slice(0, 40)}"`);
}

/** What a projection (`fields`) may name: the dataset's fields and its aggregates. */
export const fieldsAndAggregates = (spec: DatasetSpec): Record<string, unknown> => ({ ...spec.fields, ...spec.aggregates });

/** Checks a record key from a path or a body: at most MAX_KEY_BYTES of well-formed Unicode. */
export function keyProblem(key: string): string | null {
	if (encoder.encode(key).length > MAX_KEY_BYTES) return `key is longer than ${MAX_KEY_BYTES} bytes`;
	if (!isWellFormedKey(key)) return "key must be well-formed Unicode (it holds a lone surrogate)";
	return null;
}

/** A 400 about one parameter, its detail also at the parameter's pointer. */
const badParam = (where: string, why: string) => new HotpathError("bad_request", why, { errors: [{ pointer: where, detail: why }] });

const DECIMAL = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** `max_staleness` in seconds: a non-negative number, or undefined when absent. */
export function parseMaxStaleness(raw: unknown, where: string): number | undefined {
	if (raw === undefined || raw === null) return undefined;
	// An empty bound is a mistake, not "none": the read would quietly be held to the dataset's ttl_seconds instead.
	if (raw === "") throw badParam(where, `${where} is empty: give a number of seconds, or leave it out`);
	// A decimal number, as JSON or String(number) writes one. Number() alone would also take "0x10"
	// (16), " " (0, a read held to D1) or "0b1": not what anyone means by a number of seconds.
	const n = typeof raw === "number" ? raw : typeof raw === "string" && DECIMAL.test(raw) ? Number(raw) : Number.NaN;
	if (!Number.isFinite(n) || n < 0) {
		// Say which way it failed: 1e400 is a well-formed number, just not a finite one.
		const why = n === Number.POSITIVE_INFINITY ? "is infinite (no bound is leaving it out)" : "must be a non-negative number of seconds";
		throw new HotpathError("bad_request", `${where} ${why}`, { errors: [{ pointer: where, detail: "expected a finite number of seconds >= 0" }] });
	}
	return n;
}

/**
 * A projection in a query string (`fields=a,b`), or undefined when there is none. One that names no
 * field (`fields=`, `fields=,`) is refused: a query string cannot tell "none" from a client's bug,
 * where JSON's `fields: []` can (an empty projection).
 */
export function parseFieldList(raw: string | undefined, where: string): string[] | undefined {
	if (raw === undefined) return undefined;
	const names = raw
		.split(",")
		.map((f) => f.trim())
		.filter(Boolean);
	if (!names.length) throw badParam(where, `${where} names no field: list at least one (${where}=a,b), or leave it out for the whole value`);
	return names;
}

/** Unknown fields a projection's error names: a list of thousands of bad names gets a short answer. */
const MAX_NAMED_UNKNOWN = 20;

/**
 * Checks a field projection against the dataset's fields, and returns it with each name once (in
 * first-seen order): a projection is a set, and every record read projects it again, so a body
 * repeating one name 200,000 times must not cost 200,000 steps per record. `where` names the
 * projection; with `itemPointers` (a JSON body's list) each unknown name's error item points at
 * its own index in it (`/requests/0/fields/2`), as every other bad item of a body is pointed at.
 */
export function checkFields(fields: string[] | undefined, known: Record<string, unknown>, where: string, itemPointers = false): string[] | undefined {
	if (!fields) return undefined;
	const unknown: { name: string; at: number }[] = [];
	fields.forEach((name, at) => {
		if (!Object.hasOwn(known, name)) unknown.push({ name, at });
	});
	if (unknown.length) {
		// Field names are at most 64 characters: a longer one is named by its start.
		const named = unknown.slice(0, MAX_NAMED_UNKNOWN).map((u) => ({ ...u, name: u.name.length > 64 ? `${u.name.slice(0, 64)}...` : u.name }));
		const more = unknown.length > named.length ? ` and ${unknown.length - named.length} more` : "";
		throw new HotpathError(
			"bad_request",
			`${where}: unknown field(s) ${named.map((u) => u.name).join(", ")}${more}; known fields are ${Object.keys(known).join(", ")}`,
			{ errors: named.map((u) => ({ pointer: itemPointers ? `${where}/${u.at}` : where, detail: `unknown field "${u.name}"` })) },
		);
	}
	return fields.length > 1 ? [...new Set(fields)] : fields;
}

/**
 * What a message calls the parameter at `where`: its own name. A body's pointer (`/requests/0/as_of`)
 * is the problem item's pointer, and the detail that lists the items already starts with it.
 */
const paramName = (where: string): string => (where.startsWith("/") ? where.slice(where.lastIndexOf("/") + 1) : where);

/** A time parameter (as_of, since, until): RFC 3339 or epoch milliseconds (a number or a numeric string). */
export function parseTimeParam(raw: unknown, where: string): number | undefined {
	if (raw === undefined || raw === null) return undefined;
	const name = paramName(where);
	// An empty time is a mistake, not "now": a point-in-time read must never quietly answer current values.
	if (raw === "") throw badParam(where, `${name} is empty: give RFC 3339 or epoch milliseconds, or leave it out`);
	const v = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : raw;
	// A whole number past what a Date holds is not "not whole": say it is too late a time.
	if (typeof v === "number" && Number.isInteger(v) && v > MAX_TIME_MS) {
		throw badParam(where, `${name} ${raw} is past the latest time there is (${new Date(MAX_TIME_MS).toISOString()})`);
	}
	// A "+" in a URL's query string decodes to a space: "...T10:00:00+01:00" arrives as "...T10:00:00 01:00".
	if (typeof raw === "string" && SPACE_FOR_PLUS.test(raw)) {
		const sent = raw.replace(SPACE_FOR_PLUS, "$1%2B$2");
		throw badParam(
			where,
			`${name} "${raw}" has a space where its UTC offset's sign goes: in a URL's query string "+" reads as a space, so write it as %2B (${sent}), or use Z`,
		);
	}
	const t = parseEventTime(v, Date.now(), Number.POSITIVE_INFINITY);
	if (typeof t === "string") throw badParam(where, t.replace(/event_time/g, name));
	return t;
}

/**
 * An `as_of`: a time parameter at most `maxFutureMs` ahead of the server's clock, the skew an
 * event_time may have. A later one asks for a state the log cannot know yet (events up to it may
 * still come), and answering it would label the current state (and aggregates over a window that
 * ends in the future) as that time's; most often it is epoch micro- or nanoseconds sent as
 * milliseconds. Refused, saying so.
 */
export function parseAsOf(raw: unknown, where: string, maxFutureMs: number, now = Date.now()): number | undefined {
	const t = parseTimeParam(raw, where);
	if (t === undefined || t <= now + maxFutureMs) return t;
	const digits = typeof raw === "number" || (typeof raw === "string" && /^\d+$/.test(raw));
	const name = paramName(where);
	throw badParam(
		where,
		`${name} ${new Date(t).toISOString()} is in the future: a point-in-time read answers a state at most ${maxFutureMs / 1000} s ahead of the server's clock (as far as an event_time may be); leave ${name} out for current values${digits ? ". It is read as epoch milliseconds: a time in microseconds or nanoseconds reads as one far ahead" : ""}`,
	);
}

/** RFC 3339 with a space instead of the "+" of its offset: what a query string makes of an unencoded "+". */
const SPACE_FOR_PLUS = /^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?) (\d{2}:\d{2})$/;

/** A history range: `since` after `until` can hold no version, and is a mistake worth naming. */
export function checkTimeRange(since: number | undefined, until: number | undefined): void {
	if (since !== undefined && until !== undefined && since > until) {
		throw badParam("since", `since (${new Date(since).toISOString()}) is after until (${new Date(until).toISOString()})`);
	}
}
