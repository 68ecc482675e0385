/** Event intake: parses a JSON array or NDJSON body and validates each event against its dataset. */
import { HotpathError, type ProblemItem, pointerToken } from "../errors";
import { DEFAULT_MAX_FUTURE_SKEW_MS, isWellFormedKey, MAX_ID_LENGTH, MAX_KEY_BYTES, parseEventTime } from "../input";
import { log } from "../observability/log";
import { checkValue, type DatasetSpec } from "../registry/spec";
import { firstReceiptTime } from "../storage/idempotency";
import { timeout } from "../timeout";
import type { ChangeEvent, Op } from "./merge";

/** Limits, stated in the README. Bodies and counts above them get a 413. */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;
export const MAX_EVENTS_PER_REQUEST = 10_000;
/** One event must fit in one queue message (128 KB) with room for the envelope. */
export const MAX_EVENT_BYTES = 100 * 1024;

const OPS: readonly Op[] = ["upsert", "patch", "delete"];
const encoder = new TextEncoder();

/** A place inside an item (its path of member names, unescaped: `["value", "price"]`) and what is wrong there. */
export interface RefusedMember {
	path: readonly string[];
	detail: string;
}

export interface Rejected {
	index: number;
	error: string;
	/** The places inside the item the error is about, each with its detail: a problem points at each. */
	members?: readonly RefusedMember[];
}

/** Why validation refused an item: a reason about the whole item, or about places inside it. */
export type Refusal = string | { error: string; members: readonly RefusedMember[] };

/** A refusal about one place inside the item. */
export const refusedAt = (path: readonly string[], error: string): Refusal => ({ error, members: [{ path, detail: error }] });

/**
 * A refusal with its places moved, for an item that was turned into an event (an import row, a
 * log record): `to` says where an event's path is in the item, or [] for the item as a whole.
 */
export function relocated(why: Refusal, to: (path: readonly string[]) => readonly string[]): Refusal {
	return typeof why === "string" ? why : { error: why.error, members: why.members.map((m) => ({ path: to(m.path), detail: m.detail })) };
}

export const isRefusal = <T extends object>(v: T | Refusal): v is Refusal => typeof v === "string" || "error" in v;

export const rejectedAt = (index: number, why: Refusal): Rejected => (typeof why === "string" ? { index, error: why } : { index, ...why });

/** Rejects as a 2xx answer lists them: `{index, error}`. */
export const answeredRejects = (rejected: readonly Rejected[]) => rejected.map(({ index, error }) => ({ index, error }));

export interface ParsedBody {
	/** Raw events with their index: the array index, or for NDJSON the 0-based line number. */
	items: { index: number; raw: unknown }[];
	/** Lines of an NDJSON body that were not JSON, rejected by index. */
	rejected: Rejected[];
}

/** Splits a body into raw items (events, or import rows). A JSON body must be an array (or one object); NDJSON is one item per line. */
export function parseEventsBody(text: string, ndjson: boolean, maxItems = MAX_EVENTS_PER_REQUEST, what = "events"): ParsedBody {
	if (!ndjson) {
		let parsed: unknown;
		try {
			parsed = JSON.parse(text);
		} catch (e) {
			throw new HotpathError("bad_request", `body is not valid JSON: ${(e as Error).message}${looksLikeNdjson(text) ? NDJSON_HINT : ""}`);
		}
		const list = Array.isArray(parsed) ? parsed : parsed !== null && typeof parsed === "object" ? [parsed] : null;
		if (!list) throw new HotpathError("bad_request", `body must be a JSON array of ${what} (or NDJSON with Content-Type: application/x-ndjson)`);
		checkCount(list.length, maxItems, what);
		return { items: list.map((raw, index) => ({ index, raw })), rejected: [] };
	}
	const items: { index: number; raw: unknown }[] = [];
	const rejected: Rejected[] = [];
	text.split("\n").forEach((line, index) => {
		if (line.trim() === "") return;
		try {
			const raw: unknown = JSON.parse(line);
			// A JSON array body sent as NDJSON: say so, rather than "must be a JSON object" of a line that holds many.
			if (Array.isArray(raw))
				rejected.push({
					index,
					error: `line ${index + 1} is a JSON array: NDJSON holds one ${what.replace(/s$/, "")} per line (send a JSON array with Content-Type: application/json)`,
				});
			else items.push({ index, raw });
		} catch (e) {
			rejected.push({ index, error: `line ${index + 1} is not valid JSON: ${(e as Error).message}` });
		}
	});
	checkCount(items.length + rejected.length, maxItems, what);
	return { items, rejected };
}

const NDJSON_HINT = "; it looks like NDJSON (one JSON document per line): send it with Content-Type: application/x-ndjson";

/**
 * Whether a body that is not one JSON document holds one per line (`curl -H 'content-type:
 * application/json' --data-binary @rows.ndjson`). Only on the error path: the first two lines that
 * are not blank both parse.
 */
function looksLikeNdjson(text: string): boolean {
	let seen = 0;
	for (const line of text.split("\n", 1000)) {
		if (line.trim() === "") continue;
		try {
			JSON.parse(line);
		} catch {
			return false;
		}
		if (++seen === 2) return true;
	}
	return false;
}

function checkCount(n: number, max: number, what: string): void {
	if (n > max) throw new HotpathError("payload_too_large", `${n} ${what} in one request; the limit is ${max}`);
	if (n === 0) throw new HotpathError("bad_request", `no ${what} in the body`);
}

/** Whether every own property name of `o` is in `names` (the common case, checked without building a list). */
function hasOnly(o: object, names: ReadonlySet<string>): boolean {
	for (const k in o) if (!names.has(k)) return false;
	return true;
}

type SpecLookup = (dataset: string) => DatasetSpec | undefined;

const KEY_KINDS = "a non-empty string or a safe integer";
const isKeyText = (k: unknown): k is string => typeof k === "string" && k !== "";
/** A value as an error message shows it: a number or string as written, else its kind. */
const shown = (v: unknown): string =>
	typeof v === "string" ? JSON.stringify(v.slice(0, 50)) : typeof v === "object" ? (Array.isArray(v) ? "an array" : "an object") : String(v);

const EVENT_PROPERTIES: ReadonlySet<string> = new Set(["id", "dataset", "key", "op", "value", "event_time"]);
const EVENT_HAS = "an event has id, dataset, key, op, value, event_time";

/** Refuses the unknown members `names` of an item, each named by its own problem item. */
export function unknownMembers(names: readonly string[], has: string): Refusal {
	return {
		error: `unknown property ${names.map((k) => `"${k}"`).join(", ")}; ${has}`,
		members: names.map((name) => ({ path: [name], detail: `unknown property "${name}"; ${has}` })),
	};
}

/**
 * Where an event's value fields and time came from, when it was mapped from another document (a
 * log shipper's record): its errors then name the places in that document, not the event's members.
 */
export interface EventSources {
	/** How an error names a value field (default: `value.<field>`). */
	field?: (name: string) => string;
	/** Where the event_time came from, said after its error. */
	eventTime?: string;
	/** Where the key came from, said after its error. */
	key?: string;
}

/**
 * Validates one raw event. Returns the event with its time resolved (receipt time when absent)
 * but its id possibly empty: ids derived from content are filled in by `assignIds`.
 */
export function validateEvent(
	raw: unknown,
	specOf: SpecLookup,
	receivedAt: number,
	mayWrite: (dataset: string) => boolean = () => true,
	maxFutureMs = DEFAULT_MAX_FUTURE_SKEW_MS,
	sources: EventSources = {},
): { event: ChangeEvent; sentTime: number | null } | Refusal {
	if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return "an event must be a JSON object";
	const e = raw as Record<string, unknown>;
	const extra = hasOnly(e, EVENT_PROPERTIES) ? [] : Object.keys(e).filter((k) => !EVENT_PROPERTIES.has(k));
	if (extra.length) return unknownMembers(extra, EVENT_HAS);
	if (typeof e.dataset !== "string") return refusedAt(["dataset"], "dataset is required and must be a string");
	// Checked before the lookup, so a limited key learns nothing about other datasets.
	if (!mayWrite(e.dataset)) return refusedAt(["dataset"], `this key may not write to dataset "${e.dataset}"`);
	const spec = specOf(e.dataset);
	if (!spec) return refusedAt(["dataset"], `dataset "${e.dataset}" does not exist`);
	if (!OPS.includes(e.op as Op)) return refusedAt(["op"], `op must be one of ${OPS.join(", ")}`);
	const op = e.op as Op;

	let value: Record<string, unknown> | undefined;
	if (op === "delete") {
		if (e.value !== undefined && e.value !== null) return refusedAt(["value"], "a delete takes no value");
	} else {
		if (e.value === null || typeof e.value !== "object" || Array.isArray(e.value)) return refusedAt(["value"], `${op} needs value, a JSON object of fields`);
		value = e.value as Record<string, unknown>;
		if (op === "patch" && Object.keys(value).every((f) => f === spec.key)) return refusedAt(["value"], "a patch needs at least one field in value");
		const problems = checkValue(spec, value).map(([f, why]) => ({ path: ["value", f], detail: `${sources.field ? sources.field(f) : `value.${f}`}: ${why}` }));
		if (problems.length) return { error: problems.map((p) => p.detail).join("; "), members: problems };
	}

	// The key may come from `key` or from the entity key field inside the value.
	const asKey = (k: unknown) => (typeof k === "number" && Number.isSafeInteger(k) ? String(k) : k);
	const fromValue = value && Object.hasOwn(value, spec.key) ? asKey(value[spec.key]) : undefined;
	const keySent = e.key !== undefined && e.key !== null;
	// Where the key came from, for its errors: `key`, else the key field in the value.
	const keyPath = keySent || fromValue === undefined ? ["key"] : ["value", spec.key];
	// A key that was sent but cannot be one is named as sent: "key is required" would say it is missing.
	if (keySent && !isKeyText(asKey(e.key))) return refusedAt(["key"], `key must be ${KEY_KINDS}, not ${shown(e.key)}`);
	if (!keySent && fromValue !== undefined && fromValue !== null && !isKeyText(fromValue))
		return refusedAt(keyPath, `value.${spec.key} must be ${KEY_KINDS}, not ${shown(value?.[spec.key])}`);
	const key = asKey(e.key) ?? fromValue;
	if (typeof key !== "string" || key === "") return refusedAt(keyPath, `key is required: a non-empty string (or "${spec.key}" in value)`);
	if (fromValue !== undefined && fromValue !== key) return refusedAt(["key"], `key "${key}" disagrees with value.${spec.key} "${String(fromValue)}"`);
	// A UTF-16 unit is at most 3 UTF-8 bytes: only a long key needs counting.
	const keyFrom = sources.key && keySent ? ` (at ${sources.key})` : "";
	if (key.length * 3 > MAX_KEY_BYTES && encoder.encode(key).length > MAX_KEY_BYTES)
		return refusedAt(keyPath, `key is longer than ${MAX_KEY_BYTES} bytes${keyFrom}`);
	if (!isWellFormedKey(key)) return refusedAt(keyPath, `key must be well-formed Unicode (it holds a lone surrogate)${keyFrom}`);
	if (value && spec.key in value) {
		const { [spec.key]: _entity, ...rest } = value;
		value = rest;
	}

	let sentTime: number | null = null;
	if (e.event_time !== undefined && e.event_time !== null) {
		const t = parseEventTime(e.event_time, receivedAt, maxFutureMs);
		if (typeof t === "string") return refusedAt(["event_time"], sources.eventTime ? `${t} (at ${sources.eventTime})` : t);
		sentTime = t;
	}

	let id = "";
	if (e.id !== undefined && e.id !== null) {
		if (typeof e.id !== "string" || e.id === "" || e.id.length > MAX_ID_LENGTH)
			return refusedAt(["id"], `id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`);
		if (!isWellFormedKey(e.id)) return refusedAt(["id"], "id must be well-formed Unicode (it holds a lone surrogate)");
		id = e.id;
	}
	const event: ChangeEvent = { id, dataset: e.dataset, key, op, time: sentTime ?? receivedAt };
	if (value) event.value = value;
	return { event, sentTime };
}

/** An event as it goes on the queue: serialised once, for both the size check and the message. */
export interface EncodedEvent {
	json: string;
	bytes: number;
}

// Where encodeEvent counts an event's UTF-8 bytes: one buffer for every event instead of an array
// each. It holds a few bytes past the limit, so an event that fills it is too large.
const scratch = new Uint8Array(MAX_EVENT_BYTES + 4);

/** Serialises an event (after `assignIds`), or says why it is too large for a queue message. */
export function encodeEvent(event: ChangeEvent): EncodedEvent | string {
	const json = JSON.stringify(event);
	const { read, written } = encoder.encodeInto(json, scratch);
	return read < json.length || written > MAX_EVENT_BYTES ? `event is larger than ${MAX_EVENT_BYTES} bytes` : { json, bytes: written };
}

const hex = (bytes: Uint8Array, n: number) => Array.from(bytes.subarray(0, n), (b) => b.toString(16).padStart(2, "0")).join("");

/** How events without an id get one. */
export interface IdSource {
	/** The request's Idempotency-Key, if any, and who sent it (ids derived from it are per key holder). */
	idempotencyKey?: string;
	principalId: string;
}

/** The digest naming a sender's Idempotency-Key: the prefix of the ids derived from it, and the scope of its receipt. */
async function idempotencyScope(principalId: string, idempotencyKey: string): Promise<string> {
	const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify([principalId, idempotencyKey]))));
	return `k:${hex(digest, 16)}`;
}

/**
 * Gives the valid events without event_time the request's receipt time. Under an Idempotency-Key
 * that is when the first accepted request under that key was received (D1 keeps it): a resend's
 * events are then the original's exactly, ids and times, so whichever is applied first, the other
 * changes nothing, and a write someone made in between keeps its place. It runs after validation,
 * once some valid event lacks an event_time: a request refused whole sets no receipt (it has no events a resend could
 * repeat, so its corrected resend takes its own time), and validation bounds event_time by the
 * clock now, not by a receipt time long past. When D1 cannot record the receipt within `timeoutMs`
 * (an outage must not stop intake), the events keep `now`, the time they were validated with, and
 * the resend may win that race (README, Known limits).
 */
export async function stampReceiptTime(
	db: D1Database,
	valid: readonly { event: ChangeEvent; sentTime: number | null }[],
	source: IdSource,
	now: number,
	timeoutMs: number,
): Promise<void> {
	// Without an event lacking event_time there is nothing to stamp, and no D1 write to pay for.
	if (source.idempotencyKey === undefined || !valid.some((v) => v.sentTime === null)) return;
	let receivedAt: number;
	try {
		const scope = await idempotencyScope(source.principalId, source.idempotencyKey);
		receivedAt = await timeout(firstReceiptTime(db, scope, now), timeoutMs, "the idempotency receipt");
	} catch (e) {
		log.warn("the Idempotency-Key's first receipt time could not be read from D1; this request's own time is used", { error: String(e) });
		return;
	}
	for (const { event, sentTime } of valid) if (sentTime === null) event.time = receivedAt;
}

/**
 * A JSON.stringify replacer that writes each object's members in code-unit order: a JSON object is
 * unordered, so the same event resent with its members in another order ({"b":1,"a":2}) is the same
 * content and must get the same id. Members already in that order serialise as before, so such
 * events keep the ids they were given before this rule.
 */
function withSortedMembers(_name: string, v: unknown): unknown {
	if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
	return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * Gives every event without an id one, so that a resend applies once where it should:
 * - with an Idempotency-Key K: derived from (sender, K) and the event's index, so resending the
 *   same body with the same header is a no-op, whatever its times;
 * - else with an event_time: derived from the content (dataset, key, op, value, event_time), so
 *   sending the same event twice applies it once;
 * - else random: without an id, an event_time or a key, each POST is a new event (a receipt-time
 *   content hash would let a retry of an old value win over a newer write from someone else).
 * Events without an event_time all get the request's receipt time, so their ids break the tie:
 * a request's ids share a prefix and end in the zero-padded index, and the merge rules (the larger
 * id wins a tie) then follow the order of the body: `[upsert k, delete k]` leaves k deleted.
 */
export async function assignIds(events: { index: number; event: ChangeEvent; sentTime: number | null }[], source: IdSource): Promise<void> {
	// Fixed width, so ids compare as their indexes do. Six digits hold a JSON body's indexes, but an
	// NDJSON index is the line number and blank lines do not count as events: a 5 MB body can put one
	// past line 999,999. Those take "~" (after every digit) and seven digits, which every index of a
	// body within MAX_BODY_BYTES fits; the ids of the first million stay as they were.
	const ordered = (prefix: string, index: number) => `${prefix}-${index < 1_000_000 ? String(index).padStart(6, "0") : `~${String(index).padStart(7, "0")}`}`;
	let requestPrefix: string | undefined;
	if (events.some((e) => !e.event.id && (source.idempotencyKey !== undefined || e.sentTime === null))) {
		requestPrefix = source.idempotencyKey !== undefined ? await idempotencyScope(source.principalId, source.idempotencyKey) : `r:${crypto.randomUUID()}`;
	}
	await Promise.all(
		events.map(async ({ index, event: e, sentTime }) => {
			if (e.id) return;
			if (source.idempotencyKey !== undefined) e.id = ordered(requestPrefix as string, index);
			else if (sentTime !== null) {
				const digest = new Uint8Array(
					await crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify([e.dataset, e.key, e.op, e.value ?? null, sentTime], withSortedMembers))),
				);
				e.id = `h:${hex(digest, 16)}`;
			} else e.id = ordered(requestPrefix as string, index);
		}),
	);
}

/** Problem items of rejects: at the item (`/3`), or at each place inside it the error is about (`/3/colour`, `/3/value/price`). */
export function rejectedToItems(rejected: Rejected[]): ProblemItem[] {
	return rejected.flatMap((r) =>
		r.members?.length
			? r.members.map((m) => ({ pointer: `/${r.index}${m.path.map((t) => `/${pointerToken(t)}`).join("")}`, detail: m.detail }))
			: [{ pointer: `/${r.index}`, detail: r.error }],
	);
}
