/**
 * Folds a batch of events into D1. Events for one key are coalesced into one write; each distinct
 * event id is applied at most once per key (the applied-event log); writes are revision-checked,
 * and a key another writer changed meanwhile is reloaded and merged again. One key that cannot be
 * written fails alone: its events are handed back as refused, with the reason, and the rest apply.
 */
import { aggregateVersion, maxRegisters, sumTiles, tileRowsOf } from "../aggregates/facts";
import { hasDerived, withDerivedFields } from "../registry/derived";
import type { DatasetSpec } from "../registry/spec";
import { type CachedRecord, valueJson } from "../storage/cached-record";
import { d1Answers } from "../storage/d1-failure";
import { type AppliedIdRow, appliedIdsStatement } from "../storage/event-log";
import {
	type LoggedEvent,
	type LogOnly,
	loggedId,
	parseStates,
	type StateRow,
	type StateWrite,
	type StoredState,
	statesStatement,
	writeStates,
} from "../storage/records";
import { applyEvent, type ChangeEvent, compareClocks, type RecordState } from "./merge";

/**
 * The largest a record may grow to: its value's JSON plus its field clocks, in UTF-8 bytes. D1 keeps
 * rows up to 2 MB; past this limit a patch is refused (dead-lettered with the reason) rather than
 * written, so the key stays writable and the rest of its batch applies.
 */
export const MAX_RECORD_BYTES = 1_000_000;

export interface AppliedRecord {
	dataset: string;
	key: string;
	/** D1's state of the key after the batch, as the caches hold it. */
	rec: CachedRecord;
	/** Whether this batch changed D1 (false for redeliveries and events that lost to newer ones). */
	changed: boolean;
	/** When D1 was last known to hold `rec`: the time just before the statement that wrote (or, unchanged, read) it. */
	syncedAt: number;
	/** When asked for: ids of this batch's events that show in the state, each counted on its own (see `contributing`). */
	contributed?: Set<string>;
}

/** Events of one key that were not applied, and why. */
export interface RefusedEvents {
	dataset: string;
	key: string;
	events: ChangeEvent[];
	reason: string;
}

export interface ApplyResult {
	applied: AppliedRecord[];
	refused: RefusedEvents[];
}

const MAX_ATTEMPTS = 8;
// Keys per json_each read, and (dataset, key, id) triples per applied-id check: bounds one statement's response.
const KEYS_PER_READ = 500;
const IDS_PER_CHECK = 1000;

export class ConcurrencyError extends Error {
	override name = "ConcurrencyError";
}

interface KeyGroup {
	dataset: string;
	key: string;
	events: ChangeEvent[];
}

const groupId = (dataset: string, key: string) => `${dataset}\u0000${key}`;

/**
 * Applies events and returns the resulting state of every key they touched, and the events that
 * were refused. Throws when D1 cannot be written at all (the caller retries the whole batch).
 */
export async function applyEvents(
	db: D1Database,
	events: readonly ChangeEvent[],
	specOf: (dataset: string) => DatasetSpec | undefined = () => undefined,
	now = Date.now(),
	opts: { contributions?: boolean } = {},
): Promise<ApplyResult> {
	const groups = groupDistinct(events);
	const applied: AppliedRecord[] = [];
	// Per key, from the attempt that settled it: a key retried after a conflict is folded afresh.
	const refusedByKey = new Map<string, RefusedEvents>();
	const failed: RefusedEvents[] = [];
	let todo = [...groups.values()];
	const contributedByKey = new Map<string, Set<string>>();
	// The first attempt is optimistic: ids are checked against the log by the write itself, and a
	// key whose write finds one of its ids applied comes back here with its applied ids loaded.
	let checkApplied = false;
	// Asked for contributions in a dataset with aggregates: which events each write logged (its facts).
	const logged = opts.contributions && events.some((e) => specOf(e.dataset)?.aggregates) ? new Set<string>() : undefined;
	for (let attempt = 1; todo.length; attempt++) {
		if (attempt > MAX_ATTEMPTS) throw new ConcurrencyError(`${todo.length} key(s) kept changing under concurrent writers`);
		const readAt = Date.now();
		const { stored, unreadable, appliedIds } = await loadGroups(db, todo, checkApplied);
		const writes: StateWrite[] = [];
		const logOnly: LogOnly[] = [];
		const factsOnly: { entry: AppliedRecord; events: readonly LoggedEvent[] }[] = [];
		for (const g of todo) {
			const gid = groupId(g.dataset, g.key);
			const broken = unreadable.get(gid);
			if (broken) {
				failed.push({
					dataset: g.dataset,
					key: g.key,
					events: g.events,
					reason: `the stored record cannot be read (${broken}); its events are kept, not applied`,
				});
				continue;
			}
			const prev = stored.get(gid);
			const fresh = appliedIds ? g.events.filter((e) => !appliedIds.has(`${gid}\u0000${e.id}`)) : g.events;
			const spec = specOf(g.dataset);
			const folded = fold(prev?.state ?? null, fresh, spec);
			if (folded.dropped.length) refusedByKey.set(gid, { dataset: g.dataset, key: g.key, events: folded.dropped, reason: folded.reason });
			else refusedByKey.delete(gid);
			const kept = folded.kept.map(toLogged);
			if (!folded.state) continue; // nothing applied to a key D1 does not have
			if (opts.contributions) contributedByKey.set(gid, contributing(prev?.state ?? null, folded.kept));
			// Every event is a fact for the dataset's aggregates, whether or not it changed the record.
			const facts = spec?.aggregates ? tileRowsOf(spec, g.key, kept) : null;
			const aggVersion = facts ? { aggVersion: aggregateVersion(spec) } : {};
			if (prev && folded.state === prev.state) {
				const entry: AppliedRecord = { dataset: g.dataset, key: g.key, rec: toCached(prev.state, prev.rev), changed: false, syncedAt: readAt };
				applied.push(entry);
				if (kept.length) logOnly.push({ dataset: g.dataset, key: g.key, events: kept, ...facts, ...aggVersion });
				if (logged && facts && kept.length) factsOnly.push({ entry, events: kept });
			} else {
				// A write lands only with all of its events newly logged, so its facts can be summed per tile beforehand.
				const sums = facts ? { tiles: sumTiles(facts.tiles), hll: maxRegisters(facts.hll) } : {};
				writes.push({ dataset: g.dataset, key: g.key, state: folded.state, prevRev: prev?.rev ?? null, events: kept, ...sums, ...aggVersion });
			}
		}
		const writtenAt = Date.now();
		const outcome = await writeIsolating(db, writes, logOnly, now, logged);
		// Every fact a write logged counts in its record's aggregates, whether or not it changed a field.
		const factsLogged = (dataset: string, key: string, events: readonly LoggedEvent[]) =>
			events.filter((e) => logged?.has(loggedId(dataset, key, e.id))).map((e) => e.id);
		for (const { entry, events } of factsOnly) entry.contributed = new Set(factsLogged(entry.dataset, entry.key, events));
		for (const f of outcome.failed) {
			const g = groups.get(groupId(f.dataset, f.key));
			if (!g) continue;
			refusedByKey.delete(groupId(f.dataset, f.key));
			failed.push({ dataset: f.dataset, key: f.key, events: g.events, reason: `D1 refused the write of this key: ${f.error}` });
		}
		todo = [];
		for (const [w, rev] of outcome.written) {
			if (rev == null) todo.push(groups.get(groupId(w.dataset, w.key)) as KeyGroup);
			else {
				let contributed = contributedByKey.get(groupId(w.dataset, w.key));
				if (contributed && w.aggVersion !== undefined) contributed = new Set([...contributed, ...factsLogged(w.dataset, w.key, w.events)]);
				applied.push({
					dataset: w.dataset,
					key: w.key,
					rec: toCached(w.state, rev),
					changed: true,
					syncedAt: writtenAt,
					...(contributed ? { contributed } : {}),
				});
			}
		}
		checkApplied = true;
	}
	return { applied, refused: [...refusedByKey.values(), ...failed] };
}

/**
 * Groups events by key, one event per id: an id sent twice with different times (a resend
 * without event_time gets a new receipt time) is the same event, and the earliest time is the one
 * it was first sent with.
 */
function groupDistinct(events: readonly ChangeEvent[]): Map<string, KeyGroup> {
	const groups = new Map<string, KeyGroup>();
	const byId = new Map<string, { group: KeyGroup; index: number }>();
	for (const e of events) {
		const gid = groupId(e.dataset, e.key);
		let g = groups.get(gid);
		if (!g) {
			g = { dataset: e.dataset, key: e.key, events: [] };
			groups.set(gid, g);
		}
		const eid = `${gid}\u0000${e.id}`;
		const seen = byId.get(eid);
		if (!seen) {
			byId.set(eid, { group: g, index: g.events.length });
			g.events.push(e);
		} else if (e.time < (seen.group.events[seen.index] as ChangeEvent).time) seen.group.events[seen.index] = e;
	}
	return groups;
}

/** Loads the stored state of every group's key, and, when asked, which of their ids the log holds: one round trip. */
async function loadGroups(
	db: D1Database,
	groups: readonly KeyGroup[],
	checkApplied: boolean,
): Promise<{ stored: Map<string, StoredState>; unreadable: Map<string, string>; appliedIds: Set<string> | null }> {
	const byDataset = new Map<string, string[]>();
	for (const g of groups) {
		const list = byDataset.get(g.dataset);
		if (list) list.push(g.key);
		else byDataset.set(g.dataset, [g.key]);
	}
	const stateStmts: { dataset: string; stmt: D1PreparedStatement }[] = [];
	for (const [dataset, keys] of byDataset) {
		for (let i = 0; i < keys.length; i += KEYS_PER_READ) stateStmts.push({ dataset, stmt: statesStatement(db, dataset, keys.slice(i, i + KEYS_PER_READ)) });
	}
	const idStmts: D1PreparedStatement[] = [];
	if (checkApplied) {
		const triples = groups.flatMap((g) => g.events.map((e) => [g.dataset, g.key, e.id] as const));
		for (let i = 0; i < triples.length; i += IDS_PER_CHECK) idStmts.push(appliedIdsStatement(db, triples.slice(i, i + IDS_PER_CHECK)));
	}
	const results = await db.batch([...stateStmts.map((s) => s.stmt), ...idStmts]);
	const stored = new Map<string, StoredState>();
	const unreadable = new Map<string, string>();
	stateStmts.forEach(({ dataset }, i) => {
		const parsed = parseStates((results[i]?.results ?? []) as StateRow[]);
		for (const [key, s] of parsed.states) stored.set(groupId(dataset, key), s);
		for (const [key, why] of parsed.unreadable) unreadable.set(groupId(dataset, key), why);
	});
	let appliedIds: Set<string> | null = null;
	if (checkApplied) {
		appliedIds = new Set();
		for (const res of results.slice(stateStmts.length)) {
			for (const r of res.results as AppliedIdRow[]) appliedIds.add(`${groupId(r.dataset, r.key)}\u0000${r.event_id}`);
		}
	}
	return { stored, unreadable, appliedIds };
}

const encoder = new TextEncoder();

/** A record's size as D1 stores it: the value's JSON and the field clocks, in UTF-8 bytes. */
function recordBytes(s: RecordState): number {
	const value = valueJson(s.value);
	const clocks = JSON.stringify(s.fieldClocks);
	const units = value.length + clocks.length;
	// A UTF-16 unit is at most 3 UTF-8 bytes: only a record near the limit needs an exact count.
	if (units * 3 <= MAX_RECORD_BYTES) return units;
	return encoder.encode(value).length + encoder.encode(clocks).length;
}

/**
 * Folds events into a state. If the result would pass MAX_RECORD_BYTES, folds again in clock order
 * and leaves out each event that would take the record past it: those are refused, the rest apply.
 */
function fold(
	prev: RecordState | null,
	events: readonly ChangeEvent[],
	spec?: DatasetSpec,
): { state: RecordState | null; kept: ChangeEvent[]; dropped: ChangeEvent[]; reason: string } {
	// Derived fields follow each change: an unchanged state keeps what it was stored with.
	const apply = (s: RecordState | null, e: ChangeEvent) => {
		const next = applyEvent(s, e);
		return next === s ? s : withDerivedFields(spec, next);
	};
	let state = prev;
	for (const e of events) state = applyEvent(state, e);
	if (state !== prev) state = withDerivedFields(spec, state);
	if (!state || state === prev || recordBytes(state) <= MAX_RECORD_BYTES) return { state, kept: [...events], dropped: [], reason: "" };
	state = prev;
	const kept: ChangeEvent[] = [];
	const dropped: ChangeEvent[] = [];
	let largest = 0;
	for (const e of [...events].sort((a, b) => compareClocks([a.time, a.id], [b.time, b.id]))) {
		const next = apply(state, e);
		const bytes = next && next !== state ? recordBytes(next) : 0;
		if (bytes > MAX_RECORD_BYTES) {
			dropped.push(e);
			largest = Math.max(largest, bytes);
		} else {
			state = next;
			kept.push(e);
		}
	}
	// A derived field (a concat, say) can make a small event's record large: the reason says it counts.
	const derived = spec && hasDerived(spec) ? ", its derived fields included" : "";
	return { state, kept, dropped, reason: `the record would grow to ${largest} bytes${derived}, past the limit of ${MAX_RECORD_BYTES} bytes per record` };
}

/**
 * The ids of events that show in the state folded from `prev`: applied newest first, an event that
 * changes nothing is one the others (or `prev`) override whole. So of two upserts only the newer
 * counts, a patch older than the base does not, and a patch newer than a late upsert does.
 */
function contributing(prev: RecordState | null, events: readonly ChangeEvent[]): Set<string> {
	const ids = new Set<string>();
	let state = prev;
	for (const e of [...events].sort((a, b) => compareClocks([b.time, b.id], [a.time, a.id]))) {
		const next = applyEvent(state, e);
		if (next !== state) ids.add(e.id);
		state = next;
	}
	return ids;
}

/**
 * Writes, and when D1 refuses a batch, finds the keys it refuses by halving: the other keys are
 * written, the refused ones are reported. If D1 does not answer a trivial query (before the
 * halving, and before a key is reported refused), or no part can be written at all, D1 itself is
 * failing, and the error is thrown for the caller to retry everything later.
 */
async function writeIsolating(
	db: D1Database,
	writes: StateWrite[],
	logOnly: LogOnly[],
	now: number,
	logged?: Set<string>,
): Promise<{ written: [StateWrite, number | null][]; failed: { dataset: string; key: string; error: string }[] }> {
	try {
		const revs = await writeStates(db, writes, logOnly, now, logged);
		return { written: writes.map((w, i) => [w, revs[i] ?? null]), failed: [] };
	} catch (e) {
		// D1 not answering at all is an outage, not a bad key: retry the batch rather than try each key.
		if (!(await d1Answers(db))) throw e;
		const n = writes.length + logOnly.length;
		if (n <= 1) return isolate(db, writes, logOnly, now, e, logged);
		const outcome = await isolate(db, writes, logOnly, now, e, logged);
		// Only the whole batch failing key by key says D1 is failing: a half whose keys all fail is
		// just where the refused keys are (throwing there would retry, and never apply, the rest).
		if (outcome.failed.length === n) throw e;
		return outcome;
	}
}

/** The halving under writeIsolating: each part that D1 refuses is halved again, down to single keys, which are reported. */
async function isolate(
	db: D1Database,
	writes: StateWrite[],
	logOnly: LogOnly[],
	now: number,
	e: unknown,
	logged?: Set<string>,
): Promise<{ written: [StateWrite, number | null][]; failed: { dataset: string; key: string; error: string }[] }> {
	const n = writes.length + logOnly.length;
	if (n <= 1) {
		const one = writes[0] ?? logOnly[0];
		// A key is refused only while D1 answers otherwise: one that went down meanwhile fails the batch, which is retried.
		if (!one || !(await d1Answers(db))) throw e;
		return { written: [], failed: [{ dataset: one.dataset, key: one.key, error: String((e as Error).message ?? e) }] };
	}
	// Halve the combined list of writes and log-only entries.
	const mid = Math.ceil(n / 2);
	const halves = [
		[writes.slice(0, mid), logOnly.slice(0, Math.max(0, mid - writes.length))],
		[writes.slice(mid), logOnly.slice(Math.max(0, mid - writes.length))],
	] as const;
	const written: [StateWrite, number | null][] = [];
	const failed: { dataset: string; key: string; error: string }[] = [];
	for (const [w, l] of halves) {
		try {
			const revs = await writeStates(db, w, l, now, logged);
			w.forEach((x, i) => void written.push([x, revs[i] ?? null]));
		} catch (err) {
			const part = await isolate(db, w, l, now, err, logged);
			written.push(...part.written);
			failed.push(...part.failed);
		}
	}
	return { written, failed };
}

const toLogged = (e: ChangeEvent): LoggedEvent => (e.value ? { time: e.time, id: e.id, op: e.op, value: e.value } : { time: e.time, id: e.id, op: e.op });

const toCached = (s: RecordState, rev: number): CachedRecord => ({ v: s.value, t: s.clock[0], i: s.clock[1], r: rev });
