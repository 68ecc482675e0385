/**
 * Domain errors: what went wrong, as a code and a detail, with no HTTP in sight. Any layer may
 * throw them; only the HTTP edge (src/routes/problem.ts) turns them into problem+json responses.
 */

export const errorCodes = [
	"bad_request",
	"validation_failed",
	"unauthorized",
	"forbidden",
	"not_found",
	"record_not_found",
	"method_not_allowed",
	"conflict",
	"payload_too_large",
	"uri_too_long",
	"unsupported_media_type",
	"rate_limited",
	"unavailable",
	"internal",
] as const;

export type ErrorCode = (typeof errorCodes)[number];

/** One problem inside a request: `pointer` is a JSON pointer into the request body, or a parameter name. */
export interface ProblemItem {
	pointer: string;
	detail: string;
}

export interface HotpathErrorOptions {
	errors?: ProblemItem[];
	/** When the caller may try again (rate limits, a tier or the queue unavailable). */
	retryAfterSeconds?: number;
	/** For `unauthorized`: the presented credential was read but is not valid (unknown, revoked, expired). */
	invalidCredential?: boolean;
}

export class HotpathError extends Error {
	readonly code: ErrorCode;
	readonly errors?: ProblemItem[];
	readonly retryAfterSeconds?: number;
	readonly invalidCredential?: boolean;

	constructor(code: ErrorCode, detail: string, opts: HotpathErrorOptions = {}) {
		super(detail);
		this.name = "HotpathError";
		this.code = code;
		this.errors = opts.errors;
		this.retryAfterSeconds = opts.retryAfterSeconds;
		this.invalidCredential = opts.invalidCredential;
	}
}

/** A zod-style issue: where, and what; a bad record key carries its key's own issues, unknown members their names. */
interface Issue {
	path: readonly PropertyKey[];
	message: string;
	code?: string;
	issues?: readonly { message: string }[];
	keys?: readonly string[];
	received?: string;
}

// JSON.parse reads a number past a double's range (1e400) as Infinity, which zod reports as
// "received Infinity": say what the client sent instead.
const NOT_FINITE = "a number too large for a double (JSON such as 1e400 reads as Infinity): send a finite number";

/** A JSON Pointer (RFC 6901) token: "~" and "/" in a member name are escaped as "~0" and "~1". */
export const pointerToken = (name: PropertyKey) => String(name).replaceAll("~", "~0").replaceAll("/", "~1");

// The whole document is "" (RFC 6901): "/" would name its member "".
const pointerOf = (prefix: string, path: readonly PropertyKey[]) => (path.length ? `${prefix}/${path.map(pointerToken).join("/")}` : prefix);

/** A problem's detail from its items: "pointer: detail; ...", the whole body ("") named as such. */
export const itemsDetail = (items: readonly ProblemItem[]) => items.map((e) => `${e.pointer || "body"}: ${e.detail}`).join("; ");

/** Turns zod-style issues into problem items with JSON pointers. */
export function issuesToItems(issues: readonly Issue[], prefix = ""): ProblemItem[] {
	return issues.flatMap((i) =>
		// zod reports unknown members at the object holding them: each gets its own item at the member itself.
		i.code === "unrecognized_keys" && i.keys?.length
			? i.keys.map((k) => ({ pointer: pointerOf(prefix, [...i.path, k]), detail: `unknown property "${k}"` }))
			: [
					{
						pointer: pointerOf(prefix, i.path),
						// zod says only "Invalid key in record" of a bad key: the key's own issues say why.
						detail:
							i.code === "invalid_key" && i.issues?.length
								? `"${String(i.path[i.path.length - 1] ?? "")}" is not a valid name: ${i.issues.map((x) => x.message).join("; ")}`
								: i.code === "invalid_type" && (i.received === "Infinity" || i.received === "-Infinity")
									? NOT_FINITE
									: i.message,
					},
				],
	);
}
