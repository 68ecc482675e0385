/** One HTTP call with auth, a per-attempt timeout, and the retry policy: 429, and (for idempotent calls) 503 and network errors. */
import { CLIENT_PROBLEM, errorFromResponse, HotpathError } from "./errors.js";

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface TransportOptions {
	url: string;
	key?: string;
	fetch?: FetchLike;
	/** Retries after the first attempt. */
	retries: number;
	/** Per attempt. */
	timeoutMs: number;
	/** First back-off step; doubled per retry. */
	retryBaseMs: number;
	/** A `Retry-After` longer than this is not waited for: the error is thrown at once. */
	maxRetryDelayMs: number;
	/** Told before each wait for a retry. */
	onRetry?: (retry: RetryNotice) => void;
}

/** What the client is about to wait out before trying again. */
export interface RetryNotice {
	/** The error of the attempt that failed: a 429 or 503 problem, a timeout or a network error. */
	error: HotpathError;
	/** The retry about to be made: 1 for the first. */
	attempt: number;
	/** How long the client waits first (the server's `Retry-After` where it gave one). */
	waitMs: number;
}

export type QueryValue = string | number | boolean | undefined;

export interface CallSpec {
	method: "GET" | "POST" | "PUT" | "DELETE";
	/** Path with its parameters already encoded. */
	path: string;
	query?: Record<string, QueryValue>;
	/** Sent as JSON. */
	json?: unknown;
	/** Sent as is, with its content type. */
	text?: { body: string; contentType: string };
	headers?: Record<string, string>;
	/** Safe to send twice: 503s, network errors and timeouts are retried too (429s always are). */
	idempotent: boolean;
	/** Statuses answered as data instead of thrown (their body is parsed the same way). */
	allow?: readonly number[];
	/**
	 * A DELETE: a 404 to a resend after an attempt that got no answer means that attempt deleted it
	 * (the server answers a second revoke or purge 404), so the call is done, not failed.
	 */
	goneMeansDone?: boolean;
	/** Retry 429/503 (default true). */
	retry?: boolean;
	/** Send the Authorization header (default true). */
	auth?: boolean;
	/** The caller's cancel: aborts the attempt in flight and any retry (the call rejects with its reason). */
	signal?: AbortSignal;
}

export interface CallResult<T> {
	status: number;
	headers: Headers;
	data: T;
	/** The error this answer stands for, as a status that is not allowed would have thrown it (for an allowed status the caller refuses after all). */
	toError(): HotpathError;
}

const RETRY_STATUSES = new Set([429, 503]);

/** `Retry-After` as seconds: either delta-seconds or an HTTP date. */
export function parseRetryAfter(raw: string | null, now = Date.now()): number | undefined {
	if (raw === null || raw.trim() === "") return undefined;
	const s = Number(raw);
	if (Number.isFinite(s)) return Math.max(0, s);
	const t = Date.parse(raw);
	return Number.isNaN(t) ? undefined : Math.max(0, (t - now) / 1000);
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
	new Promise((resolve, reject) => {
		if (signal?.aborted) return reject(signal.reason);
		const timer = setTimeout(() => {
			signal?.removeEventListener("abort", onAbort);
			resolve();
		}, ms);
		const onAbort = () => {
			clearTimeout(timer);
			reject(signal?.reason);
		};
		signal?.addEventListener("abort", onAbort, { once: true });
	});

function networkDetail(e: unknown): string {
	const err = e as { message?: string; cause?: { code?: string; message?: string } };
	return err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
}

export class Transport {
	readonly base: string;
	readonly options: TransportOptions;

	constructor(options: TransportOptions) {
		this.options = options;
		this.base = options.url.replace(/\/+$/, "");
	}

	url(path: string, query?: Record<string, QueryValue>): string {
		const params = new URLSearchParams();
		for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
		const qs = params.toString();
		return `${this.base}${path}${qs ? `?${qs}` : ""}`;
	}

	/** Exponential back-off with jitter, or what the server asked for. */
	delayMs(attempt: number, retryAfterS: number | undefined): number {
		if (retryAfterS !== undefined) return retryAfterS * 1000;
		const step = this.options.retryBaseMs * 2 ** attempt;
		return step / 2 + Math.random() * (step / 2);
	}

	async call<T>(spec: CallSpec): Promise<CallResult<T>> {
		const url = this.url(spec.path, spec.query);
		const headers: Record<string, string> = { accept: "application/json", ...spec.headers };
		if (spec.auth !== false && this.options.key) headers.authorization = `Bearer ${this.options.key}`;
		let body: string | undefined;
		if (spec.json !== undefined) {
			body = JSON.stringify(spec.json);
			headers["content-type"] = "application/json";
		} else if (spec.text) {
			body = spec.text.body;
			headers["content-type"] = spec.text.contentType;
		}
		const doFetch: FetchLike = this.options.fetch ?? ((input, init) => globalThis.fetch(input, init));

		/** Whether an earlier attempt went unanswered (it may have reached the server and been done). */
		let lostAnswer = false;
		for (let attempt = 0; ; attempt++) {
			// Aborted already (before the call, or between pages of an iterator): send nothing. The
			// listener below only hears aborts from now on.
			spec.signal?.throwIfAborted();
			const canRetry = attempt < this.options.retries;
			const controller = new AbortController();
			const onAbort = () => controller.abort(spec.signal?.reason);
			spec.signal?.addEventListener("abort", onAbort, { once: true });
			let timedOut = false;
			const timer = setTimeout(() => {
				timedOut = true;
				controller.abort();
			}, this.options.timeoutMs);
			let res: Response;
			let text: string;
			try {
				res = await doFetch(url, { method: spec.method, headers, body, signal: controller.signal });
				text = await res.text();
			} catch (e) {
				if (spec.signal?.aborted) throw spec.signal.reason ?? e;
				const error = timedOut
					? new HotpathError(
							{ type: CLIENT_PROBLEM.timeout, title: "Timeout", status: 0, detail: `${spec.method} ${url} took longer than ${this.options.timeoutMs} ms` },
							{ cause: e },
						)
					: new HotpathError(
							{ type: CLIENT_PROBLEM.network, title: "Network error", status: 0, detail: `${spec.method} ${url}: ${networkDetail(e)}` },
							{ cause: e },
						);
				if (!spec.idempotent || !canRetry) throw error;
				lostAnswer = true;
				const backOff = this.delayMs(attempt, undefined);
				this.options.onRetry?.({ error, attempt: attempt + 1, waitMs: backOff });
				await sleep(backOff, spec.signal);
				continue;
			} finally {
				clearTimeout(timer);
				spec.signal?.removeEventListener("abort", onAbort);
			}

			const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
			const answered = res;
			const toError = () => errorFromResponse(answered.status, answered.statusText, text, retryAfter);
			if (res.status === 404 && spec.goneMeansDone && lostAnswer && isGone(text))
				return { status: res.status, headers: res.headers, data: undefined as T, toError };
			if (res.ok || spec.allow?.includes(res.status)) {
				// An allowed error status whose body is not JSON (a proxy's HTML page) is that status's error, not a bad response.
				if (!res.ok && text !== "" && !isJson(text)) throw toError();
				return { status: res.status, headers: res.headers, data: parseBody<T>(text, res.status, url), toError };
			}
			const error = toError();
			if (spec.retry === false || !RETRY_STATUSES.has(res.status) || !canRetry) throw error;
			// A 429 (the rate limit, checked before the route runs) is safe to resend; a 503 may come after
			// the work was done (D1 "did not answer" after committing), so only idempotent calls resend it.
			if (res.status === 503 && !spec.idempotent) throw error;
			const wait = this.delayMs(attempt, retryAfter);
			if (wait > this.options.maxRetryDelayMs) throw error;
			this.options.onRetry?.({ error, attempt: attempt + 1, waitMs: wait });
			await sleep(wait, spec.signal);
		}
	}
}

/** A Hotpath 404 about the thing (not a route that does not exist, nor a body that is no problem document). */
function isGone(text: string): boolean {
	try {
		const p = JSON.parse(text) as { type?: unknown; detail?: unknown };
		return typeof p.type === "string" && p.type.endsWith("/not-found") && !(typeof p.detail === "string" && p.detail.startsWith("no route"));
	} catch {
		return false;
	}
}

function isJson(text: string): boolean {
	try {
		JSON.parse(text);
		return true;
	} catch {
		return false;
	}
}

function parseBody<T>(text: string, status: number, url: string): T {
	if (text === "") return undefined as T;
	try {
		return JSON.parse(text) as T;
	} catch {
		throw new HotpathError({
			type: CLIENT_PROBLEM.badResponse,
			title: "Bad response",
			status,
			detail: `${url} answered ${status} with a body that is not JSON: ${text.slice(0, 200)}`,
		});
	}
}
