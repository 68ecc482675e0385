/**
 * Shared helpers of the worker tests: calling the worker over HTTP, admin fixtures (datasets,
 * keys), direct queue-handler runs, D1/KV inspection, bounded polling and problem+json checks.
 */
import { createExecutionContext, createMessageBatch, getQueueResult, type MessageBatchMessage, type QueueResult } from "cloudflare:test";
import { exports, env as rawEnv } from "cloudflare:workers";
import { expect } from "vitest";
import type { Env } from "../../src/env";
import worker from "../../src/index";
import type { Problem } from "../../src/routes/problem";

/** The bootstrap admin key set in vitest.config.ts. */
export const ADMIN_KEY = "test-admin-key";
export const BASE = "http://hotpath.test";
export const EVENTS_QUEUE = "hotpath-events";
export const DLQ = "hotpath-events-dlq";

/** The worker's bindings as the tests see them (the generated Cloudflare.Env is empty in this project). */
export const env = rawEnv as unknown as Env;

const mainWorker = (exports as unknown as { default: Fetcher }).default;

let counter = 0;
const runId = Math.random().toString(36).slice(2, 7);

/**
 * A dataset (or key, or id) name no other test uses, valid as a dataset name
 * (`^[a-z][a-z0-9_]{0,62}$`): module state and storage outlive a test, so names never repeat.
 */
export function uniqueName(prefix = "ds"): string {
	return `${prefix}_${runId}_${Date.now().toString(36)}_${counter++}`;
}

export interface CallOptions {
	/** Bearer key; the admin key by default, `null` for no Authorization header. */
	key?: string | null;
	/** A JSON body (serialised here). */
	json?: unknown;
	/** A raw body, sent as is. */
	body?: BodyInit;
	headers?: Record<string, string>;
}

/** Calls the worker's fetch handler, as a client would over HTTP. */
export function call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
	const headers: Record<string, string> = {};
	const key = opts.key === undefined ? ADMIN_KEY : opts.key;
	if (key !== null) headers.authorization = `Bearer ${key}`;
	let body: BodyInit | undefined = opts.body;
	if (opts.json !== undefined) {
		body = JSON.stringify(opts.json);
		headers["content-type"] = "application/json";
	}
	Object.assign(headers, opts.headers);
	return mainWorker.fetch(`${BASE}${path}`, { method, headers, body });
}

/**
 * Asserts an RFC 9457 problem: the status, `application/problem+json`, and
 * `{type, title, status, detail}` with a non-empty detail. Returns the body for further checks.
 */
export async function expectProblem(res: Response, status: number): Promise<Problem> {
	const text = await res.text();
	expect(res.status, `expected a ${status} problem, got ${res.status}: ${text.slice(0, 500)}`).toBe(status);
	expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
	const body = JSON.parse(text) as Problem;
	expect(body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
	expect(body.type).toMatch(/^https?:\/\/\S+$/);
	expect(body.title.length).toBeGreaterThan(0);
	expect(body.detail.length).toBeGreaterThan(0);
	if (body.errors !== undefined) {
		expect(Array.isArray(body.errors)).toBe(true);
		for (const e of body.errors) expect(e).toEqual({ pointer: expect.any(String), detail: expect.any(String) });
	}
	return body;
}

export type { Problem };

/** Reads a JSON body after checking the status, with the body in the failure message. */
export async function expectJson<T = Record<string, unknown>>(res: Response, status: number): Promise<T> {
	const text = await res.text();
	expect(res.status, `expected ${status}, got ${res.status}: ${text.slice(0, 500)}`).toBe(status);
	expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
	return JSON.parse(text) as T;
}

/**
 * Polls `fn` until it returns something other than undefined, at most `timeoutMs`.
 * The real local queue delivers within about a second; the bound keeps a broken consumer from hanging the run.
 */
export async function eventually<T>(fn: () => Promise<T | undefined>, { timeoutMs = 10_000, intervalMs = 100, what = "condition" } = {}): Promise<T> {
	const end = Date.now() + timeoutMs;
	let lastError: unknown;
	for (;;) {
		try {
			const v = await fn();
			if (v !== undefined) return v;
		} catch (e) {
			lastError = e;
		}
		if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
		await sleep(intervalMs);
	}
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Asserts that `fn` keeps returning false for `ms`: for checking that something (a refused event,
 * a wrongly queued message) never lands. The local queue delivers within about a second, so a
 * window of a few seconds would see it.
 */
export async function staysFalse(fn: () => Promise<boolean>, ms = 3000, what = "condition"): Promise<void> {
	const end = Date.now() + ms;
	while (Date.now() < end) {
		if (await fn()) throw new Error(`${what} became true`);
		await sleep(100);
	}
}

// ---------------------------------------------------------------- fixtures

export type FieldDef = string | { type: string; dim?: number; derive?: string };
export interface SpecInput {
	key: string;
	fields: Record<string, FieldDef>;
	ttl_seconds?: number;
	name?: string;
	description?: string;
	ingest?: Record<string, unknown>;
	search?: Record<string, unknown>;
}

/** A typical spec: entity key user_id, one field of every type. */
export const userSpec = (ttl_seconds = 3600): SpecInput => ({
	key: "user_id",
	fields: { age: "int", name: "string", score: "float", active: "bool", meta: "json", tags: "string[]", weights: "float[]", emb: { type: "vector", dim: 3 } },
	ttl_seconds,
});

/** PUTs a dataset with the admin key and asserts it was created. Returns its name. */
export async function createDataset(spec: SpecInput = userSpec(), name = uniqueName()): Promise<string> {
	const res = await call("PUT", `/v1/datasets/${name}`, { json: spec });
	await expectJson(res, 201);
	return name;
}

export type Scope = "read" | "write" | "admin";

export interface CreatedKey {
	id: string;
	key: string;
	scopes: Scope[];
	datasets: string[] | null;
}

/** Creates an API key through POST /v1/keys (with the admin key). */
export async function createKey(scopes: Scope[], datasets?: string[]): Promise<CreatedKey> {
	const res = await call("POST", "/v1/keys", { json: { name: uniqueName("key"), scopes, ...(datasets ? { datasets } : {}) } });
	const body = await expectJson<CreatedKey>(res, 201);
	expect(body.key).toMatch(/^\S+$/);
	expect(body.id).toEqual(expect.any(String));
	return body;
}

export async function revokeKey(id: string): Promise<void> {
	const res = await call("DELETE", `/v1/keys/${encodeURIComponent(id)}`);
	expect(res.status).toBe(204);
}

export interface EventInput {
	id?: string;
	dataset: string;
	key?: string | number;
	op: string;
	value?: unknown;
	event_time?: string | number;
}

export interface IngestResult {
	accepted: number;
	rejected: { index: number; error: string }[];
}

/** POSTs events as a JSON array and returns the 202 body. */
export async function postEvents(events: unknown[], key: string = ADMIN_KEY): Promise<IngestResult> {
	const res = await call("POST", "/v1/events", { json: events, key });
	return expectJson<IngestResult>(res, 202);
}

export interface RecordBody {
	dataset: string;
	key: string;
	status: "present" | "stale" | "not_found";
	value: Record<string, unknown> | null;
	event_time: string | null;
	age_ms: number | null;
}

export const recordPath = (dataset: string, key: string, query = "") => `/v1/datasets/${dataset}/records/${encodeURIComponent(key)}${query ? `?${query}` : ""}`;

/** GET of one record. */
export const getRecord = (dataset: string, key: string, query = "", opts: CallOptions = {}) => call("GET", recordPath(dataset, key, query), opts);

/** Polls the record endpoint until it answers 200 and `accept` holds; returns the body. */
export function waitForRecord(dataset: string, key: string, accept: (b: RecordBody) => boolean = () => true, timeoutMs = 15_000): Promise<RecordBody> {
	return eventually(
		async () => {
			const res = await getRecord(dataset, key);
			if (res.status !== 200) {
				await res.body?.cancel();
				return undefined;
			}
			const body = (await res.json()) as RecordBody;
			return accept(body) ? body : undefined;
		},
		{ timeoutMs, what: `record ${dataset}/${key}` },
	);
}

// ---------------------------------------------------------------- storage

export interface RecordRow {
	dataset: string;
	key: string;
	value: string | null;
	base_time: number | null;
	base_id: string | null;
	base_deleted: number;
	field_clocks: string;
	event_time: number;
	event_id: string;
	rev: number;
	updated_at: number;
}

/** The D1 row of a record, straight from the source of truth. */
export function d1Record(dataset: string, key: string): Promise<RecordRow | null> {
	return env.DB.prepare("SELECT * FROM records WHERE dataset = ? AND key = ?").bind(dataset, key).first<RecordRow>();
}

export async function d1Count(dataset: string): Promise<number> {
	const row = await env.DB.prepare("SELECT count(*) AS n FROM records WHERE dataset = ?").bind(dataset).first<{ n: number }>();
	return row?.n ?? 0;
}

/** Polls D1 until the row exists and `accept` holds. */
export function waitForD1(dataset: string, key: string, accept: (r: RecordRow) => boolean = () => true, timeoutMs = 15_000): Promise<RecordRow> {
	return eventually(
		async () => {
			const row = await d1Record(dataset, key);
			return row && accept(row) ? row : undefined;
		},
		{ timeoutMs, what: `D1 row ${dataset}/${key}` },
	);
}

/** Writes a record straight into D1, as if the consumer had applied one upsert. */
export async function seedD1(dataset: string, key: string, value: Record<string, unknown> | null, time = Date.now(), rev = 1): Promise<void> {
	await env.DB.prepare(
		"INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at) VALUES (?1, ?2, ?3, ?4, 'seed', ?5, '{}', ?4, 'seed', ?6, ?4)",
	)
		.bind(dataset, key, value === null ? null : JSON.stringify(value), time, value === null ? 1 : 0, rev)
		.run();
}

export interface KvCopy {
	v: Record<string, unknown> | null;
	t: number;
	i: string;
	r: number;
}

/**
 * Puts D1's current copy of a key in KV, as a read fill does (the only way production gets a key
 * into KV besides the consumer's own write-through): the consumer then refreshes it on change.
 * The key must exist in D1.
 */
export async function holdInKv(dataset: string, key: string): Promise<void> {
	const row = await d1Record(dataset, key);
	if (!row) throw new Error(`holdInKv: ${dataset}/${key} is not in D1 yet; write it first`);
	const copy: KvCopy = { v: row.value === null ? null : JSON.parse(row.value), t: row.event_time, i: row.event_id, r: row.rev };
	await env.RECORDS_KV.put(`r:${dataset}:${key}`, JSON.stringify({ r: copy.r, t: copy.t, i: copy.i, v: copy.v }), { expirationTtl: 60 });
}

/** The KV copy of a record, parsed, or null. */
export async function kvRecord(dataset: string, key: string): Promise<KvCopy | null> {
	const s = await env.RECORDS_KV.get(`r:${dataset}:${key}`, "text");
	return s === null ? null : (JSON.parse(s) as KvCopy);
}

export interface DeadLetterRow {
	id: number;
	queue: string;
	message_id: string;
	body: string;
	error: string | null;
	attempts: number;
	created_at: number;
	replayed_at: number | null;
}

export function deadLetterByMessageId(messageId: string): Promise<DeadLetterRow | null> {
	return env.DB.prepare("SELECT * FROM dead_letters WHERE message_id = ?").bind(messageId).first<DeadLetterRow>();
}

// ---------------------------------------------------------------- queue handler

type QueueHandler = (batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) => Promise<void>;

/**
 * Runs the worker's queue() handler on a batch built with createMessageBatch, as the runtime
 * would deliver it, and returns what the handler acked and retried.
 */
export async function runQueue(queue: string, messages: MessageBatchMessage[]): Promise<QueueResult> {
	const batch = createMessageBatch(queue, messages);
	const ctx = createExecutionContext();
	await (worker.queue as unknown as QueueHandler)(batch, env, ctx);
	return getQueueResult(batch, ctx);
}

/** A queue message with a unique id. */
export function message(body: unknown, attempts = 1): MessageBatchMessage {
	return { id: uniqueName("msg"), timestamp: new Date(), attempts, body };
}

/** An events message body as the producer writes it: `{v: 1, events}`, each event with id and epoch-ms time. */
export interface QueueEvent {
	id: string;
	dataset: string;
	key: string;
	op: "upsert" | "patch" | "delete";
	value?: Record<string, unknown>;
	time: number;
}

export const eventsBody = (events: QueueEvent[]) => ({ v: 1, events });

/** Applies events through the real consumer (one message) and asserts they were acked. */
export async function applyDirect(events: QueueEvent[]): Promise<void> {
	const msg = message(eventsBody(events));
	const result = await runQueue(EVENTS_QUEUE, [msg]);
	expect(result.retryMessages).toEqual([]);
	expect(result.explicitAcks).toContain(msg.id);
}

/** Lets background work scheduled with waitUntil settle (fills of the upper tiers). */
export const settle = () => sleep(50);

/** The real queue, with the parsed body of every message sent through `sendBatch` noted in `sent`. */
export function recordingQueue<T = unknown>(queue: Queue<unknown>): { queue: Queue<unknown>; sent: T[] } {
	const sent: T[] = [];
	const recording = new Proxy(queue, {
		get(target, prop) {
			if (prop === "sendBatch")
				return (msgs: { body: unknown }[], opts?: QueueSendBatchOptions) => {
					for (const m of msgs) sent.push(JSON.parse(String(m.body)) as T);
					return target.sendBatch(msgs as MessageSendRequest[], opts);
				};
			const v = Reflect.get(target, prop);
			return typeof v === "function" ? v.bind(target) : v;
		},
	});
	return { queue: recording, sent };
}

/** A D1 binding that counts the statements it prepares that `matches` (`queries`; reset it by assigning 0). */
export function countingStatements(db: D1Database, matches: (sql: string) => boolean): { db: D1Database; queries: number } {
	const counted = { db, queries: 0 };
	counted.db = new Proxy(db, {
		get(target, prop) {
			const v = Reflect.get(target, prop);
			if (prop === "prepare") {
				return (sql: string) => {
					if (matches(sql)) counted.queries++;
					return v.call(target, sql);
				};
			}
			return typeof v === "function" ? v.bind(target) : v;
		},
	});
	return counted;
}

/**
 * D1 that adds up D1's own `meta.rows_read` of every statement whose SQL `matches` (run alone or in
 * a batch), what D1 bills: how much work a query does, without timing it. `first()` runs as
 * `all()`, which reports it.
 */
export function rowsReadOf(db: D1Database, matches: (sql: string) => boolean = () => true): { db: D1Database; rowsRead: () => number } {
	let total = 0;
	const sqlOf = new WeakMap<D1PreparedStatement, string>();
	const rawOf = new WeakMap<D1PreparedStatement, D1PreparedStatement>();
	const count = (sql: string | undefined, meta: { rows_read?: number }) => {
		if (sql !== undefined && matches(sql)) total += meta.rows_read ?? 0;
	};
	const wrap = (stmt: D1PreparedStatement, sql: string): D1PreparedStatement => {
		const proxy = new Proxy(stmt, {
			get(target, prop) {
				if (prop === "bind") return (...args: unknown[]) => wrap(target.bind(...args), sql);
				if (prop === "all" || prop === "run")
					return async () => {
						const res = await target.all();
						count(sql, res.meta);
						return res;
					};
				if (prop === "first")
					return async (column?: string) => {
						const res = await target.all<Record<string, unknown>>();
						count(sql, res.meta);
						const row = res.results[0] ?? null;
						return column === undefined ? row : (row?.[column] ?? null);
					};
				const v = Reflect.get(target, prop);
				return typeof v === "function" ? v.bind(target) : v;
			},
		});
		sqlOf.set(proxy, sql);
		rawOf.set(proxy, stmt);
		return proxy;
	};
	const measured = new Proxy(db, {
		get(target, prop) {
			if (prop === "prepare") return (sql: string) => wrap(target.prepare(sql), sql);
			if (prop === "batch")
				return async (stmts: D1PreparedStatement[]) => {
					const results = await target.batch(stmts.map((s) => rawOf.get(s) ?? s));
					for (const [i, r] of results.entries()) count(sqlOf.get(stmts[i] as D1PreparedStatement), r.meta);
					return results;
				};
			const v = Reflect.get(target, prop);
			return typeof v === "function" ? v.bind(target) : v;
		},
	});
	return { db: measured, rowsRead: () => total };
}

/** Statements that read or write the API key table. */
export const onKeyTable = (sql: string) => sql.includes('"api_keys"');

/**
 * A binding (and every object its methods return) whose promised results never come while
 * `hanging()` holds: a query lost with its request, as workerd leaves one it cancelled.
 */
export function hangable<T extends object>(o: T, hanging: () => boolean): T {
	return new Proxy(o, {
		get(target, prop) {
			const v = Reflect.get(target, prop);
			if (typeof v !== "function") return v;
			return (...args: unknown[]) => {
				const out = v.apply(target, args);
				if (out instanceof Promise) return hanging() ? new Promise(() => {}) : out;
				return out && typeof out === "object" ? hangable(out, hanging) : out;
			};
		},
	});
}
