/** A record's versions: the whole state after each applied event, in event_time order, a page at a time. */
import { compareClocks } from "../ingest/merge";
import { withDerivedFields } from "../registry/derived";
import type { DatasetSpec } from "../registry/spec";
import { badCursor, decodeCursor, encodeCursor } from "../serving/cursor";
import { historyKey, historyOfKeys, type LogEntry } from "../storage/event-log";
import { statesAfterEach } from "./fold";
import { historyStart } from "./retention";

export interface Version {
	event_time: string;
	event_id: string;
	op: "upsert" | "patch" | "delete";
	/** The whole state after this event; null when it is a tombstone. */
	value: Record<string, unknown> | null;
}

export interface VersionsPage {
	versions: Version[];
	/** Where the next page starts (after this event), or null when this is the last. */
	next: { time: number; id: string } | null;
	/** Events before this may have been folded together by the retention. */
	historyBeginsAt: number;
}

/**
 * The versions of one key with `since` <= event_time <= `until`, after `after` (exclusive), at most
 * `limit`. Every state is folded from the key's base and all its earlier events, so a late event
 * shows at its place in time and the states after it include it.
 */
export async function keyVersions(
	db: D1Database,
	spec: DatasetSpec,
	key: string,
	q: { since?: number; until: number; limit: number; after?: { time: number; id: string } },
	now = Date.now(),
): Promise<VersionsPage> {
	const h = (await historyOfKeys(db, [{ dataset: spec.name, key }], q.until)).get(historyKey(spec.name, key));
	const versions: Version[] = [];
	let next: VersionsPage["next"] = null;
	if (h) {
		// The merge rules' order, ids compared as JS strings (UTF-16 code units) as the cursor below
		// compares them: D1 sorts ids by UTF-8 bytes, which differs once an id holds a character
		// beyond U+FFFF, and would list states out of the merge's order and page past versions.
		const entries = [...h.entries].sort(byClock);
		for (const { entry, state } of statesAfterEach(spec.name, key, h.base, entries)) {
			// A retained event no later than what the base holds (a late event, or one kept after
			// history_days was raised) would show a state with the base's later events in it: the log
			// cannot tell the state after it, so it is not listed (history_begins_at says from where).
			if (h.baseThrough !== undefined && entry.time <= h.baseThrough) continue;
			if (q.since !== undefined && entry.time < q.since) continue;
			if (q.after && (entry.time < q.after.time || (entry.time === q.after.time && entry.id <= q.after.id))) continue;
			if (versions.length === q.limit) {
				const last = versions[versions.length - 1] as Version;
				next = { time: Date.parse(last.event_time), id: last.event_id };
				break;
			}
			// Derived fields as the spec computes them now, as the record's own (a later write) would hold them.
			const value = withDerivedFields(spec, state)?.value ?? null;
			versions.push({ event_time: new Date(entry.time).toISOString(), event_id: entry.id, op: entry.op, value });
		}
	}
	const foldedThrough = h?.baseThrough === undefined ? Number.NEGATIVE_INFINITY : h.baseThrough + 1;
	return { versions, next, historyBeginsAt: Math.max(historyStart(spec, now), foldedThrough) };
}

const byClock = (a: LogEntry, b: LogEntry) => compareClocks([a.time, a.id], [b.time, b.id]);

/** Versions per page. */
export const MAX_VERSIONS = 1000;
export const DEFAULT_VERSIONS = 100;

/** The cursor of the page after the version at (time, id). */
export const pageCursor = (c: { time: number; id: string }) => encodeCursor(JSON.stringify([c.time, c.id]));
/** Where a versions cursor says to start; a bad_request for anything else. */
export function parsePageCursor(raw: string): { time: number; id: string } {
	let parsed: unknown;
	try {
		parsed = JSON.parse(decodeCursor(raw));
	} catch {
		throw badCursor();
	}
	if (Array.isArray(parsed) && typeof parsed[0] === "number" && typeof parsed[1] === "string") return { time: parsed[0], id: parsed[1] };
	throw badCursor();
}
