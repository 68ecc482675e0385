/**
 * The Hotpath side: POST /v1/events with the bridge's retry rules. 202 and 400 are answers (per-event
 * rejections are final); 401, 403 and 404 are config errors that stop the bridge; 408, 429, 5xx and
 * network errors are retried with exponential back-off (honouring Retry-After) for as long as it takes.
 */

export interface Rejection {
	index: number;
	error: string;
}

export interface PostResult {
	accepted: number;
	rejected: Rejection[];
}

/** A misconfiguration the bridge cannot retry its way out of (bad key, no such dataset, wrong URL). */
export class FatalTargetError extends Error {}

export interface TargetOptions {
	url: string;
	key: string;
	timeoutMs: number;
	retry: { initialMs: number; maxMs: number };
	/** Called before each wait: what failed and how long until the next attempt. */
	onRetry?: (reason: string, delayMs: number) => void;
	/** Called when a POST succeeds after failures. */
	onRecovered?: () => void;
	fetch?: typeof fetch;
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or undefined. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
	if (!header?.trim()) return undefined;
	const s = Number(header);
	if (Number.isFinite(s)) return Math.max(0, s * 1000);
	const t = Date.parse(header);
	return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

interface Problem {
	title?: string;
	detail?: string;
	errors?: { pointer?: string; detail?: string }[];
}

async function readProblem(res: Response): Promise<Problem> {
	const text = await res.text().catch(() => "");
	try {
		return JSON.parse(text) as Problem;
	} catch {
		return { detail: text.slice(0, 500) };
	}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function networkReason(e: unknown): string {
	const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
	if (err.name === "TimeoutError") return "timed out";
	return err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
}

export class HotpathTarget {
	readonly url: string;
	private readonly opts: TargetOptions;
	private readonly doFetch: typeof fetch;
	/** Consecutive failures, shared by every POST: while Hotpath is down, each waits the same growing step. */
	private failures = 0;
	/** The field names of each dataset checkDataset could read. */
	private readonly datasetFields = new Map<string, string[]>();

	constructor(opts: TargetOptions) {
		this.opts = opts;
		this.url = opts.url;
		this.doFetch = opts.fetch ?? fetch;
	}

	/** Whether the last POST failed (Hotpath unreachable or overloaded). */
	get failing(): boolean {
		return this.failures > 0;
	}

	/**
	 * Checks that a dataset exists before anything is pulled: a missing one is a config error.
	 * A key without the read scope cannot look (403); then the check is left to the first POST.
	 */
	async checkDataset(name: string): Promise<"ok" | "unchecked"> {
		for (;;) {
			let res: Response;
			try {
				res = await this.doFetch(`${this.url}/v1/datasets/${encodeURIComponent(name)}`, {
					headers: { authorization: `Bearer ${this.opts.key}` },
					signal: AbortSignal.timeout(this.opts.timeoutMs),
				});
			} catch (e) {
				await this.backOff(`GET /v1/datasets/${name}: ${networkReason(e)}`);
				continue;
			}
			const problem = res.ok ? undefined : await readProblem(res);
			if (res.ok) {
				const spec = (await res.json().catch(() => undefined)) as { fields?: unknown } | undefined;
				if (spec?.fields && typeof spec.fields === "object") this.datasetFields.set(name, Object.keys(spec.fields));
				this.recovered();
				return "ok";
			}
			if (res.status === 401) throw new FatalTargetError(`Hotpath refused the key (401): ${problem?.detail ?? "unknown key"}; check target.key / HOTPATH_KEY`);
			if (res.status === 404) throw new FatalTargetError(`dataset "${name}" does not exist at ${this.url} (404): create it first (PUT /v1/datasets/${name})`);
			if (res.status === 403) return "unchecked";
			if (res.status === 408 || res.status === 429 || res.status >= 500) {
				await this.backOff(`GET /v1/datasets/${name}: ${res.status}`, retryAfterMs(res.headers.get("retry-after")));
				continue;
			}
			throw new FatalTargetError(`GET /v1/datasets/${name} answered ${res.status}: ${problem?.detail ?? ""}`);
		}
	}

	/** The field names of a dataset as checkDataset read them; undefined when it could not look. */
	fieldsOf(name: string): readonly string[] | undefined {
		return this.datasetFields.get(name);
	}

	/**
	 * Posts events (each already JSON) and returns Hotpath's answer, retrying until there is one.
	 * Rejection indexes refer to `events`. A body Hotpath finds too large is split in two.
	 */
	async post(events: string[]): Promise<PostResult> {
		for (;;) {
			let res: Response;
			try {
				res = await this.doFetch(`${this.url}/v1/events`, {
					method: "POST",
					headers: { authorization: `Bearer ${this.opts.key}`, "content-type": "application/json" },
					body: `[${events.join(",")}]`,
					signal: AbortSignal.timeout(this.opts.timeoutMs),
				});
			} catch (e) {
				await this.backOff(`POST /v1/events: ${networkReason(e)}`);
				continue;
			}
			if (res.status === 202) {
				const body = (await res.json()) as PostResult;
				this.recovered();
				return { accepted: body.accepted, rejected: body.rejected ?? [] };
			}
			const problem = await readProblem(res);
			const detail = problem.detail ?? problem.title ?? "";
			if (res.status === 400) {
				// None of the events is valid: each is rejected for good, with its own reason when given.
				this.recovered();
				const byIndex = new Map<number, string>();
				for (const item of problem.errors ?? []) {
					const m = /^\/(\d+)/.exec(item.pointer ?? "");
					if (!m) continue;
					// An event with two unknown members has an item at each (/3/ttl, /3/colour): its reject names both.
					const index = Number(m[1]);
					const why = item.detail ?? detail;
					byIndex.set(index, byIndex.has(index) ? `${byIndex.get(index)}; ${why}` : why);
				}
				return { accepted: 0, rejected: events.map((_, index) => ({ index, error: byIndex.get(index) ?? detail })) };
			}
			if (res.status === 413) {
				this.recovered();
				if (events.length === 1) return { accepted: 0, rejected: [{ index: 0, error: `too large: ${detail}` }] };
				const half = Math.ceil(events.length / 2);
				const first = await this.post(events.slice(0, half));
				const second = await this.post(events.slice(half));
				return {
					accepted: first.accepted + second.accepted,
					rejected: [...first.rejected, ...second.rejected.map((r) => ({ ...r, index: r.index + half }))],
				};
			}
			if (res.status === 401) throw new FatalTargetError(`Hotpath refused the key (401): ${detail}; check target.key / HOTPATH_KEY`);
			if (res.status === 403) throw new FatalTargetError(`the key may not write these events (403): ${detail}`);
			if (res.status === 404) throw new FatalTargetError(`no /v1/events at ${this.url} (404): is target.url right?`);
			if (res.status === 408 || res.status === 429 || res.status >= 500) {
				await this.backOff(`POST /v1/events: ${res.status} ${detail}`.trim(), retryAfterMs(res.headers.get("retry-after")));
				continue;
			}
			throw new FatalTargetError(`POST /v1/events answered ${res.status}: ${detail}`);
		}
	}

	private async backOff(reason: string, retryAfter?: number): Promise<void> {
		this.failures++;
		const { initialMs, maxMs } = this.opts.retry;
		const step = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures - 1, 30));
		// Jitter keeps the POSTs of several waiting batches from arriving all at once.
		const delay = retryAfter ?? Math.round(step * (0.5 + Math.random() / 2));
		this.opts.onRetry?.(reason, delay);
		await sleep(delay);
	}

	private recovered(): void {
		if (this.failures > 0) {
			this.failures = 0;
			this.opts.onRecovered?.();
		}
	}
}
