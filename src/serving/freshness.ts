/** The freshness contract: how old a value is, whether it is still fresh to serve, and what a read reports. */
import type { DatasetSpec } from "../registry/spec";
import type { CachedRecord } from "../storage/cached-record";

export type RecordStatus = "present" | "not_found" | "stale";

/** What to do with a value past its freshness limit: report it marked stale, or withhold it. */
export type IfStale = "serve" | "omit";

export interface RecordView {
	key: string;
	status: RecordStatus;
	value: Record<string, unknown> | null;
	event_time: string | null;
	age_ms: number | null;
}

export interface FreshnessOptions {
	/** The request's max_staleness in seconds; tightens the dataset's ttl_seconds. */
	maxStalenessS?: number;
	ifStale: IfStale;
	fields?: string[];
}

/** The freshness limit of a read, in ms: the dataset's ttl, tightened by the request's max_staleness. */
export function freshnessLimitMs(spec: DatasetSpec, maxStalenessS?: number): number {
	const ttl = spec.ttl_seconds * 1000;
	return maxStalenessS === undefined ? ttl : Math.min(ttl, maxStalenessS * 1000);
}

/**
 * How far behind D1 the copies serving a read may be: the one place this is derived. A copy may
 * lag by no more than the read's freshness limit; when every tier fails, a last-resort copy may
 * be served (marked stale) only if the request gave max_staleness and the copy is within it.
 */
export function readLimits(spec: DatasetSpec, maxStalenessS?: number): { maxLagMs: number; fallbackMaxLagMs?: number } {
	return { maxLagMs: freshnessLimitMs(spec, maxStalenessS), fallbackMaxLagMs: maxStalenessS === undefined ? undefined : maxStalenessS * 1000 };
}

/**
 * How long a client may reuse a present value: until either its age or its copy's lag behind D1
 * reaches the read's limit, and no longer than L0 keeps a copy. 0 for anything not present.
 */
export function reusableSeconds(view: RecordView, lagMs: number, limitMs: number, l0TtlS: number): number {
	if (view.status !== "present") return 0;
	const remainingMs = limitMs - Math.max(view.age_ms ?? 0, lagMs);
	return Math.max(0, Math.min(Math.floor(remainingMs / 1000), l0TtlS));
}

/**
 * Cached copy -> its event time as ISO text. Copies are never mutated and a hot one is rendered on
 * every read, so the date is formatted once per copy; entries go with their copies.
 */
const eventTimes = new WeakMap<CachedRecord, string>();

function eventTimeText(rec: CachedRecord): string {
	let text = eventTimes.get(rec);
	if (text === undefined) {
		text = new Date(rec.t).toISOString();
		eventTimes.set(rec, text);
	}
	return text;
}

/** Renders one record for a response. A tombstone or a confirmed miss is `not_found`. */
export function viewRecord(key: string, rec: CachedRecord, spec: DatasetSpec, opts: FreshnessOptions, now: number, forcedStale = false): RecordView {
	if (rec.r === 0 || rec.v === null) return { key, status: "not_found", value: null, event_time: null, age_ms: null };
	const age = Math.max(0, now - rec.t);
	const stale = forcedStale || age > freshnessLimitMs(spec, opts.maxStalenessS);
	let value: Record<string, unknown> | null = rec.v;
	if (opts.fields) {
		const projected: Record<string, unknown> = {};
		for (const f of opts.fields) projected[f] = Object.hasOwn(rec.v, f) ? rec.v[f] : null;
		value = projected;
	}
	if (stale && opts.ifStale === "omit") value = null;
	return { key, status: stale ? "stale" : "present", value, event_time: eventTimeText(rec), age_ms: age };
}
