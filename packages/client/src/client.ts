/** The Hotpath client: one method per HTTP route, typed end to end. */
import { CLIENT_PROBLEM, HotpathError } from "./errors.js";
import { type FetchLike, type RetryNotice, Transport } from "./transport.js";
import type {
	ApplyResult,
	CreatedKey,
	DeadLetter,
	DeadLetterFilter,
	DeadLetterId,
	DeadLetterList,
	Event,
	ExportedRecord,
	ExportOptions,
	GetOptions,
	GetResult,
	Health,
	HistoryOptions,
	HistoryResult,
	HistoryVersion,
	ImportOptions,
	ImportResult,
	ImportRow,
	KeyInfo,
	KeyInput,
	LookupRequest,
	LookupResult,
	PushOptions,
	PushResult,
	ReadOptions,
	RebuildMode,
	RebuildStatus,
	RecordsPage,
	RecordValue,
	RequestOptions,
	SearchHit,
	SearchIndexStatus,
	SearchQuery,
	SearchResult,
	Spec,
	SpecInput,
	Stats,
	TimeInput,
} from "./types.js";

export interface HotpathOptions {
	/** Base URL of the deployment, e.g. `https://hotpath.example.workers.dev`. */
	url: string;
	/** API key, sent as `Authorization: Bearer <key>`. */
	key?: string;
	/** A fetch to use instead of the global one (a Worker's service binding, a test double...). */
	fetch?: FetchLike;
	/** Retries after the first attempt for 429, and (idempotent calls: not `keys.create` or a search reindex) 503 and network errors. Default 3. */
	retries?: number;
	/** Per attempt, in ms. Default 30,000. */
	timeoutMs?: number;
	/** First back-off step in ms when the server gives no `Retry-After`; doubled per retry. Default 250. */
	retryBaseMs?: number;
	/** A `Retry-After` longer than this (ms) is not waited for: the 429/503 is thrown at once. Default 60,000. */
	maxRetryDelayMs?: number;
	/** Called before each wait for a retry, with the failed attempt's error and the wait: to tell a person why a call pauses. */
	onRetry?: (retry: RetryNotice) => void;
}

const seg = (s: string | number) => encodeURIComponent(String(s));

/**
 * A key of "." or ".." cannot be a URL path segment: URL parsing resolves it (and "%2E", "%2e%2E"...)
 * as a relative path, so a GET of `records/..` would reach another route.
 */
const isDotSegment = (key: string | number): boolean => key === "." || key === "..";

function unaddressableKey(what: string, key: string): HotpathError {
	return new HotpathError({
		type: CLIENT_PROBLEM.unaddressableKey,
		title: "Key not addressable",
		status: 0,
		detail: `${what} takes the key in the URL path, where "${key}" reads as a relative path; read it with lookup()`,
	});
}

/** Most dead letters one bulk replay or purge call touches (the routes' `limit`, at most 1,000). */
const BULK_PAGE = 1000;

/**
 * Calls a bulk dead-letter route until a call touches less than a full page and says no `more`
 * (a replay stops at a budget of letter bodies, before a full page): each call handles at
 * most BULK_PAGE letters (those it handled no longer match: purged, or marked replayed), so "every
 * letter" takes as many calls as there are pages. Stops at an `incomplete` answer (D1 refused:
 * only the letters waiting in KV were handled, and the next call would handle them again).
 */
async function everyBulkPage<P extends { incomplete?: string; more?: boolean; before?: number }>(
	call: (before: number | undefined) => Promise<P>,
	countOf: (page: P) => number,
): Promise<{ count: number; incomplete?: string }> {
	let count = 0;
	// A replay's answer says where the next call goes on (below the letters it took), so letters
	// that fail again meanwhile are not taken again by the same run.
	let before: number | undefined;
	for (;;) {
		const page = await call(before);
		before = page.before;
		const n = countOf(page);
		count += n;
		if (page.incomplete !== undefined) return { count, incomplete: page.incomplete };
		if (n < BULK_PAGE && page.more !== true) return { count };
	}
}

/**
 * A time as sent: a Date as RFC 3339. An invalid Date (toISOString's RangeError) or a number that is
 * not finite (JSON writes NaN as null, which a lookup reads as current values) is a HotpathError
 * naming `option`, before any request.
 */
function timeParam(t: TimeInput | undefined, option: string): string | number | undefined {
	const invalid = (what: string) =>
		new HotpathError({ type: CLIENT_PROBLEM.invalidArgument, title: "Invalid argument", status: 0, detail: `${option} is ${what}` });
	if (typeof t === "number" && !Number.isFinite(t)) throw invalid(`${t}: give epoch milliseconds, RFC 3339 text or a Date`);
	if (!(t instanceof Date)) return t;
	if (Number.isNaN(t.getTime())) throw invalid("an invalid Date");
	return t.toISOString();
}

/**
 * `maxStaleness` as sent: NaN or Infinity is a HotpathError before any request. JSON would send
 * either as null, which a lookup reads as no bound at all (the query string, as a 400).
 */
function stalenessParam(s: number | undefined): number | undefined {
	if (s === undefined || Number.isFinite(s)) return s;
	throw new HotpathError({
		type: CLIENT_PROBLEM.invalidArgument,
		title: "Invalid argument",
		status: 0,
		detail: `maxStaleness is ${s}: give a finite number of seconds`,
	});
}

/** A member name as a path step: `.name` when it reads as one, else `["na me"]`. */
const step = (name: string): string => (/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`);

/**
 * The first place in `v` (named `where`) holding what JSON would send as null: a number that is
 * not finite (NaN, ±Infinity) or an invalid Date. The server would take that null as a missing
 * value and store it, where it refuses the number itself. Undefined when there is none.
 */
function unsendable(v: unknown, where: string): { where: string; what: string } | undefined {
	if (typeof v === "number") return Number.isFinite(v) ? undefined : { where, what: String(v) };
	if (v === null || typeof v !== "object") return undefined;
	if (v instanceof Date) return Number.isNaN(v.getTime()) ? { where, what: "an invalid Date" } : undefined;
	if (Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView))) {
		const list = v as ArrayLike<unknown>;
		for (let i = 0; i < list.length; i++) {
			const found = unsendable(list[i], `${where}[${i}]`);
			if (found) return found;
		}
		return undefined;
	}
	for (const [name, x] of Object.entries(v)) {
		const found = unsendable(x, `${where}${step(name)}`);
		if (found) return found;
	}
	return undefined;
}

/** Refuses, before anything is sent, an item that JSON would send with a null in place of a number (see unsendable). */
function checkSendable(items: readonly unknown[], what: string): void {
	for (let i = 0; i < items.length; i++) {
		const found = unsendable(items[i], `${what}[${i}]`);
		if (!found) continue;
		throw new HotpathError({
			type: CLIENT_PROBLEM.invalidArgument,
			title: "Invalid argument",
			status: 0,
			detail: `${found.where} is ${found.what}, which JSON would send as null (a missing value): nothing was sent`,
		});
	}
}

/** A 404 about the record itself (the read ran and found nothing), not about the dataset or the route. */
function isRecordMiss(headers: Headers, body: unknown): boolean {
	const type = (body as { type?: unknown } | undefined)?.type;
	if (typeof type === "string" && type.endsWith("/record-not-found")) return true;
	// Servers before that problem type: the records route sets X-Hotpath-Tier once the tiers were asked; a missing dataset fails before that.
	if (headers.has("x-hotpath-tier")) return true;
	const detail = (body as { detail?: unknown } | undefined)?.detail;
	return typeof detail === "string" && detail.startsWith("no record ");
}

/**
 * A random v4 UUID for event and row ids. Node 18 has no global `crypto` (it needs a flag there)
 * and the SDK imports no `node:` module, so the fallback is Math.random: ids need to be unique,
 * not secret.
 */
function randomId(): string {
	const c = (globalThis as { crypto?: { randomUUID?: () => string; getRandomValues?: (a: Uint8Array) => Uint8Array } }).crypto;
	if (typeof c?.randomUUID === "function") return c.randomUUID();
	const b = new Uint8Array(16);
	if (typeof c?.getRandomValues === "function") c.getRandomValues(b);
	else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
	b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
	b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
	const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
	return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Ids for the items of one call that has none of their own: a random prefix shared by the call,
 * then the item's index, zero-padded to one width. Items without event_time all take the server's
 * receipt time, and a tie breaks on id (the larger wins), so ids that sort as the indexes do apply
 * the items in the order given, as the server's own ids do: [upsert k, delete k] leaves k deleted.
 */
function orderedIds(count: number): (index: number) => string {
	const prefix = randomId();
	const width = Math.max(6, String(Math.max(0, count - 1)).length);
	return (index) => `${prefix}-${String(index).padStart(width, "0")}`;
}

/**
 * The Hotpath client.
 *
 * @example
 * const hp = new Hotpath({ url: "http://127.0.0.1:8787", key: process.env.HOTPATH_KEY });
 * const user = await hp.get("demo_users", "u1", { fields: ["country"] });
 * if (user.status !== "not_found") console.log(user.value?.country, user.age_ms);
 */
export class Hotpath {
	readonly #http: Transport;

	/** Dataset specs: list, show, create or update (`PUT`). */
	readonly datasets: {
		list(opts?: RequestOptions): Promise<Spec[]>;
		get(name: string, opts?: RequestOptions): Promise<Spec>;
		/**
		 * Creates (201) or updates (200) a spec; an incompatible change is a 409 HotpathError listing
		 * why. A spec as `get` gives it applies again as it is.
		 */
		apply(spec: (SpecInput & { name: string }) | Spec, opts?: RequestOptions): Promise<ApplyResult>;
	};

	/** API keys (admin). */
	readonly keys: {
		/** The secret `key` is in this answer only. */
		create(input: KeyInput, opts?: RequestOptions): Promise<CreatedKey>;
		list(opts?: { includeRevoked?: boolean } & RequestOptions): Promise<KeyInfo[]>;
		revoke(id: string, opts?: RequestOptions): Promise<void>;
	};

	/** Messages that kept failing (admin). */
	readonly deadLetters: {
		/** Newest first; `incomplete` on the list says D1 refused and only the letters waiting in KV are in it. */
		list(opts?: DeadLetterFilter & { limit?: number } & RequestOptions): Promise<DeadLetterList>;
		/** One dead letter, with its body (a listing leaves out bodies past its budget). */
		get(id: DeadLetterId, opts?: RequestOptions): Promise<DeadLetter>;
		/** Puts one back on the queue; events are idempotent, so a second replay is harmless. */
		replay(id: DeadLetterId, opts?: RequestOptions): Promise<{ id: DeadLetterId; replayed_at: string }>;
		/**
		 * Replays every dead letter not replayed yet (of one dataset, when given), in as many calls as
		 * it takes (the route handles 1,000 a call); `incomplete` says D1 refused and only the letters
		 * waiting in KV were replayed.
		 */
		replayAll(filter?: DeadLetterFilter & RequestOptions): Promise<{ replayed: number; incomplete?: string }>;
		/** Deletes one dead letter for good. */
		purge(id: DeadLetterId, opts?: RequestOptions): Promise<void>;
		/** Deletes every dead letter (of one dataset, when given), in as many calls as it takes; `incomplete` as for replayAll. */
		/** `replayed`: true only the letters replayed already, false only those never replayed; absent: both. */
		purgeAll(filter?: DeadLetterFilter & { replayed?: boolean } & RequestOptions): Promise<{ purged: number; incomplete?: string }>;
	};

	constructor(options: HotpathOptions) {
		if (!options?.url) throw new TypeError("Hotpath: `url` is required");
		this.#http = new Transport({
			url: options.url,
			key: options.key,
			fetch: options.fetch,
			retries: options.retries ?? 3,
			timeoutMs: options.timeoutMs ?? 30_000,
			retryBaseMs: options.retryBaseMs ?? 250,
			maxRetryDelayMs: options.maxRetryDelayMs ?? 60_000,
			onRetry: options.onRetry,
		});
		const http = this.#http;

		this.datasets = {
			list: async (opts = {}) =>
				(await http.call<{ datasets: Spec[] }>({ method: "GET", path: "/v1/datasets", idempotent: true, signal: opts.signal })).data.datasets,
			get: async (name, opts = {}) => (await http.call<Spec>({ method: "GET", path: `/v1/datasets/${seg(name)}`, idempotent: true, signal: opts.signal })).data,
			apply: async (spec, opts = {}) => {
				const { name, ...body } = spec;
				if (!name) throw new TypeError("datasets.apply: the spec needs a `name`");
				const res = await http.call<Spec>({ method: "PUT", path: `/v1/datasets/${seg(name)}`, json: body, idempotent: true, signal: opts.signal });
				return { spec: res.data, created: res.status === 201 };
			},
		};

		this.keys = {
			// Not idempotent: a resend after a lost answer would make a second key.
			create: async (input, opts = {}) => {
				const body = input.expires_at instanceof Date ? { ...input, expires_at: timeParam(input.expires_at, "expires_at") } : input;
				return (await http.call<CreatedKey>({ method: "POST", path: "/v1/keys", json: body, idempotent: false, signal: opts.signal })).data;
			},
			list: async (opts = {}) =>
				(
					await http.call<{ keys: KeyInfo[] }>({
						method: "GET",
						path: "/v1/keys",
						query: { include_revoked: opts.includeRevoked ? "true" : undefined },
						idempotent: true,
						signal: opts.signal,
					})
				).data.keys,
			revoke: async (id, opts = {}) => {
				await http.call({ method: "DELETE", path: `/v1/keys/${seg(id)}`, idempotent: true, goneMeansDone: true, signal: opts.signal });
			},
		};

		this.deadLetters = {
			list: async (opts = {}) => {
				const { data } = await http.call<{ dead_letters: DeadLetter[]; incomplete?: string }>({
					method: "GET",
					path: "/v1/dead-letters",
					query: { limit: opts.limit, dataset: opts.dataset },
					idempotent: true,
					signal: opts.signal,
				});
				const list: DeadLetterList = data.dead_letters;
				if (data.incomplete !== undefined) list.incomplete = data.incomplete;
				return list;
			},
			get: async (id, opts = {}) =>
				(await http.call<DeadLetter>({ method: "GET", path: `/v1/dead-letters/${seg(id)}`, idempotent: true, signal: opts.signal })).data,
			replay: async (id, opts = {}) =>
				(
					await http.call<{ id: DeadLetterId; replayed_at: string }>({
						method: "POST",
						path: `/v1/dead-letters/${seg(id)}/replay`,
						idempotent: true,
						signal: opts.signal,
					})
				).data,
			replayAll: async (filter = {}) => {
				const { count, incomplete } = await everyBulkPage(
					async (before) =>
						(
							await http.call<{ replayed: number; more?: boolean; before?: number; incomplete?: string }>({
								method: "POST",
								path: "/v1/dead-letters/replay",
								query: { dataset: filter.dataset, limit: BULK_PAGE, before },
								idempotent: true,
								signal: filter.signal,
							})
						).data,
					(page) => page.replayed,
				);
				return { replayed: count, ...(incomplete !== undefined ? { incomplete } : {}) };
			},
			purge: async (id, opts = {}) => {
				await http.call({ method: "DELETE", path: `/v1/dead-letters/${seg(id)}`, idempotent: true, goneMeansDone: true, signal: opts.signal });
			},
			purgeAll: async (filter = {}) => {
				const { count, incomplete } = await everyBulkPage(
					async () =>
						(
							await http.call<{ purged: number; incomplete?: string }>({
								method: "DELETE",
								path: "/v1/dead-letters",
								query: { dataset: filter.dataset, limit: BULK_PAGE, replayed: filter.replayed === undefined ? undefined : String(filter.replayed) },
								idempotent: true,
								signal: filter.signal,
							})
						).data,
					(page) => page.purged,
				);
				return { purged: count, ...(incomplete !== undefined ? { incomplete } : {}) };
			},
		};
	}

	/** The base URL calls go to. */
	get url(): string {
		return this.#http.base;
	}

	/**
	 * Reads one record. A key that does not exist resolves to `{status: "not_found", value: null}`
	 * (as a feature store's miss is null, not an error); a dataset that does not exist, bad
	 * options or auth failures throw HotpathError.
	 */
	async get<V extends RecordValue = RecordValue>(dataset: string, key: string | number, opts: GetOptions = {}): Promise<GetResult<V>> {
		// An empty projection (`fields: []`, value {}) has no query-string form: the server refuses
		// `fields=` as naming no field. A lookup's body carries it, as it carries a dot-segment key.
		if (isDotSegment(key) || opts.fields?.length === 0) {
			// The same read through POST /v1/lookup, whose body carries the key.
			const [result] = await this.lookup<V>([{ dataset, keys: [key], ...(opts.fields ? { fields: opts.fields } : {}) }], {
				maxStaleness: opts.maxStaleness,
				ifStale: opts.ifStale,
				asOf: opts.asOf,
				signal: opts.signal,
			});
			const record = result?.records[0];
			return record ? { dataset, ...record } : { dataset, key: String(key), status: "not_found", value: null, event_time: null, age_ms: null };
		}
		const res = await this.#http.call<GetResult<V>>({
			method: "GET",
			path: `/v1/datasets/${seg(dataset)}/records/${seg(key)}`,
			query: {
				fields: opts.fields?.join(","),
				max_staleness: stalenessParam(opts.maxStaleness),
				if_stale: opts.ifStale,
				as_of: timeParam(opts.asOf, "asOf"),
			},
			idempotent: true,
			allow: [404],
			signal: opts.signal,
		});
		if (res.status === 404) {
			// Any other 404 (no such dataset, or a base URL that is not a Hotpath: an empty body, JSON that is no problem document) is thrown as any status is.
			if (!isRecordMiss(res.headers, res.data)) throw res.toError();
			return { dataset, key: String(key), status: "not_found", value: null, event_time: null, age_ms: null };
		}
		return res.data;
	}

	/** Reads many keys of many datasets in one call; results come back in request order. At most 1,000 keys in all. */
	async lookup<V extends RecordValue = RecordValue>(requests: LookupRequest[], opts: ReadOptions = {}): Promise<LookupResult<V>[]> {
		for (const [i, r] of requests.entries()) if (r.as_of !== undefined && r.as_of !== null) timeParam(r.as_of, `requests[${i}].as_of`);
		const body: Record<string, unknown> = { requests };
		if (opts.maxStaleness !== undefined) body.max_staleness = stalenessParam(opts.maxStaleness);
		if (opts.ifStale !== undefined) body.if_stale = opts.ifStale;
		if (opts.asOf !== undefined) body.as_of = timeParam(opts.asOf, "asOf");
		return (await this.#http.call<{ results: LookupResult<V>[] }>({ method: "POST", path: "/v1/lookup", json: body, idempotent: true, signal: opts.signal }))
			.data.results;
	}

	/**
	 * Sends change events (at most 10,000 and 5 MiB per call). Every event without an `id` gets one
	 * before the first attempt (random for the call, ending in the event's index, so events without
	 * `event_time` apply in the order given), so the client's own retries cannot apply an event twice;
	 * with `idempotencyKey` the server derives the missing ids from it instead.
	 * When some event has no `event_time` and no `idempotencyKey` is given, the call sends one of its
	 * own (random, the same on every attempt): the server then gives a retry's events the time it
	 * received the first attempt, so a retry can never win over a write made after that attempt.
	 * Answers once the queue holds the accepted events; `rejected` lists the others by index.
	 * A NaN, an Infinity or an invalid Date anywhere in an event is a HotpathError naming it
	 * (`events[3].value.score`) before anything is sent: JSON would send it as null, a missing value.
	 */
	async push(events: Event[], opts: PushOptions = {}): Promise<PushResult> {
		checkSendable(events, "events");
		const idOf = orderedIds(events.length);
		const withIds = opts.idempotencyKey === undefined ? events.map((e, i) => (e.id === undefined || e.id === null ? { ...e, id: idOf(i) } : e)) : events;
		const key = opts.idempotencyKey ?? (events.some((e) => e.event_time === undefined || e.event_time === null) ? randomId() : undefined);
		const res = await this.#http.call<{ accepted: number; rejected: PushResult["rejected"] }>({
			method: "POST",
			path: "/v1/events",
			json: withIds,
			headers: key === undefined ? undefined : { "idempotency-key": key },
			idempotent: true,
			signal: opts.signal,
		});
		return { accepted: res.data.accepted, rejected: res.data.rejected, ids: withIds.map((e) => e.id) };
	}

	/**
	 * Bulk-imports rows straight into the dataset (at most 5,000 rows and 5 MiB per call). A row is
	 * the record's value with the key field, plus optional `_event_time`, `_op` and `_id`. Rows
	 * without `_id` get one before the first attempt (unless `idempotencyKey` is given), as `push`
	 * gives events theirs (rows without `_event_time` apply in the order given), so retries are safe. Answers once D1 has committed.
	 * Rows without `_event_time` and no `idempotencyKey`: the call sends a key of its own, as `push` does.
	 * A NaN, an Infinity or an invalid Date in a row is refused before anything is sent, as `push` refuses it (`rows[2].score`).
	 */
	async import(dataset: string, rows: ImportRow[], opts: ImportOptions = {}): Promise<ImportResult> {
		checkSendable(rows, "rows");
		const idOf = orderedIds(rows.length);
		const withIds = opts.idempotencyKey === undefined ? rows.map((r, i) => (r._id === undefined || r._id === null ? { ...r, _id: idOf(i) } : r)) : rows;
		const key = opts.idempotencyKey ?? (rows.some((r) => r._event_time === undefined || r._event_time === null) ? randomId() : undefined);
		return (
			await this.#http.call<ImportResult>({
				method: "POST",
				path: `/v1/datasets/${seg(dataset)}/import`,
				json: withIds,
				headers: key === undefined ? undefined : { "idempotency-key": key },
				idempotent: true,
				signal: opts.signal,
			})
		).data;
	}

	/**
	 * Imports an NDJSON body that is already encoded (one row per line), for bulk loaders that
	 * measure their chunks in bytes. The caller vouches that every row has an `_id` (or passes
	 * `idempotencyKey`): the call is retried like `import`.
	 */
	async importNdjson(dataset: string, ndjson: string, opts: ImportOptions = {}): Promise<ImportResult> {
		return (
			await this.#http.call<ImportResult>({
				method: "POST",
				path: `/v1/datasets/${seg(dataset)}/import`,
				text: { body: ndjson, contentType: "application/x-ndjson" },
				headers: opts.idempotencyKey === undefined ? undefined : { "idempotency-key": opts.idempotencyKey },
				idempotent: true,
				signal: opts.signal,
			})
		).data;
	}

	/** One page of a dataset's stored records, in key order. */
	async records<V extends RecordValue = RecordValue>(dataset: string, opts: ExportOptions = {}): Promise<RecordsPage<V>> {
		return (
			await this.#http.call<RecordsPage<V>>({
				method: "GET",
				path: `/v1/datasets/${seg(dataset)}/records`,
				query: { limit: opts.pageSize, cursor: opts.cursor, include_deleted: opts.includeDeleted ? "true" : undefined },
				idempotent: true,
				signal: opts.signal,
			})
		).data;
	}

	/**
	 * Every stored record of a dataset, in key order, a page at a time.
	 *
	 * @example
	 * for await (const rec of hp.export("item_scores")) console.log(rec.key, rec.value);
	 */
	async *export<V extends RecordValue = RecordValue>(dataset: string, opts: ExportOptions = {}): AsyncGenerator<ExportedRecord<V>, void, undefined> {
		let cursor = opts.cursor;
		for (;;) {
			const page = await this.records<V>(dataset, { ...opts, cursor });
			yield* page.records;
			if (!page.next_cursor) return;
			cursor = page.next_cursor;
		}
	}

	/** Rewrites the dataset's KV and Redis copies from D1 (`refill`, the default) or drops them, in the background. */
	async rebuild(dataset: string, opts: { mode?: RebuildMode } & RequestOptions = {}): Promise<RebuildStatus> {
		return (
			await this.#http.call<RebuildStatus>({
				method: "POST",
				path: `/v1/datasets/${seg(dataset)}/rebuild`,
				query: { mode: opts.mode },
				// Sent again, it answers the rebuild the first attempt started (running) rather than starting over.
				idempotent: true,
				signal: opts.signal,
			})
		).data;
	}

	/** Progress of the dataset's latest rebuild. */
	async rebuildStatus(dataset: string, opts: RequestOptions = {}): Promise<RebuildStatus> {
		return (await this.#http.call<RebuildStatus>({ method: "GET", path: `/v1/datasets/${seg(dataset)}/rebuild`, idempotent: true, signal: opts.signal })).data;
	}

	/** Starts a rebuild of every dataset (needs an unlimited admin key). */
	async rebuildAll(opts: { mode?: RebuildMode } & RequestOptions = {}): Promise<RebuildStatus[]> {
		return (
			await this.#http.call<{ rebuilds: RebuildStatus[] }>({
				method: "POST",
				path: "/v1/rebuild",
				query: { mode: opts.mode },
				// As rebuild(): a dataset whose rebuild is running keeps it.
				idempotent: true,
				signal: opts.signal,
			})
		).data.rebuilds;
	}

	/**
	 * One page of a search over the dataset's searchable fields: text (BM25), filters and sorts,
	 * vector k-NN, or text and vector fused. The dataset needs a `search` part in its spec.
	 *
	 * @example
	 * const page = await hp.search("demo_users", { q: "travel", filter: { age: { gte: 30 } }, limit: 5 });
	 * for (const hit of page.hits) console.log(hit.key, hit.score, hit.value);
	 */
	async search<V extends RecordValue = RecordValue>(dataset: string, query: SearchQuery = {}, opts: RequestOptions = {}): Promise<SearchResult<V>> {
		return (
			await this.#http.call<SearchResult<V>>({
				method: "POST",
				path: `/v1/datasets/${seg(dataset)}/search`,
				json: query,
				idempotent: true,
				signal: opts.signal,
			})
		).data;
	}

	/**
	 * Every hit of a search, best first, a page at a time (`query.limit` hits per request), following
	 * `next_cursor`. The server ranks up to 1,000 hits for a query; each doc that exists throughout
	 * is served once.
	 *
	 * @example
	 * for await (const hit of hp.searchAll("demo_users", { filter: { country: { in: ["DE", "US"] } }, sort: "-age" })) console.log(hit.key);
	 */
	async *searchAll<V extends RecordValue = RecordValue>(
		dataset: string,
		query: SearchQuery = {},
		opts: RequestOptions = {},
	): AsyncGenerator<SearchHit<V>, void, undefined> {
		let cursor = query.cursor;
		for (;;) {
			const page = await this.search<V>(dataset, cursor === undefined ? query : { ...query, cursor }, opts);
			yield* page.hits;
			if (!page.next_cursor) return;
			cursor = page.next_cursor;
		}
	}

	/** The state of the dataset's search index: `ready`, `building` (with progress), `failed` or `none` (not searchable). */
	async searchStatus(dataset: string, opts: RequestOptions = {}): Promise<SearchIndexStatus> {
		return (await this.#http.call<SearchIndexStatus>({ method: "GET", path: `/v1/datasets/${seg(dataset)}/search`, idempotent: true, signal: opts.signal }))
			.data;
	}

	/** Rebuilds the dataset's search index from D1 in the background (admin); queries use the current one until it is done. */
	async reindex(dataset: string, opts: RequestOptions = {}): Promise<SearchIndexStatus> {
		return (
			await this.#http.call<SearchIndexStatus>({ method: "POST", path: `/v1/datasets/${seg(dataset)}/search/reindex`, idempotent: false, signal: opts.signal })
		).data;
	}

	/**
	 * One page of a record's versions in `event_time` order, each the whole state after that event.
	 * A key without events has no versions (not an error); a dataset that does not exist throws.
	 */
	async history<V extends RecordValue = RecordValue>(dataset: string, key: string | number, opts: HistoryOptions = {}): Promise<HistoryResult<V>> {
		if (isDotSegment(key)) throw unaddressableKey("history", String(key));
		return (
			await this.#http.call<HistoryResult<V>>({
				method: "GET",
				path: `/v1/datasets/${seg(dataset)}/records/${seg(key)}/history`,
				query: { since: timeParam(opts.since, "since"), until: timeParam(opts.until, "until"), limit: opts.limit, cursor: opts.cursor },
				idempotent: true,
				signal: opts.signal,
			})
		).data;
	}

	/**
	 * Every version of a record in `event_time` order (within `since`..`until`), a page of `limit`
	 * at a time, following `next_cursor`.
	 *
	 * @example
	 * for await (const v of hp.historyAll("demo_users", "u1", { since: "2026-01-01T00:00:00Z" })) console.log(v.event_time, v.op, v.value);
	 */
	async *historyAll<V extends RecordValue = RecordValue>(
		dataset: string,
		key: string | number,
		opts: HistoryOptions = {},
	): AsyncGenerator<HistoryVersion<V>, void, undefined> {
		let cursor = opts.cursor;
		for (;;) {
			const page = await this.history<V>(dataset, key, { ...opts, cursor });
			yield* page.versions;
			if (!page.next_cursor) return;
			cursor = page.next_cursor;
		}
	}

	/** Per-isolate counters of the isolate that answered (unlimited admin key). */
	async stats(opts: RequestOptions = {}): Promise<Stats> {
		return (await this.#http.call<Stats>({ method: "GET", path: "/v1/stats", idempotent: true, signal: opts.signal })).data;
	}

	/** Health of every tier. Answers (never throws) for a 503 too, with `status` saying what is down. */
	async health(opts: RequestOptions = {}): Promise<Health> {
		return (await this.#http.call<Health>({ method: "GET", path: "/healthz", idempotent: true, auth: false, allow: [503], retry: false, signal: opts.signal }))
			.data;
	}
}
