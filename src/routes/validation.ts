/** Request parsing shared by routes: body limits, JSON bodies through zod, and common query parameters, all failing as 4xx problems. */
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { z } from "zod";
import { HotpathError, issuesToItems } from "../errors";
import { parseEventTime } from "../ingest/events";

/** Body limits per kind of request, stated in the README's limits table. */
export const BODY_LIMITS = {
	/** PUT /v1/datasets/:name: a spec of up to 500 fields with room for search, aggregates and ingest mappings. */
	spec: 256 * 1024,
	/** POST /v1/lookup: 1,000 keys of up to 400 bytes each, and the envelope. */
	lookup: 1024 * 1024,
	/** POST /v1/keys and other small admin bodies. */
	small: 16 * 1024,
} as const;

const size = (bytes: number) => (bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`);

/** Refuses a body over `maxBytes` with a 413 before it is read or parsed (by Content-Length, or while streaming). */
export const limitBody = (maxBytes: number) =>
	bodyLimit({
		maxSize: maxBytes,
		onError: () => {
			throw new HotpathError("payload_too_large", `body is larger than ${size(maxBytes)}, the limit of this route`);
		},
	});

/** Reads the body as JSON (any content type) and validates it. Malformed JSON or a schema mismatch is a 400 naming where. */
export async function parseJsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
	const text = await c.req.text();
	let raw: unknown;
	try {
		raw = JSON.parse(text);
	} catch (e) {
		throw new HotpathError("bad_request", `body is not valid JSON: ${(e as Error).message}`);
	}
	const parsed = schema.safeParse(raw);
	if (!parsed.success) {
		const errors = issuesToItems(parsed.error.issues);
		throw new HotpathError("validation_failed", errors.map((e) => `${e.pointer}: ${e.detail}`).join("; "), { errors });
	}
	return parsed.data;
}

/** `max_staleness` in seconds: a non-negative number, or undefined when absent. */
export function parseMaxStaleness(raw: unknown, where: string): number | undefined {
	if (raw === undefined || raw === null || raw === "") return undefined;
	const n = typeof raw === "number" ? raw : Number(raw);
	if (!Number.isFinite(n) || n < 0)
		throw new HotpathError("bad_request", `${where} must be a non-negative number of seconds`, {
			errors: [{ pointer: where, detail: "expected seconds >= 0" }],
		});
	return n;
}

/** Checks a field projection against the dataset's fields. */
export function checkFields(fields: string[] | undefined, known: Record<string, unknown>, where: string): string[] | undefined {
	if (!fields) return undefined;
	const unknown = fields.filter((f) => !Object.hasOwn(known, f));
	if (unknown.length) {
		throw new HotpathError("bad_request", `${where}: unknown field(s) ${unknown.join(", ")}; known fields are ${Object.keys(known).join(", ")}`, {
			errors: unknown.map((f) => ({ pointer: where, detail: `unknown field "${f}"` })),
		});
	}
	return fields;
}

/** A time parameter (as_of, since, until): RFC 3339 or epoch milliseconds (a number or a numeric string). */
export function parseTimeParam(raw: unknown, where: string): number | undefined {
	if (raw === undefined || raw === null || raw === "") return undefined;
	const v = typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : raw;
	const t = parseEventTime(v, Date.now(), Number.POSITIVE_INFINITY);
	if (typeof t === "string") {
		const why = t.replace(/event_time/g, where);
		throw new HotpathError("bad_request", why, { errors: [{ pointer: where, detail: why }] });
	}
	return t;
}
