/** Request parsing shared by routes: body limits, JSON bodies through zod, and common query parameters, all failing as 4xx problems. */
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type * as z from "zod";
import { HotpathError, issuesToItems, itemsDetail } from "../errors";

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

/**
 * The name of a query parameter given more than once in `url`, or undefined. Every option this API
 * reads is a single value (lists are comma-separated), and which of two values a read used would
 * be a guess: `?max_staleness=60&max_staleness=0` must not quietly be a read held to 60 s.
 */
export function repeatedQueryParam(url: string): string | undefined {
	const q = url.indexOf("?");
	if (q < 0) return undefined;
	const seen = new Set<string>();
	for (const part of url.slice(q + 1).split("&")) {
		if (!part) continue;
		const eq = part.indexOf("=");
		const raw = eq < 0 ? part : part.slice(0, eq);
		let name = raw;
		if (raw.includes("%") || raw.includes("+")) {
			try {
				name = decodeURIComponent(raw.replaceAll("+", " "));
			} catch {
				// Left as sent, as the router leaves a name it cannot decode.
			}
		}
		if (seen.has(name)) return name;
		seen.add(name);
	}
	return undefined;
}

/**
 * The first segment of `url`'s path whose percent-encoding does not decode to UTF-8 (`caf%E9`,
 * `100%`), or undefined. The router leaves such a segment as written, which would read the key
 * "caf%E9" for a client that meant Latin-1's "café": a guess, where the client needs a 400.
 */
export function badlyEncodedPathSegment(url: string): string | undefined {
	const start = url.indexOf("/", url.indexOf("://") + 3);
	if (start < 0) return undefined;
	let end = url.length;
	for (const stop of ["?", "#"]) {
		const at = url.indexOf(stop, start);
		if (at >= 0 && at < end) end = at;
	}
	const path = url.slice(start, end);
	if (!path.includes("%")) return undefined;
	for (const segment of path.split("/")) {
		if (!segment.includes("%")) continue;
		try {
			decodeURIComponent(segment);
		} catch {
			return segment;
		}
	}
	return undefined;
}

/** A true/false query parameter, false when absent. Anything else is a 400: `replayed=yes` must not purge every dead letter. */
export function parseFlag(c: Context, name: string): boolean {
	const raw = c.req.query(name);
	if (raw === undefined || raw === "false") return false;
	if (raw === "true") return true;
	throw new HotpathError("bad_request", `${name} must be true or false, not "${raw}"`, { errors: [{ pointer: name, detail: "true or false" }] });
}

/**
 * A `limit` query parameter: decimal digits only, from 1 to `max`; `def` when absent. Number()
 * alone would take "0x10", " 5" or "1e3", which no user means as a page size.
 */
export function parseLimit(c: Context, def: number, max: number): number {
	const raw = c.req.query("limit");
	if (raw === undefined) return def;
	const limit = /^[0-9]{1,6}$/.test(raw) ? Number(raw) : Number.NaN;
	if (!(limit >= 1 && limit <= max)) {
		throw new HotpathError("bad_request", `limit must be an integer from 1 to ${max}, not "${raw.slice(0, 20)}"`, {
			errors: [{ pointer: "limit", detail: `1 to ${max}` }],
		});
	}
	return limit;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * The offset of the first byte of `b` that does not start a well-formed UTF-8 sequence (Unicode
 * table 3-7: no overlong forms, surrogates or code points past U+10FFFF), or -1.
 */
function firstNonUtf8Byte(b: Uint8Array): number {
	for (let i = 0; i < b.length; ) {
		const x = b[i] as number;
		if (x < 0x80) {
			i++;
			continue;
		}
		const more = x >= 0xc2 && x <= 0xdf ? 1 : x >= 0xe0 && x <= 0xef ? 2 : x >= 0xf0 && x <= 0xf4 ? 3 : 0;
		if (!more) return i;
		const lo = x === 0xe0 ? 0xa0 : x === 0xf0 ? 0x90 : 0x80;
		const hi = x === 0xed ? 0x9f : x === 0xf4 ? 0x8f : 0xbf;
		for (let k = 1; k <= more; k++) {
			const y = b[i + k];
			if (y === undefined || y < (k === 1 ? lo : 0x80) || y > (k === 1 ? hi : 0xbf)) return i;
		}
		i += more + 1;
	}
	return -1;
}

/**
 * The body as text, as sent (a Content-Encoding other than identity is a 415). JSON and NDJSON are UTF-8: a body in another encoding (Latin-1, say) is a 400
 * naming the first byte that is not UTF-8, never text with U+FFFD in place of its bytes (which
 * would store "caf\uFFFD" for a Latin-1 "café", and make distinct keys collide).
 */
export async function readBodyText(c: Context): Promise<string> {
	// Bodies are read as sent: a compressed one would otherwise be "not UTF-8 at byte 1", which does not say what to change.
	const coding = c.req.header("content-encoding")?.trim();
	if (coding && coding.toLowerCase() !== "identity") {
		throw new HotpathError(
			"unsupported_media_type",
			`Content-Encoding ${coding.slice(0, 40)} is not supported: send the body uncompressed (turn off the sender's compression)`,
		);
	}
	const bytes = new Uint8Array(await c.req.arrayBuffer());
	try {
		return utf8.decode(bytes);
	} catch {
		const at = firstNonUtf8Byte(bytes);
		const where = at < 0 ? "" : ` at byte ${at}`;
		throw new HotpathError("bad_request", `body is not UTF-8${where}: send JSON and NDJSON encoded as UTF-8`, {
			errors: [{ pointer: "", detail: `not UTF-8${where}` }],
		});
	}
}

/** Reads the body as JSON (any content type) and validates it. Malformed JSON or a schema mismatch is a 400 naming where. */
export async function parseJsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
	const text = await readBodyText(c);
	let raw: unknown;
	try {
		raw = JSON.parse(text);
	} catch (e) {
		throw new HotpathError("bad_request", `body is not valid JSON: ${(e as Error).message}`);
	}
	const parsed = schema.safeParse(raw);
	if (!parsed.success) {
		const errors = issuesToItems(parsed.error.issues);
		throw new HotpathError("validation_failed", itemsDetail(errors), { errors });
	}
	return parsed.data;
}
