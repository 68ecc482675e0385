/**
 * The read side of aggregates: each over the sliding window (at - window, at], at the read time or
 * an as_of. Whole tiles in between the window's edges, and the facts at the two edges straight
 * from the event log, so every result is exact (distinct within HyperLogLog's error).
 */

import type { AggregateSpec, DatasetSpec } from "../registry/spec";
import { type AggregateQuery, type LastRow, readAggregateParts, type TileRangeRow } from "../storage/aggregates";
import { compareClocks } from "../storage/record-state";
import { aggregateId, factValue } from "./facts";
import { hllEstimate, hllRegister } from "./hll";
import { parseWindow, planWindow, type WindowPlan } from "./windows";

export type AggregateValues = Record<string, unknown>;

interface Acc {
	cnt: number;
	sum: number;
	mn: number | null;
	mx: number | null;
	registers: Map<number, number>;
}

const inEdges = (plan: WindowPlan, t: number) => plan.edges.some((e) => t >= e.from && t < e.to);
const inTiles = (plan: WindowPlan, t: number) => plan.tiles.some((r) => t >= r.from && t < r.to);

/** The aggregates of `keys` at time `at`, in one round trip to D1. Keys with no facts get counts of 0 and nulls. */
export async function aggregatesAt(
	db: D1Database,
	spec: DatasetSpec,
	keys: readonly string[],
	at: number,
	now = Date.now(),
): Promise<Map<string, AggregateValues>> {
	const aggs = Object.entries(spec.aggregates ?? {});
	const out = new Map<string, AggregateValues>();
	if (!aggs.length || !keys.length) return out;
	const plans = new Map<string, WindowPlan>();
	const q: AggregateQuery = { sumRanges: [], registerRanges: [], edges: [], lastN: [] };
	const edges = new Set<string>();
	for (const [name, agg] of aggs) {
		const length = parseWindow(agg.window) as number;
		if (agg.fn === "last_n") {
			q.lastN.push({ agg: name, field: agg.of as string, after: at - length, n: agg.n ?? 1 });
			continue;
		}
		const plan = planWindow(length, at, now);
		plans.set(name, plan);
		const ranges: TileRangeRow[] = plan.tiles.map((t) => [aggregateId(name, agg), t.res, t.from, t.to]);
		(agg.fn === "distinct" ? q.registerRanges : q.sumRanges).push(...ranges);
		for (const e of plan.edges) edges.add(`${e.from}:${e.to}`);
	}
	q.edges = [...edges].map((e) => e.split(":").map(Number) as [number, number]);
	const tiles = [...plans.values()].flatMap((p) => p.tiles);
	if (tiles.length) q.tileSpan = [Math.min(...tiles.map((t) => t.from)), Math.max(...tiles.map((t) => t.to))];
	const parts = await readAggregateParts(db, spec.name, keys, q, at);

	const accs = new Map<string, Map<string, Acc>>();
	const acc = (key: string, agg: string): Acc => {
		let byAgg = accs.get(key);
		if (!byAgg) {
			byAgg = new Map();
			accs.set(key, byAgg);
		}
		let a = byAgg.get(agg);
		if (!a) {
			a = { cnt: 0, sum: 0, mn: null, mx: null, registers: new Map() };
			byAgg.set(agg, a);
		}
		return a;
	};
	const addNumber = (a: Acc, cnt: number, sum: number | null, mn: number | null, mx: number | null) => {
		a.cnt += cnt;
		// A tile's sum past the largest double comes back from D1 as null: unknown, never 0 (finish answers null).
		a.sum += sum ?? Number.NaN;
		if (mn !== null) a.mn = a.mn === null ? mn : Math.min(a.mn, mn);
		if (mx !== null) a.mx = a.mx === null ? mx : Math.max(a.mx, mx);
	};
	// Tiles name aggregates by id; results go by name.
	const names = new Map(aggs.map(([name, agg]) => [aggregateId(name, agg), name]));
	for (const s of parts.sums) addNumber(acc(s.key, names.get(s.agg) ?? s.agg), s.cnt, s.sum, s.mn, s.mx);
	for (const r of parts.registers) {
		const a = acc(r.key, names.get(r.agg) ?? r.agg);
		a.registers.set(r.idx, Math.max(a.registers.get(r.idx) ?? 0, r.rank));
	}
	/** Adds one fact from the log to aggregate `name` of its key. */
	const addFact = (key: string, name: string, agg: AggregateSpec, value: Record<string, unknown> | null) => {
		const v = factValue(agg, value);
		if (v === undefined) return;
		const a = acc(key, name);
		if (agg.fn === "distinct") {
			const { idx, rank } = hllRegister(v);
			a.registers.set(idx, Math.max(a.registers.get(idx) ?? 0, rank));
		} else if (typeof v === "number") addNumber(a, 1, v, v, v);
		else if (agg.fn === "count") addNumber(a, 1, 0, null, null);
	};
	for (const f of parts.edgeFacts) {
		const value = f.value === null ? null : (JSON.parse(f.value) as Record<string, unknown>);
		for (const [name, agg] of aggs) {
			const plan = plans.get(name);
			if (plan && inEdges(plan, f.event_time)) addFact(f.key, name, agg, value);
		}
	}
	// Facts a running backfill has not folded into the tiles of its aggregates yet (an aggregate just
	// added, or whose window moved across a day, starts from empty tiles): taken from the log until
	// it has, so the aggregate never reads as if they were not there. Only the job of an aggregate's
	// own `since` counts for it: one removed and added again has a job of its own.
	for (const f of parts.pending) {
		const value = f.value === null ? null : (JSON.parse(f.value) as Record<string, unknown>);
		const jobAggs = JSON.parse(f.aggs) as string[];
		for (const [name, agg] of aggs) {
			const plan = plans.get(name);
			if (plan && agg.since === f.before && jobAggs.includes(name) && inTiles(plan, f.event_time)) addFact(f.key, name, agg, value);
		}
	}
	// The n newest of each key's facts, by (event_time, id) as the merge orders them: the rows hold
	// every fact tied with the n-th on its time, in D1's order.
	const lastN = new Map(aggs.map(([name, agg]) => [name, agg.n ?? 1]));
	const lastRows = new Map<string, { n: number; rows: LastRow[] }>();
	for (const l of parts.last) {
		const k = `${l.key}\u0000${l.agg}`;
		const entry = lastRows.get(k) ?? { n: lastN.get(l.agg) ?? 1, rows: [] };
		entry.rows.push(l);
		lastRows.set(k, entry);
	}
	const lasts = new Map<string, unknown[]>();
	for (const [k, { n, rows }] of lastRows) {
		rows.sort((a, b) => compareClocks([b.event_time, b.event_id], [a.event_time, a.event_id]));
		lasts.set(
			k,
			rows.slice(0, n).map((l) => JSON.parse(l.v)),
		);
	}

	for (const key of keys) {
		const values: AggregateValues = {};
		for (const [name, agg] of aggs) values[name] = finish(agg, accs.get(key)?.get(name), lasts.get(`${key}\u0000${name}`));
		out.set(key, values);
	}
	return out;
}

function finish(agg: AggregateSpec, a: Acc | undefined, last: unknown[] | undefined): unknown {
	switch (agg.fn) {
		case "count":
			return a?.cnt ?? 0;
		// A sum past the largest double has no JSON number: null, as REST's JSON would write it and GraphQL's Float could not.
		case "sum":
			return a === undefined ? 0 : Number.isFinite(a.sum) ? a.sum : null;
		case "min":
			return a?.mn ?? null;
		case "max":
			return a?.mx ?? null;
		case "mean":
			return a && a.cnt > 0 && Number.isFinite(a.sum) ? a.sum / a.cnt : null;
		case "distinct":
			return a ? hllEstimate(a.registers) : 0;
		case "last_n":
			return last ?? [];
	}
}

/**
 * Puts the dataset's aggregates at `at` into the values of the views that have one (present, or
 * stale and served), beside the fields. With a projection, only the aggregates it names.
 * The views' values are the cached copies' objects: they are replaced, never changed.
 * Returns whether D1 was read (some view had a value and some aggregate was asked for).
 */
export async function attachAggregates(
	db: D1Database,
	spec: DatasetSpec,
	views: { key: string; value: Record<string, unknown> | null }[],
	at: number,
	fields?: readonly string[],
): Promise<boolean> {
	if (!spec.aggregates) return false;
	const names = Object.keys(spec.aggregates).filter((n) => !fields || fields.includes(n));
	const withValue = views.filter((v) => v.value !== null);
	if (!names.length || !withValue.length) return false;
	const values = await aggregatesAt(db, spec, [...new Set(withValue.map((v) => v.key))], at);
	for (const v of withValue) {
		const all = values.get(v.key) ?? {};
		const picked: Record<string, unknown> = {};
		for (const n of names) picked[n] = all[n];
		v.value = { ...v.value, ...picked };
	}
	return true;
}
