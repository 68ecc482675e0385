/** HotpathError: every failure the client reports, carrying the server's problem document (RFC 9457). */

/** One problem inside a request: `pointer` is a JSON Pointer into the body, or a parameter name. */
export interface ProblemItem {
	pointer: string;
	detail: string;
}

/** The server's `application/problem+json` body. */
export interface Problem {
	type: string;
	title: string;
	status: number;
	detail: string;
	instance?: string;
	errors?: ProblemItem[];
	request_id?: string;
}

/** Problem types the client itself uses when there is no answer to read one from. */
export const CLIENT_PROBLEM = {
	network: "urn:hotpath:client:network-error",
	timeout: "urn:hotpath:client:timeout",
	badResponse: "urn:hotpath:client:bad-response",
	/** A key ("." or "..") that a route taking the key in its URL path cannot address. */
	unaddressableKey: "urn:hotpath:client:unaddressable-key",
	/** An argument no request can carry (an invalid Date): nothing was sent. */
	invalidArgument: "urn:hotpath:client:invalid-argument",
} as const;

/**
 * A failed call. `status` is the HTTP status, or 0 when no answer came (network error, timeout);
 * `problem` is the server's problem document, or one the client made that says what happened.
 *
 * @example
 * try {
 *   await hp.datasets.get("nope");
 * } catch (e) {
 *   if (e instanceof HotpathError && e.status === 404) console.log(e.problem.detail);
 * }
 */
export class HotpathError extends Error {
	readonly status: number;
	readonly problem: Problem;
	/** Seconds the server asked to wait (429/503 `Retry-After`), when it said. */
	readonly retryAfter?: number;

	constructor(problem: Problem, opts: { retryAfter?: number; cause?: unknown } = {}) {
		super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title, opts.cause === undefined ? undefined : { cause: opts.cause });
		this.name = "HotpathError";
		this.status = problem.status;
		this.problem = problem;
		if (opts.retryAfter !== undefined) this.retryAfter = opts.retryAfter;
	}

	get type(): string {
		return this.problem.type;
	}

	get title(): string {
		return this.problem.title;
	}

	get detail(): string {
		return this.problem.detail;
	}

	/** The per-item errors of a batch, or `[]`. */
	get errors(): ProblemItem[] {
		return this.problem.errors ?? [];
	}
}

function isProblem(v: unknown): v is Problem {
	if (v === null || typeof v !== "object") return false;
	const p = v as Record<string, unknown>;
	return typeof p.title === "string" && typeof p.status === "number";
}

/** Builds the error for a non-2xx answer from its body, whether or not the body is a problem document. */
export function errorFromResponse(status: number, statusText: string, bodyText: string, retryAfter?: number): HotpathError {
	let parsed: unknown;
	try {
		parsed = JSON.parse(bodyText);
	} catch {
		parsed = undefined;
	}
	if (isProblem(parsed)) {
		const problem: Problem = { ...parsed, type: parsed.type ?? "about:blank", detail: parsed.detail ?? "" };
		return new HotpathError(problem, { retryAfter });
	}
	const detail = bodyText.trim().slice(0, 500) || `the server answered ${status} with no problem document`;
	return new HotpathError({ type: "about:blank", title: statusText || `HTTP ${status}`, status, detail }, { retryAfter });
}
