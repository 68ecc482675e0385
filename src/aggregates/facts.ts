/**
 * The write side of aggregates: every upsert or patch posted to a dataset with aggregates is a
 * fact, and goes into a tile of each resolution its aggregates' windows read (minute and hour
 * tiles for windows up to a day, hour and day tiles beyond). last_n reads the log itself.
 */
import type { AggregateSpec, DatasetSpec } from "../registry/spec";
import type { HllRow, RegisterMax, TileRow, TileSum } from "../storage/aggregates";
import type { LoggedEvent } from "../storage/records";
import { hllRegister } from "./hll";
import { DAY, HOUR, MINUTE, parseWindow, tileStart } from "./windows";

/**
 * The id of an aggregate in its tiles: its name and when it was added, so one removed and added
 * again under the same name starts from empty tiles.
 */
export const aggregateId = (name: string, agg: AggregateSpec): string => `${name}:${agg.since ?? 0}`;

/**
 * What a writer records on the facts it logs: the newest aggregate it counted them into. A backfill
 * of an aggregate added later counts exactly the facts logged by writers that did not know it yet
 * (a consumer whose registry was a moment old), so every fact is in the tiles once.
 */
export const aggregateVersion = (spec: DatasetSpec | undefined): number => Math.max(0, ...Object.values(spec?.aggregates ?? {}).map((a) => a.since ?? 0));

/** The resolutions a window is read from. */
export const resolutionsOf = (agg: AggregateSpec): readonly number[] => ((parseWindow(agg.window) ?? DAY) <= DAY ? [MINUTE, HOUR] : [HOUR, DAY]);

/** Whether two forms of an aggregate fold facts into the same resolutions of tiles, so the changed one keeps counting in them. */
export const sameTiles = (a: AggregateSpec, b: AggregateSpec): boolean => resolutionsOf(a).join() === resolutionsOf(b).join();

/** The value a fact brings to an aggregate, or undefined when it brings none (it lacks the field). */
export function factValue(agg: AggregateSpec, value: Record<string, unknown> | null | undefined): unknown {
	if (!agg.of) return null;
	const v = value && Object.hasOwn(value, agg.of) ? value[agg.of] : undefined;
	return v === undefined || v === null ? undefined : v;
}

/** What the events of one key add to the tiles of the spec's aggregates (a backfill passes a spec with just the new ones). */
export function tileRowsOf(spec: DatasetSpec, key: string, events: readonly LoggedEvent[]): { tiles: TileRow[]; hll: HllRow[] } {
	const tiles: TileRow[] = [];
	const hll: HllRow[] = [];
	const aggs = Object.entries(spec.aggregates ?? {});
	if (!aggs.length) return { tiles, hll };
	for (const e of events) {
		if (e.op === "delete") continue;
		for (const [name, agg] of aggs) {
			if (agg.fn === "last_n") continue;
			const v = factValue(agg, e.value);
			if (v === undefined) continue;
			for (const res of resolutionsOf(agg)) {
				const start = tileStart(e.time, res);
				if (agg.fn === "distinct") {
					const { idx, rank } = hllRegister(v);
					hll.push([spec.name, key, e.id, aggregateId(name, agg), res, start, idx, rank]);
				} else tiles.push([spec.name, key, e.id, aggregateId(name, agg), res, start, typeof v === "number" ? v : null]);
			}
		}
	}
	return { tiles, hll };
}

/** Rows of single facts summed per tile (count, sum, min, max), for a write that logs all of those facts. */
export function sumTiles(rows: readonly TileRow[]): TileSum[] {
	const sums = new Map<string, TileSum>();
	for (const [dataset, key, , agg, res, start, v] of rows) {
		const id = `${dataset}\u0000${key}\u0000${agg}\u0000${res}\u0000${start}`;
		const t = sums.get(id);
		if (!t) sums.set(id, [dataset, key, agg, res, start, 1, v ?? 0, v, v]);
		else {
			t[5]++;
			if (v === null) continue;
			t[6] += v;
			t[7] = t[7] === null ? v : Math.min(t[7], v);
			t[8] = t[8] === null ? v : Math.max(t[8], v);
		}
	}
	return [...sums.values()];
}

/** Register rows of single facts reduced to each register's highest rank, for a write that logs all of those facts. */
export function maxRegisters(rows: readonly HllRow[]): RegisterMax[] {
	const regs = new Map<string, RegisterMax>();
	for (const [dataset, key, , agg, res, start, idx, rank] of rows) {
		const id = `${dataset}\u0000${key}\u0000${agg}\u0000${res}\u0000${start}\u0000${idx}`;
		const r = regs.get(id);
		if (!r) regs.set(id, [dataset, key, agg, res, start, idx, rank]);
		else if (rank > r[6]) r[6] = rank;
	}
	return [...regs.values()];
}
