/** The HTTP edge of errors: code -> status, RFC 9457 problem+json rendering, and the app's one error handler. */
import type { Context } from "hono";
import { ConfigError } from "../env";
import { type ErrorCode, HotpathError, type ProblemItem } from "../errors";
import { log } from "../observability/log";
import { isD1Failure } from "../storage/d1-failure";

export const problemStatus: Record<ErrorCode, number> = {
	bad_request: 400,
	validation_failed: 400,
	unauthorized: 401,
	forbidden: 403,
	not_found: 404,
	record_not_found: 404,
	method_not_allowed: 405,
	conflict: 409,
	payload_too_large: 413,
	uri_too_long: 414,
	unsupported_media_type: 415,
	rate_limited: 429,
	unavailable: 503,
	internal: 500,
};

const titles: Record<ErrorCode, string> = {
	bad_request: "Bad request",
	validation_failed: "Validation failed",
	unauthorized: "Unauthorized",
	forbidden: "Forbidden",
	not_found: "Not found",
	record_not_found: "Record not found",
	method_not_allowed: "Method not allowed",
	conflict: "Conflict",
	payload_too_large: "Payload too large",
	uri_too_long: "URI too long",
	unsupported_media_type: "Unsupported media type",
	rate_limited: "Too many requests",
	unavailable: "Service unavailable",
	internal: "Internal error",
};

export interface Problem {
	type: string;
	title: string;
	status: number;
	detail: string;
	instance?: string;
	errors?: ProblemItem[];
	request_id?: string;
}

export function toProblem(err: HotpathError, instance?: string, requestId?: string): Problem {
	const problem: Problem = {
		type: `https://hotpath.dev/problems/${err.code.replaceAll("_", "-")}`,
		title: titles[err.code],
		status: problemStatus[err.code],
		detail: err.message,
	};
	if (instance) problem.instance = instance;
	if (err.errors?.length) problem.errors = err.errors;
	if (requestId) problem.request_id = requestId;
	return problem;
}

/** The HTTP headers an error implies: a Bearer challenge on 401, Retry-After when the caller may retry. */
function problemHeaders(err: HotpathError): Record<string, string> {
	const headers: Record<string, string> = { "content-type": "application/problem+json" };
	if (err.code === "unauthorized") headers["www-authenticate"] = `Bearer realm="hotpath"${err.invalidCredential ? ', error="invalid_token"' : ""}`;
	if (err.retryAfterSeconds !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(err.retryAfterSeconds)));
	return headers;
}

export function problemResponse(err: HotpathError, instance?: string, requestId?: string, extraHeaders?: HeadersInit): Response {
	const headers = new Headers(extraHeaders);
	for (const [k, v] of Object.entries(problemHeaders(err))) headers.set(k, v);
	// A 404 (or 405, 414) is cacheable by default (RFC 9111 4.2.2): a browser or CDN reusing "dataset
	// does not exist" would hide the dataset once it is created. A route that set its own policy keeps it.
	if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
	return new Response(JSON.stringify(toProblem(err, instance, requestId)), { status: problemStatus[err.code], headers });
}

/**
 * The request's path as sent, still percent-encoded: a problem's `instance` is a URI reference
 * (RFC 9457), which the router's decoded path is not (a key with a space, a quote, a newline or
 * non-ASCII text in it does not resolve back to the resource; a newline is even stripped).
 */
export const instancePath = (c: Context): string => new URL(c.req.url).pathname;

/** The app's one error handler: domain errors become their problem, anything else a logged 500. */
export function onError(err: Error, c: Context): Response {
	const id = c.get("requestId");
	const instance = instancePath(c);
	// Headers a route set before failing (X-Hotpath-Tier, Server-Timing) stay on the problem response.
	const extra = c.res.headers;
	if (err instanceof HotpathError) return problemResponse(err, instance, id, extra);
	if (err instanceof ConfigError) {
		log.error("configuration error", { error: err.message });
		return problemResponse(new HotpathError("internal", `server misconfigured: ${err.message}`), instance, id);
	}
	if (isD1Failure(err)) {
		// D1 down or refusing is an outage the caller can wait out, not a bug in its request.
		log.warn("D1 failed a request", { path: c.req.path, error: String(err), cause: String(err.cause ?? "") });
		return problemResponse(new HotpathError("unavailable", "the database (D1) did not answer; retry shortly", { retryAfterSeconds: 1 }), instance, id, extra);
	}
	log.error("unhandled error", { path: c.req.path, error: String(err), stack: err.stack });
	return problemResponse(new HotpathError("internal", "unexpected server error; it has been logged"), instance, id);
}
