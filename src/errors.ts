/** Error codes, their HTTP statuses, and RFC 9457 problem+json rendering: the one place errors become HTTP. */

export const problemStatus = {
	bad_request: 400,
	validation_failed: 400,
	unauthorized: 401,
	forbidden: 403,
	not_found: 404,
	method_not_allowed: 405,
	conflict: 409,
	payload_too_large: 413,
	unsupported_media_type: 415,
	unavailable: 503,
	internal: 500,
} as const;

export type ProblemCode = keyof typeof problemStatus;

const titles: Record<ProblemCode, string> = {
	bad_request: "Bad request",
	validation_failed: "Validation failed",
	unauthorized: "Unauthorized",
	forbidden: "Forbidden",
	not_found: "Not found",
	method_not_allowed: "Method not allowed",
	conflict: "Conflict",
	payload_too_large: "Payload too large",
	unsupported_media_type: "Unsupported media type",
	unavailable: "Service unavailable",
	internal: "Internal error",
};

/** One problem inside a request: `pointer` is a JSON pointer into the request body or a parameter name. */
export interface ProblemItem {
	pointer: string;
	detail: string;
}

export interface Problem {
	type: string;
	title: string;
	status: number;
	detail: string;
	instance?: string;
	errors?: ProblemItem[];
	request_id?: string;
}

/** An error that renders as a problem+json response. Thrown anywhere; rendered only by the app's onError. */
export class ApiError extends Error {
	readonly code: ProblemCode;
	readonly errors?: ProblemItem[];
	readonly headers?: Record<string, string>;

	constructor(code: ProblemCode, detail: string, opts: { errors?: ProblemItem[]; headers?: Record<string, string> } = {}) {
		super(detail);
		this.name = "ApiError";
		this.code = code;
		this.errors = opts.errors;
		this.headers = opts.headers;
	}

	get status(): number {
		return problemStatus[this.code];
	}
}

export function toProblem(err: ApiError, instance?: string, requestId?: string): Problem {
	const problem: Problem = {
		type: `https://hotpath.dev/problems/${err.code.replaceAll("_", "-")}`,
		title: titles[err.code],
		status: err.status,
		detail: err.message,
	};
	if (instance) problem.instance = instance;
	if (err.errors?.length) problem.errors = err.errors;
	if (requestId) problem.request_id = requestId;
	return problem;
}

export function problemResponse(err: ApiError, instance?: string, requestId?: string): Response {
	return new Response(JSON.stringify(toProblem(err, instance, requestId)), {
		status: err.status,
		headers: { "content-type": "application/problem+json", ...err.headers },
	});
}

/** Turns a list of zod-style issues into problem items with JSON pointers. */
export function issuesToItems(issues: readonly { path: readonly PropertyKey[]; message: string }[], prefix = ""): ProblemItem[] {
	return issues.map((i) => ({
		pointer: `${prefix}/${i.path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`.replace(/\/$/, "") || "/",
		detail: i.message,
	}));
}
