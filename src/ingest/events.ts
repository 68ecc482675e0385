/** Event intake: parses a JSON array or NDJSON body and validates each event against its dataset. */
import type { ProblemItem } from "../errors";
import { ApiError } from "../errors";
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
	items: unknown[];
	/** Lines of an NDJSON body that were not JSON, rejected by index. */
	rejected: Rejected[];
}

/** Splits a body into raw events. A JSON body must be an array (or one event object); NDJSON is one event per line. */
export function parseEventsBody(text: string, ndjson: boolean): ParsedBody {
	if (!ndjson) {
		let parsed: unknown;
		try {
			parsed = JSON.parse(text);
		} catch (e) {
			throw new ApiError("bad_request", `body is not valid JSON: ${(e as Error).message}`);
		}
		const items = Array.isArray(parsed) ? parsed : parsed !== null && typeof parsed === "object" ? [parsed] : null;
		if (!items) throw new ApiError("bad_request", "body must be a JSON array of events (or NDJSON with Content-Type: application/x-ndjson)");
		checkCount(items.length);
		return { items, rejected: [] };
	}
	const items: unknown[] = [];
	const rejected: Rejected[] = [];
	let index = 0;
	for (const line of text.split("\n")) {
		if (line.trim() === "") continue;
		try {
			items.push(JSON.parse(line));
		} catch (e) {
			items.push(undefined);
			rejected.push({ index, error: `line is not valid JSON: ${(e as Error).message}` });
		}
		index++;
	}
	checkCount(items.length);
	return { items, rejected };
}

function checkCount(n: number): void {
	if (n > MAX_EVENTS_PER_REQUEST) {
		throw new ApiError("payload_too_large", `${n} events in one request; the limit is ${MAX_EVENTS_PER_REQUEST}`);
	}
	if (n === 0) throw new ApiError("bad_request", "no events in the body");
}

/** Parses `event_time`: RFC 3339 text or epoch milliseconds. */
export function parseEventTime(v: unknown): number | string {
	if (typeof v === "number") {
		return Number.isSafeInteger(v) && v >= 0 ? v : "event_time as a number must be whole epoch milliseconds";
	}
	if (typeof v === "string") {
		const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
		const t = rfc3339.test(v) ? Date.parse(v) : Number.NaN;
		return Number.isFinite(t) && t >= 0 ? t : `event_time "${v}" is not RFC 3339 (e.g. 2026-01-02T03:04:05Z) or epoch milliseconds`;
	}
	return "event_time must be an RFC 3339 string or epoch milliseconds";
}

type SpecLookup = (dataset: string) => DatasetSpec | undefined;

/**
 * Validates one raw event. Returns the event with its time resolved (receipt time when absent)
 * but its id possibly empty: ids derived from content are filled in by `assignIds`.
 */
export function validateEvent(raw: unknown, specOf: SpecLookup, receivedAt: number): { event: ChangeEvent; sentTime: number | null } | string {
	if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return "an event must be a JSON object";
	const e = raw as Record<string, unknown>;
	const known = new Set(["id", "dataset", "key", "op", "value", "event_time"]);
	const extra = Object.keys(e).filter((k) => !known.has(k));
	if (extra.length) return `unknown property ${extra.map((k) => `"${k}"`).join(", ")}; an event has id, dataset, key, op, value, event_time`;
	if (typeof e.dataset !== "string") return "dataset is required and must be a string";
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
	let key = e.key ?? value?.[spec.key];
	if (typeof key === "number" && Number.isSafeInteger(key)) key = String(key);
	if (typeof key !== "string" || key === "") return `key is required: a non-empty string (or "${spec.key}" in value)`;
	if (encoder.encode(key).length > MAX_KEY_BYTES) return `key is longer than ${MAX_KEY_BYTES} bytes`;
	if (value && spec.key in value) {
		const { [spec.key]: _entity, ...rest } = value;
		value = rest;
	}

	let sentTime: number | null = null;
	if (e.event_time !== undefined && e.event_time !== null) {
		const t = parseEventTime(e.event_time);
		if (typeof t === "string") return t;
		sentTime = t;
	}

	let id = "";
	if (e.id !== undefined && e.id !== null) {
		if (typeof e.id !== "string" || e.id === "" || e.id.length > MAX_ID_LENGTH) return `id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`;
		id = e.id;
	}
	const event: ChangeEvent = { id, dataset: e.dataset, key, op, time: sentTime ?? receivedAt };
	if (value) event.value = value;
	if (encoder.encode(JSON.stringify(event)).length > MAX_EVENT_BYTES) return `event is larger than ${MAX_EVENT_BYTES} bytes`;
	return { event, sentTime };
}

/**
 * Gives every event without an id one derived from its content (dataset, key, op, value and the
 * event_time it was sent with), so that sending the same event twice applies it once.
 */
export async function assignIds(events: { event: ChangeEvent; sentTime: number | null }[]): Promise<void> {
	await Promise.all(
		events.map(async ({ event: e, sentTime }) => {
			if (e.id) return;
			const content = JSON.stringify([e.dataset, e.key, e.op, e.value ?? null, sentTime]);
			const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(content)));
			let hex = "";
			for (let b = 0; b < 16; b++) hex += (digest[b] as number).toString(16).padStart(2, "0");
			e.id = `h:${hex}`;
		}),
	);
}

export function rejectedToItems(rejected: Rejected[]): ProblemItem[] {
	return rejected.map((r) => ({ pointer: `/${r.index}`, detail: r.error }));
}
