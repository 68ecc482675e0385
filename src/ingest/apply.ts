/**
 * Folds a batch of events into D1. Events for one key are coalesced into one write; writes are
 * revision-checked, and a key another consumer changed meanwhile is reloaded and merged again.
 */
import type { CachedRecord } from "../storage/cached-record";
import { loadStates, type StateWrite, type StoredState, writeStates } from "../storage/records";
import { applyEvent, type ChangeEvent } from "./merge";

export interface AppliedRecord {
	dataset: string;
	key: string;
	/** D1's state of the key after the batch, as the caches hold it. */
	rec: CachedRecord;
	/** Whether this batch changed D1 (false for pure redeliveries). */
	changed: boolean;
}

const MAX_ATTEMPTS = 8;
// Keys per json_each read; bounds the response size of one statement.
const KEYS_PER_READ = 500;

export class ConcurrencyError extends Error {
	override name = "ConcurrencyError";
}

/** Applies events and returns the resulting state of every key they touched. */
export async function applyEvents(db: D1Database, events: ChangeEvent[]): Promise<AppliedRecord[]> {
	// dataset -> key -> events
	const groups = new Map<string, Map<string, ChangeEvent[]>>();
	for (const e of events) {
		let byKey = groups.get(e.dataset);
		if (!byKey) {
			byKey = new Map();
			groups.set(e.dataset, byKey);
		}
		const list = byKey.get(e.key);
		if (list) list.push(e);
		else byKey.set(e.key, [e]);
	}

	const out: AppliedRecord[] = [];
	let todo = [...groups].flatMap(([dataset, byKey]) => [...byKey.keys()].map((key) => ({ dataset, key })));
	for (let attempt = 1; todo.length; attempt++) {
		if (attempt > MAX_ATTEMPTS) throw new ConcurrencyError(`${todo.length} key(s) kept changing under concurrent writers`);
		const stored = await loadAll(db, todo);
		const writes: StateWrite[] = [];
		const unchanged: AppliedRecord[] = [];
		for (const { dataset, key } of todo) {
			const prev = stored.get(dataset)?.get(key);
			let state = prev?.state ?? null;
			for (const e of groups.get(dataset)?.get(key) ?? []) state = applyEvent(state, e);
			if (!state) continue; // only possible for an empty patch on a missing key
			if (prev && state === prev.state) unchanged.push({ dataset, key, rec: toCached(state, prev.rev), changed: false });
			else writes.push({ dataset, key, state, prevRev: prev?.rev ?? null });
		}
		out.push(...unchanged);
		const revs = await writeStates(db, writes);
		todo = [];
		writes.forEach((w, i) => {
			const rev = revs[i];
			if (rev == null) todo.push({ dataset: w.dataset, key: w.key });
			else out.push({ dataset: w.dataset, key: w.key, rec: toCached(w.state, rev), changed: true });
		});
	}
	return out;
}

async function loadAll(db: D1Database, refs: { dataset: string; key: string }[]): Promise<Map<string, Map<string, StoredState>>> {
	const byDataset = new Map<string, string[]>();
	for (const r of refs) {
		const list = byDataset.get(r.dataset);
		if (list) list.push(r.key);
		else byDataset.set(r.dataset, [r.key]);
	}
	const out = new Map<string, Map<string, StoredState>>();
	await Promise.all(
		[...byDataset].map(async ([dataset, keys]) => {
			const merged = new Map<string, StoredState>();
			for (let i = 0; i < keys.length; i += KEYS_PER_READ) {
				for (const [k, v] of await loadStates(db, dataset, keys.slice(i, i + KEYS_PER_READ))) merged.set(k, v);
			}
			out.set(dataset, merged);
		}),
	);
	return out;
}

const toCached = (s: { value: Record<string, unknown> | null; clock: readonly [number, string] }, rev: number): CachedRecord => ({
	v: s.value,
	t: s.clock[0],
	i: s.clock[1],
	r: rev,
});
