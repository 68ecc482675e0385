/**
 * Point-in-time reads: the state that all events with event_time <= as_of produce under the merge
 * rules, late arrivals included, computed from the event log for many keys per statement. Never
 * from a cache tier: caches hold only current values.
 */
import { HotpathError, itemsDetail } from "../errors";
import { withDerivedFields } from "../registry/derived";
import type { DatasetSpec } from "../registry/spec";
import { type FreshnessOptions, type RecordView, viewRecord } from "../serving/freshness";
import type { LookupRequest } from "../serving/lookup";
import { NOT_FOUND } from "../serving/tier";
import type { CachedRecord } from "../storage/cached-record";
import { foldInputsAsOf } from "../storage/event-log";
import { foldEntries } from "./fold";
import { historyStart } from "./retention";

/** (key, as_of) pairs per statement of an as-of read. */
const PAIRS_PER_READ = 200;

/** Refuses an as_of before where a dataset's history begins, saying where that is. */
export function assertWithinHistory(spec: DatasetSpec, asOfMs: number, now = Date.now()): void {
	const start = historyStart(spec, now);
	if (asOfMs < start) {
		// The item says it all too: a lookup reports items only, and may name several datasets at one pointer.
		const why = `as_of ${new Date(asOfMs).toISOString()} is before the history of dataset "${spec.name}" begins: ${new Date(start).toISOString()} (history_days = ${spec.history_days})`;
		throw new HotpathError("bad_request", why, { errors: [{ pointer: "as_of", detail: why }] });
	}
}

const pairId = (key: string, at: number) => `${at}\u0000${key}`;

/**
 * The state of each (key, time) pair of one dataset, keyed by pairId, in one statement per
 * PAIRS_PER_READ distinct pairs whatever their times: a point-in-time join (a time per row) costs
 * what a read of as many keys at one time does. A pair with no history then is a not-found copy.
 * `folded` holds, by pairId, the pairs the log can no longer answer: the key's base (what the
 * retention folded) holds an event after the pair's time, because history_days was raised after
 * that prune. It gives where the key's history begins.
 */
async function statesAtTimes(
	db: D1Database,
	spec: DatasetSpec,
	pairs: readonly (readonly [key: string, at: number])[],
): Promise<{ states: Map<string, CachedRecord>; folded: Map<string, number> }> {
	const dataset = spec.name;
	const states = new Map<string, CachedRecord>();
	const folded = new Map<string, number>();
	const unique = [...new Map(pairs.map((p) => [pairId(p[0], p[1]), p])).values()];
	for (let i = 0; i < unique.length; i += PAIRS_PER_READ) {
		const slice = unique.slice(i, i + PAIRS_PER_READ);
		const inputs = await foldInputsAsOf(db, dataset, slice);
		slice.forEach(([key, at], j) => {
			const h = inputs[j];
			if (h?.baseThrough !== undefined && h.baseThrough > at) {
				folded.set(pairId(key, at), h.baseThrough);
				return;
			}
			const state = h ? withDerivedFields(spec, foldEntries(dataset, key, h.base, h.entries)) : null;
			// The revision is not known for a past state; 1 stands for "a record" (0 is a known miss).
			states.set(pairId(key, at), state ? { v: state.value, t: state.clock[0], i: state.clock[1], r: 1 } : NOT_FOUND);
		});
	}
	return { states, folded };
}

/**
 * Renders as-of reads: age and staleness are counted at `as_of` (how old the value was then).
 * Throws bad_request when as_of is before a dataset's history.
 */
export async function lookupAsOf(db: D1Database, req: LookupRequest, asOfMs: number, opts: Omit<FreshnessOptions, "fields">): Promise<RecordView[]> {
	const [views] = await lookupsAsOf(db, [{ req, asOf: asOfMs }], opts);
	return views ?? [];
}

/**
 * Renders the as-of reads of many requests, each at its own time (a lookup's requests), reading
 * the log once per dataset for all of them. Views per request, in the order given.
 * Throws when the log cannot answer a key at its time (see statesAtTimes): a bad_request at the
 * query parameter `as_of`, or, when the reads say where their as_of came from (`pointer`, in a
 * lookup's body), a validation_failed naming each read's pointer and each key's own history start.
 */
export async function lookupsAsOf(
	db: D1Database,
	reads: readonly { req: LookupRequest; asOf: number; pointer?: string }[],
	opts: Omit<FreshnessOptions, "fields">,
): Promise<RecordView[][]> {
	const byDataset = new Map<string, { spec: DatasetSpec; pairs: (readonly [string, number])[] }>();
	for (const { req, asOf } of reads) {
		assertWithinHistory(req.spec, asOf);
		const entry = byDataset.get(req.spec.name) ?? { spec: req.spec, pairs: [] };
		for (const key of req.keys) entry.pairs.push([key, asOf]);
		byDataset.set(req.spec.name, entry);
	}
	const read = new Map(await Promise.all([...byDataset].map(async ([dataset, { spec, pairs }]) => [dataset, await statesAtTimes(db, spec, pairs)] as const)));
	refuseFolded(reads, read);
	return reads.map(({ req, asOf }) =>
		req.keys.map((key) =>
			viewRecord(key, read.get(req.spec.name)?.states.get(pairId(key, asOf)) ?? NOT_FOUND, req.spec, { ...opts, fields: req.fields }, asOf),
		),
	);
}

/** Items per refusal: a lookup of 1,000 keys, all before their history, names the first ones. */
const MAX_FOLDED_ITEMS = 100;

function refuseFolded(reads: readonly { req: LookupRequest; asOf: number; pointer?: string }[], read: Map<string, { folded: Map<string, number> }>): void {
	const items = new Map<string, { pointer: string; detail: string }>();
	for (const { req, asOf, pointer } of reads) {
		const folded = read.get(req.spec.name)?.folded;
		if (!folded?.size) continue;
		for (const key of req.keys) {
			const through = folded.get(pairId(key, asOf));
			if (through === undefined) continue;
			const detail = `as_of ${new Date(asOf).toISOString()} is before the history of key ${JSON.stringify(key)} in dataset "${req.spec.name}" begins: ${new Date(through).toISOString()} (events up to then were folded together when history_days was shorter)`;
			const item = { pointer: pointer ?? "as_of", detail };
			items.set(`${item.pointer}\u0000${detail}`, item);
		}
	}
	if (!items.size) return;
	const errors = [...items.values()].slice(0, MAX_FOLDED_ITEMS);
	const inBody = reads.some((r) => r.pointer !== undefined);
	const first = errors[0] as { pointer: string; detail: string };
	const detail = errors.length === 1 && !inBody ? first.detail : itemsDetail(errors);
	throw new HotpathError(inBody ? "validation_failed" : "bad_request", detail, { errors });
}
