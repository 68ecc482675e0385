/** Event intake: parses a JSON array or NDJSON body and validates each event against its dataset. */
import { HotpathError, type ProblemItem } from "../errors";
import { checkValue, type DatasetSpec } from "../registry/spec";
import type { ChangeEvent, Op } from "./merge";

/** Limits, stated in the README. Bodies and counts above them get a 413. */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;
export const MAX_EVENTS_PER_REQUEST = 10_000;
/** One event must fit in one queue message (128 KB) with room for the envelope. */
export const MAX_EVENT_BYTES = 100 * 1024;
/** KV keys are at most 512 bytes; the dataset prefix takes the rest. */
export const MAX_KEY_BYTES = 400;
export const MAX_ID_LENGTH = 128;

const OPS: readonly Op[] = ["upsert", "patch", "delete"];
const encoder = new TextEncoder();

export interface Rejected {
	index: number;
	error: string;
}

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
			throw new HotpathError("bad_request", `body is not valid JSON: ${(e as Error).message}`);
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
			items.push({ index, raw: JSON.parse(line) });
		} catch (e) {
			rejected.push({ index, error: `line ${index + 1} is not valid JSON: ${(e as Error).message}` });
		}
	});
	checkCount(items.length + rejected.length, maxItems, what);
	return { items, rejected };
}

function checkCount(n: number, max: number, what: string): void {
	if (n > max) throw new HotpathError("payload_too_large", `${n} ${what} in one request; the limit is ${max}`);
	if (n === 0) throw new HotpathError("bad_request", `no ${what} in the body`);
}

/**
 * How far ahead of the receiving clock an event_time may be, by default (MAX_FUTURE_SKEW_SECONDS).
 * A future time freezes the record against every later event until then, so one skewed producer
 * is refused rather than stored.
 */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 300_000;

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses `event_time`: RFC 3339 text or epoch milliseconds, no later than `now` plus the allowed skew. */
export function parseEventTime(v: unknown, now = Date.now(), maxFutureMs = DEFAULT_MAX_FUTURE_SKEW_MS): number | string {
	let t: number;
	if (typeof v === "number") {
		if (!Number.isSafeInteger(v) || v < 0) return "event_time as a number must be whole epoch milliseconds";
		t = v;
	} else if (typeof v === "string") {
		const m = RFC3339.exec(v);
		t = m ? Date.parse(v) : Number.NaN;
		// Date.parse rolls impossible dates over (Feb 30 -> Mar 2); the calendar fields must survive the round trip.
		if (m && Number.isFinite(t)) {
			const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
			const check = new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s));
			if (check.getUTCMonth() !== (mo as number) - 1 || check.getUTCDate() !== d || (h as number) > 23 || (mi as number) > 59 || (s as number) > 59)
				t = Number.NaN;
		}
		if (!Number.isFinite(t) || t < 0) return `event_time "${v}" is not a valid RFC 3339 time (e.g. 2026-01-02T03:04:05Z) or epoch milliseconds`;
	} else {
		return "event_time must be an RFC 3339 string or epoch milliseconds";
	}
	if (t > now + maxFutureMs) return `event_time ${v} is more than ${describeSkew(maxFutureMs)} ahead of the server's clock (${new Date(now).toISOString()})`;
	return t;
}

const describeSkew = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`);

/** Whether a key is well-formed Unicode: a lone surrogate cannot be stored or used as a KV key. */
export const isWellFormedKey = (key: string): boolean => !/\p{Cs}/u.test(key);

type SpecLookup = (dataset: string) => DatasetSpec | undefined;

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
): { event: ChangeEvent; sentTime: number | null } | string {
	if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return "an event must be a JSON object";
	const e = raw as Record<string, unknown>;
	const known = new Set(["id", "dataset", "key", "op", "value", "event_time"]);
	const extra = Object.keys(e).filter((k) => !known.has(k));
	if (extra.length) return `unknown property ${extra.map((k) => `"${k}"`).join(", ")}; an event has id, dataset, key, op, value, event_time`;
	if (typeof e.dataset !== "string") return "dataset is required and must be a string";
	// Checked before the lookup, so a limited key learns nothing about other datasets.
	if (!mayWrite(e.dataset)) return `this key may not write to dataset "${e.dataset}"`;
	const spec = specOf(e.dataset);
	if (!spec) return `dataset "${e.dataset}" does not exist`;
	if (!OPS.includes(e.op as Op)) return `op must be one of ${OPS.join(", ")}`;
	const op = e.op as Op;

	let value: Record<string, unknown> | undefined;
	if (op === "delete") {
		if (e.value !== undefined && e.value !== null) return "a delete takes no value";
	} else {
		if (e.value === null || typeof e.value !== "object" || Array.isArray(e.value)) return `${op} needs value, a JSON object of fields`;
		value = e.value as Record<string, unknown>;
		if (op === "patch" && Object.keys(value).every((f) => f === spec.key)) return "a patch needs at least one field in value";
		const problems = checkValue(spec, value);
		if (problems.length) return problems.map(([f, why]) => `value.${f}: ${why}`).join("; ");
	}

	// The key may come from `key` or from the entity key field inside the value.
	const asKey = (k: unknown) => (typeof k === "number" && Number.isSafeInteger(k) ? String(k) : k);
	const fromValue = value && Object.hasOwn(value, spec.key) ? asKey(value[spec.key]) : undefined;
	const key = asKey(e.key) ?? fromValue;
	if (typeof key !== "string" || key === "") return `key is required: a non-empty string (or "${spec.key}" in value)`;
	if (fromValue !== undefined && fromValue !== key) return `key "${key}" disagrees with value.${spec.key} "${String(fromValue)}"`;
	if (encoder.encode(key).length > MAX_KEY_BYTES) return `key is longer than ${MAX_KEY_BYTES} bytes`;
	if (!isWellFormedKey(key)) return "key must be well-formed Unicode (it holds a lone surrogate)";
	if (value && spec.key in value) {
		const { [spec.key]: _entity, ...rest } = value;
		value = rest;
	}

	let sentTime: number | null = null;
	if (e.event_time !== undefined && e.event_time !== null) {
		const t = parseEventTime(e.event_time, receivedAt, maxFutureMs);
		if (typeof t === "string") return t;
		sentTime = t;
	}

	let id = "";
	if (e.id !== undefined && e.id !== null) {
		if (typeof e.id !== "string" || e.id === "" || e.id.length > MAX_ID_LENGTH) return `id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`;
		if (!isWellFormedKey(e.id)) return "id must be well-formed Unicode (it holds a lone surrogate)";
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

/** Serialises an event (after `assignIds`), or says why it is too large for a queue message. */
export function encodeEvent(event: ChangeEvent): EncodedEvent | string {
	const json = JSON.stringify(event);
	const bytes = encoder.encode(json).length;
	return bytes > MAX_EVENT_BYTES ? `event is larger than ${MAX_EVENT_BYTES} bytes` : { json, bytes };
}

const hex = (bytes: Uint8Array, n: number) => Array.from(bytes.subarray(0, n), (b) => b.toString(16).padStart(2, "0")).join("");

/** How events without an id get one. */
export interface IdSource {
	/** The request's Idempotency-Key, if any, and who sent it (ids derived from it are per key holder). */
	idempotencyKey?: string;
	principalId: string;
}

/**
 * Gives every event without an id one, so that a resend applies once where it should:
 * - with an Idempotency-Key K: derived from (sender, K, the event's index), so resending the same
 *   body with the same header is a no-op, whatever its times;
 * - else with an event_time: derived from the content (dataset, key, op, value, event_time), so
 *   sending the same event twice applies it once;
 * - else random: without an id, an event_time or a key, each POST is a new event (a receipt-time
 *   content hash would let a retry of an old value win over a newer write from someone else).
 */
export async function assignIds(events: { index: number; event: ChangeEvent; sentTime: number | null }[], source: IdSource): Promise<void> {
	await Promise.all(
		events.map(async ({ index, event: e, sentTime }) => {
			if (e.id) return;
			if (source.idempotencyKey !== undefined) {
				const digest = new Uint8Array(
					await crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify([source.principalId, source.idempotencyKey, index]))),
				);
				e.id = `k:${hex(digest, 16)}`;
			} else if (sentTime !== null) {
				const digest = new Uint8Array(
					await crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify([e.dataset, e.key, e.op, e.value ?? null, sentTime]))),
				);
				e.id = `h:${hex(digest, 16)}`;
			} else e.id = `r:${crypto.randomUUID()}`;
		}),
	);
}

export function rejectedToItems(rejected: Rejected[]): ProblemItem[] {
	return rejected.map((r) => ({ pointer: `/${r.index}`, detail: r.error }));
}
