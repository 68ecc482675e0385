/** The HTTP contract's shapes, as the server sends and takes them (snake_case, as on the wire). */

/** A field's type in a dataset spec. */
export type FieldType = "string" | "int" | "float" | "bool" | "json" | "string[]" | "float[]" | "vector";

/** A field as the server reports it: always the object form. `dim` only for vectors; `derive` only for derived fields. */
export interface FieldSpec {
	type: FieldType;
	dim?: number;
	/** An expression over the other fields that the server computes the field with on write (events cannot set it). */
	derive?: string;
}

/**
 * A field as written in a spec: the type name alone, or the object form (`{"type":"vector","dim":3}`,
 * `{"type":"float","derive":"clicks / max(impressions, 1)"}`).
 */
export type FieldInput = Exclude<FieldType, "vector"> | { type: Exclude<FieldType, "vector">; derive?: string } | { type: "vector"; dim: number };

/** Search settings of a dataset (DESIGN: search over searchable fields). */
export interface SearchSpec {
	text?: string[];
	filters?: string[];
	vector?: string;
}

/** A windowed aggregate of a dataset (DESIGN: aggregates). */
export interface AggregateSpec {
	fn: "count" | "sum" | "min" | "max" | "mean" | "last_n" | "distinct";
	of?: string;
	window: string;
	n?: number;
	/** As the server reports it: when the aggregate was added (epoch ms). Ignored on input. */
	since?: number;
}

/** How a log shipper's records map to events (JSON Pointers into the record). */
export interface IngestSpec {
	key: string;
	event_time?: string;
	op?: string;
	fields?: Record<string, string>;
}

/** A dataset spec as the server reports it (`GET /v1/datasets/:name`). */
export interface Spec {
	name: string;
	/** The entity key's field name, e.g. `user_id`. */
	key: string;
	fields: Record<string, FieldSpec>;
	/** How long a value stays fresh to serve. */
	ttl_seconds: number;
	description?: string;
	/** How long the event log keeps a record's versions (default 7). */
	history_days: number;
	search?: SearchSpec;
	aggregates?: Record<string, AggregateSpec>;
	ingest?: IngestSpec;
}

/** The body of `PUT /v1/datasets/:name`. */
export interface SpecInput {
	key: string;
	fields: Record<string, FieldInput>;
	ttl_seconds?: number;
	description?: string;
	history_days?: number;
	search?: SearchSpec;
	aggregates?: Record<string, AggregateSpec>;
	ingest?: IngestSpec;
}

/** What `datasets.apply` answers: the stored spec, and whether it was new (201) or an update (200). */
export interface ApplyResult {
	spec: Spec;
	created: boolean;
}

export type RecordStatus = "present" | "not_found" | "stale";

/** A record's value: field name to value (`null` is a missing feature). */
export type RecordValue = Record<string, unknown>;

/** One key as a lookup reports it. */
export interface RecordView<V extends RecordValue = RecordValue> {
	key: string;
	status: RecordStatus;
	/** `null` when not found, or stale with `ifStale: "omit"`. */
	value: V | null;
	/** RFC 3339; `null` when not found. */
	event_time: string | null;
	age_ms: number | null;
}

/** One record read (`GET /v1/datasets/:name/records/:key`). */
export interface GetResult<V extends RecordValue = RecordValue> extends RecordView<V> {
	dataset: string;
}

/** What to do with a value past its freshness limit: report it marked stale, or withhold it. */
export type IfStale = "serve" | "omit";

/** A point in time: RFC 3339 text, epoch milliseconds, or a Date. */
export type TimeInput = string | number | Date;

/** What every call takes besides its own options. */
export interface RequestOptions {
	/**
	 * Cancels the call: its request is cut and no retry follows, and the call rejects with the
	 * signal's reason (an `AbortError` DOMException unless it was aborted with another). Already
	 * aborted, nothing is sent. An iterator (`export`, `searchAll`, `historyAll`) stops at its next page.
	 */
	signal?: AbortSignal;
}

export interface ReadOptions extends RequestOptions {
	/** Tightens the dataset's `ttl_seconds`: an older value is reported stale. In seconds. */
	maxStaleness?: number;
	ifStale?: IfStale;
	/** Point-in-time read: the state all events with `event_time <= asOf` produce. */
	asOf?: TimeInput;
}

export interface GetOptions extends ReadOptions {
	/** Projection: only these fields in `value`. */
	fields?: string[];
}

export interface LookupRequest {
	dataset: string;
	keys: (string | number)[];
	fields?: string[];
	/** This request's point in time (RFC 3339 or epoch ms), over the call's `asOf`; null asks for current values. */
	as_of?: string | number | null;
}

export interface LookupResult<V extends RecordValue = RecordValue> {
	dataset: string;
	records: RecordView<V>[];
}

export type EventOp = "upsert" | "patch" | "delete";

/** A change event (`POST /v1/events`). */
export interface Event {
	/** Makes the event idempotent: applied at most once per key. `push` sets one when absent: random for the call, ending in the event's index (events without `event_time` apply in the order given). */
	id?: string;
	dataset: string;
	/** May be left out when `value` holds the dataset's key field. */
	key?: string | number;
	op: EventOp;
	value?: RecordValue;
	/** RFC 3339 or epoch ms; the receipt time when absent. */
	event_time?: string | number;
}

/** One refused item of a batch: its index in the body and why. */
export interface Rejection {
	index: number;
	error: string;
}

/** What `POST /v1/events` answers (202), plus the ids `push` sent. */
export interface PushResult {
	accepted: number;
	rejected: Rejection[];
	/** The id of every event in the order given: the caller's own, or the one `push` set. */
	ids: (string | undefined)[];
}

export interface PushOptions extends RequestOptions {
	/**
	 * Sent as `Idempotency-Key`: the server derives the ids of events without one from this key and
	 * their index, so resending the same body (even from another process) is a no-op. With it,
	 * `push` does not set random ids.
	 */
	idempotencyKey?: string;
}

/**
 * One import row: the record's value including the dataset's key field, plus optional
 * `_event_time`, `_op` and `_id`.
 */
export interface ImportRow {
	_id?: string;
	_op?: EventOp;
	_event_time?: string | number;
	[field: string]: unknown;
}

/** What `POST /v1/datasets/:name/import` answers once D1 has committed. */
export interface ImportResult {
	imported: number;
	/** Rows that changed nothing (an id applied before, or older than what is stored). */
	unchanged: number;
	/** `index` is the row's position in the body: array index or 0-based NDJSON line. */
	rejected: Rejection[];
}

export type ImportOptions = PushOptions;

/** One stored record as the export listing gives it. */
export interface ExportedRecord<V extends RecordValue = RecordValue> {
	key: string;
	/** `null` for a tombstone. */
	value: V | null;
	event_time: string;
	event_id: string;
	/** With `includeDeleted` only: whether the record is a tombstone. */
	deleted?: boolean;
}

/** One page of `GET /v1/datasets/:name/records`. */
export interface RecordsPage<V extends RecordValue = RecordValue> {
	records: ExportedRecord<V>[];
	next_cursor: string | null;
}

export interface ExportOptions extends RequestOptions {
	/** Records per request (1..1000; the server's default is 500). */
	pageSize?: number;
	includeDeleted?: boolean;
	/** Start from a cursor a previous page returned. */
	cursor?: string;
}

export type RebuildMode = "refill" | "drop";

/** Progress of a dataset's rebuild (`GET /v1/datasets/:name/rebuild`). */
export interface RebuildStatus {
	dataset: string;
	mode: RebuildMode;
	status: "idle" | "running" | "done" | "failed";
	keys_done: number;
	pages_done: number;
	/** Records (tombstones included) when the run started. */
	total_keys: number;
	started_at: string | null;
	finished_at: string | null;
	/** In the answer of a POST: whether it started the run (false: it answered the run already running). */
	started?: boolean;
	error?: string;
}

export type Scope = "read" | "write" | "admin";

export interface RateLimit {
	requests: number;
	period_seconds: number;
}

export interface KeyInput {
	name: string;
	scopes: Scope[];
	/** Limit the key to these datasets; absent or null means every dataset. */
	datasets?: string[] | null;
	/** `requests` per `period_seconds`; past it the key gets 429 with Retry-After. */
	rate_limit?: RateLimit | null;
	/** In the future: RFC 3339, epoch ms or a Date. After it the key gets 401. */
	expires_at?: TimeInput | null;
}

/** An API key as listed (never with its secret). */
export interface KeyInfo {
	id: string;
	name: string;
	scopes: Scope[];
	datasets: string[] | null;
	rate_limit: RateLimit | null;
	/** RFC 3339, or null for a key that does not expire. */
	expires_at: string | null;
	created_at: string;
	revoked_at: string | null;
}

/** A key just created: the secret `key` is shown in this answer only. */
export interface CreatedKey extends KeyInfo {
	key: string;
}

/** A message that kept failing, kept for inspection and replay. */
export interface DeadLetter {
	/** A D1 row id, or `kv:<message id>` for one waiting in KV while D1 refused it. */
	id: DeadLetterId;
	queue: string;
	message_id: string;
	error: string;
	attempts: number;
	created_at: string;
	replayed_at: string | null;
	/** Datasets its events touch; null when the body is not a Hotpath message. */
	datasets: string[] | null;
	/** True for one waiting in KV (its id is `kv:<message id>`). */
	waiting_in_kv: boolean;
	/** The message body; null in a listing past its budget of bodies (see `body_omitted`): `deadLetters.get(id)` has it. */
	body: unknown;
	/** In a listing, why `body` is null: the body's size, past the page's budget of bodies. */
	body_omitted?: string;
}

/** A dead letter's id: a D1 row id, or `kv:<message id>` for one waiting in KV while D1 refused it. */
export type DeadLetterId = number | `kv:${string}`;

/**
 * A page of dead letters, newest first. `incomplete` is set when D1 refused the query: only the
 * letters waiting in KV are listed, and the rest can be listed once D1 is back.
 */
export type DeadLetterList = DeadLetter[] & { incomplete?: string };

export interface DeadLetterFilter {
	/** Only dead letters touching this dataset. */
	dataset?: string;
}

export type TierState = "up" | "down" | "off";

export interface Health {
	/** `down` (a 503) when D1 is down; `degraded` when another tier is. */
	status: "ok" | "degraded" | "down";
	tiers: { l0: TierState; redis: TierState; kv: TierState; d1: TierState };
}

/** Per-isolate counters (`GET /v1/stats`); their detail may grow, so extra members are kept. */
export interface Stats {
	since: string;
	scope: string;
	tiers: Record<string, Record<string, number>>;
	l0: { entries: number; max_entries: number; ttl_seconds: number; fast_lane_hits?: number };
	[extra: string]: unknown;
}

/** A filter operand: strings for string fields, finite numbers for int and float fields, booleans for bool fields. */
export type FilterValue = string | number | boolean;

/**
 * The operators of one filter field. `contains` is for `string[]` fields (which take only
 * `contains` and `exists`); `bool` fields take `eq`, `ne`, `in` and `exists`. `ne` and
 * `exists: false` match a missing value too.
 */
export interface FilterOperators {
	eq?: FilterValue;
	ne?: FilterValue;
	lt?: number | string;
	lte?: number | string;
	gt?: number | string;
	gte?: number | string;
	/** 1 to 1,000 values. */
	in?: FilterValue[];
	contains?: string;
	exists?: boolean;
}

/**
 * A filter on the dataset's declared filter fields, e.g. `{"price": {"lt": 20}, "or": [{"category": "a"}, {"tags": {"contains": "new"}}]}`.
 * A field's bare value means `eq` (`contains` for a `string[]` field); the members of one object
 * must all hold (and), `and` and `or` take lists of filters. At most 8 levels and 64 operators.
 */
export interface SearchFilter {
	and?: SearchFilter[];
	or?: SearchFilter[];
	[field: string]: FilterOperators | FilterValue | SearchFilter[] | undefined;
}

/** A sort key: `"price"` (ascending), `"-price"` (descending), `"_score"` (best first), or the object form. */
export type SearchSort = string | string[] | { field: string; order?: "asc" | "desc" }[];

/** Exact cosine k-nearest neighbours of `value`, or of the vector of record `key` (left out of its own results): give one of the two. */
export interface SearchVector {
	value?: number[];
	key?: string;
	/** Neighbours to rank, 1 to 1,000 (the server's default is 100). */
	k?: number;
}

/** The body of `POST /v1/datasets/:name/search` (as on the wire: snake_case; the server refuses unknown members). */
export interface SearchQuery {
	/** Words to find in the dataset's text fields, all of them (BM25). Letters and digits only count: no FTS5 syntax. */
	q?: string;
	filter?: SearchFilter;
	/** By filter fields, up to three keys, ties by key; vector and hybrid queries rank by `_score` only. */
	sort?: SearchSort;
	vector?: SearchVector;
	/** Hits per page, 1 to 100 (the server's default is 10). */
	limit?: number;
	/** `next_cursor` of the previous page; send it with the same `q`, `filter`, `sort` and `vector`. */
	cursor?: string;
	/** Projection of each hit's value. */
	fields?: string[];
	/** With `q`: each hit's matching text fields, the words in `<mark></mark>`. */
	highlight?: boolean;
	/** Seconds: tightens the dataset's `ttl_seconds` for the hits' values. */
	max_staleness?: number;
	/** A stale hit is served marked stale (default) or its value withheld. */
	if_stale?: IfStale;
}

/** One hit, read through the tiers like any read. A hit whose record reads as not found is left out, so `status` is never `not_found`. */
export interface SearchHit<V extends RecordValue = RecordValue> {
	key: string;
	/** BM25 (text), cosine similarity (vector), the fused RRF score (both), or 0 when nothing ranks (filters and sorts only). */
	score: number;
	status: "present" | "stale";
	/** `null` when stale with `if_stale: "omit"`. */
	value: V | null;
	event_time: string | null;
	age_ms: number | null;
	/** With `highlight`: the text fields where the words matched, marked with `<mark></mark>`; for a string[] field, the matching items. */
	highlights?: Record<string, string | string[]>;
}

/** One page of hits, best first. */
export interface SearchResult<V extends RecordValue = RecordValue> {
	hits: SearchHit<V>[];
	/** Pass as `cursor` (with the same query) for the next page; null on the last. */
	next_cursor: string | null;
	took_ms: number;
}

/** The state of a dataset's search index (`GET /v1/datasets/:name/search`). */
export interface SearchIndexStatus {
	dataset: string;
	status: "none" | "building" | "ready" | "failed";
	/** Live documents in the index queries use. */
	docs: number;
	/** Records the latest build went through. */
	indexed: number;
	/** Records (tombstones included) when the latest build started. */
	total: number;
	started_at: string | null;
	finished_at: string | null;
	error?: string;
}

export interface HistoryOptions extends RequestOptions {
	/** Versions with `event_time >= since` (inclusive). */
	since?: TimeInput;
	/** Versions with `event_time <= until` (inclusive). */
	until?: TimeInput;
	/** Versions per page, 1 to 1,000 (the server's default is 100). */
	limit?: number;
	/** `next_cursor` of the previous page, with the same `since` and `until`. */
	cursor?: string;
}

/** One version of a record: the whole state after that event. */
export interface HistoryVersion<V extends RecordValue = RecordValue> {
	event_time: string;
	event_id: string;
	op: EventOp;
	/** The whole state after this event under the merge rules; null after a delete. */
	value: V | null;
}

/** One page of a record's versions, in `event_time` order. */
export interface HistoryResult<V extends RecordValue = RecordValue> {
	versions: HistoryVersion<V>[];
	/** Pass as `cursor` for the next page; null on the last. */
	next_cursor: string | null;
	/** Events older than the dataset's `history_days` are folded together by the retention: history begins here (RFC 3339). */
	history_begins_at: string;
}
