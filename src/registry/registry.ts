/** The dataset registry: specs in D1, cached whole in the isolate and dropped when the control version moves. */
import { and, asc, eq } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import type { ControlVersion } from "../control/version";
import { HotpathError } from "../errors";
import { datasets } from "../storage/schema";
import { type AggregateSpec, type DatasetSpec, DEFAULT_HISTORY_DAYS, incompatibilities } from "./spec";

export interface PutResult {
	spec: DatasetSpec;
	created: boolean;
	/** The spec this one replaced (undefined when created). */
	previous?: DatasetSpec;
	/** Aggregates this change added (they start counting now; older facts need a backfill). */
	addedAggregates: string[];
}

/** How often a spec update re-reads and re-checks when another update keeps landing first. */
const PUT_ATTEMPTS = 5;

export class Registry {
	private cache: Map<string, DatasetSpec> | null = null;

	constructor(
		private readonly db: DrizzleD1Database,
		private readonly control: ControlVersion,
	) {
		control.onChange(() => {
			this.cache = null;
		});
	}

	/** The spec of `name`, or undefined. Costs no I/O while the cache is current. */
	async get(name: string): Promise<DatasetSpec | undefined> {
		return (await this.all()).get(name);
	}

	/**
	 * The spec of `name` (null when there is none) if the cache holds the current registry, else
	 * undefined: then get() must load it. No await, for the hottest reads.
	 */
	cached(name: string): DatasetSpec | null | undefined {
		if (!this.cache || !this.control.isCurrent()) return undefined;
		return this.cache.get(name) ?? null;
	}

	/**
	 * The spec of `name` as D1 holds it now, bypassing this isolate's cache: for work that must not
	 * act on a registry older than itself (a backfill job recorded by a PUT this isolate's version
	 * check has not seen yet).
	 */
	async fresh(name: string): Promise<DatasetSpec | undefined> {
		const row = await this.db.select({ spec: datasets.spec }).from(datasets).where(eq(datasets.name, name)).get();
		return row ? parseSpec(row.spec) : undefined;
	}

	/** The spec of `name`, or a not_found error. */
	async require(name: string): Promise<DatasetSpec> {
		const spec = await this.get(name);
		if (!spec) throw new HotpathError("not_found", `dataset "${name}" does not exist`);
		return spec;
	}

	async all(): Promise<Map<string, DatasetSpec>> {
		await this.control.ensureCurrent();
		if (this.cache) return this.cache;
		// Each request that finds no cache loads it itself: awaiting another request's load is unsafe in workerd.
		const epoch = this.control.epoch;
		const map = await this.load();
		// A change that landed while this load ran may not be in it: use it, but do not keep it.
		if (this.control.epoch === epoch) this.cache = map;
		return map;
	}

	/**
	 * Creates or updates a spec. An incompatible change is refused with a conflict that lists every
	 * reason. The write is conditional on the spec it was checked against still being the stored
	 * one, so two concurrent updates cannot both pass the check against the same old spec: the
	 * second re-reads, and is checked against the first.
	 */
	async put(
		input: DatasetSpec,
		now = Date.now(),
		/** Whether an aggregate changed from `old` to `next` still counts in the tiles it has (the aggregates' rule, src/aggregates/facts.ts). */
		keepsTiles: (old: AggregateSpec, next: AggregateSpec) => boolean = () => true,
	): Promise<PutResult> {
		for (let attempt = 0; attempt < PUT_ATTEMPTS; attempt++) {
			const prevRow = await this.db.select().from(datasets).where(eq(datasets.name, input.name)).get();
			const prev = prevRow ? parseSpec(prevRow.spec) : undefined;
			// An aggregate keeps the time it was added; a new one starts now.
			const spec: DatasetSpec = { ...input };
			const addedAggregates: string[] = [];
			if (input.aggregates) {
				spec.aggregates = {};
				for (const [name, agg] of Object.entries(input.aggregates)) {
					// A window that moves across a day is read from other tiles (minute and hour up to a day,
					// hour and day beyond), which were never written for it: it starts again, as one added now,
					// from empty tiles, and the backfill counts the facts the log holds.
					const old = prev?.aggregates?.[name];
					const since = old && keepsTiles(old, agg) ? old.since : undefined;
					if (since === undefined) addedAggregates.push(name);
					spec.aggregates[name] = { ...agg, since: since ?? now };
				}
			}
			const json = JSON.stringify(spec);
			if (prev) {
				const reasons = incompatibilities(prev, spec);
				if (reasons.length) {
					throw new HotpathError("conflict", `incompatible change to dataset "${spec.name}": ${reasons.map((r) => r.detail).join("; ")}`, {
						errors: reasons,
					});
				}
			}
			const write = prevRow
				? this.db
						.update(datasets)
						.set({ spec: json, updatedAt: now })
						.where(and(eq(datasets.name, spec.name), eq(datasets.spec, prevRow.spec)))
						.returning({ name: datasets.name })
				: this.db
						.insert(datasets)
						.values({ name: spec.name, spec: json, createdAt: now, updatedAt: now })
						.onConflictDoNothing()
						.returning({ name: datasets.name });
			const [written] = await this.db.batch([write, this.control.bumpStatement()]);
			this.control.invalidate();
			if (written.length) return { spec, created: !prevRow, previous: prev, addedAggregates };
		}
		throw new HotpathError("conflict", `dataset "${input.name}" kept changing under concurrent updates; read it again and retry`);
	}

	private async load(): Promise<Map<string, DatasetSpec>> {
		const rows = await this.db.select({ spec: datasets.spec, createdAt: datasets.createdAt }).from(datasets).orderBy(asc(datasets.name)).all();
		const map = new Map<string, DatasetSpec>();
		const byCreation: { spec: DatasetSpec; createdAt: number }[] = [];
		for (const r of rows) {
			const spec = parseSpec(r.spec);
			map.set(spec.name, spec);
			byCreation.push({ spec, createdAt: r.createdAt });
		}
		// Stable sort: datasets created in the same millisecond stay in name order.
		creationOrders.set(
			map,
			byCreation.sort((a, b) => a.createdAt - b.createdAt).map((d) => d.spec),
		);
		return map;
	}
}

/** Per registry map that load() made: its specs in creation order (ties by name). */
const creationOrders = new WeakMap<ReadonlyMap<string, DatasetSpec>, readonly DatasetSpec[]>();

/**
 * The specs of a registry map in the order their datasets were created (a map load() did not
 * make: in its own order). What must never change when a dataset is added, such as the GraphQL
 * names that datasets settle collisions over (src/graphql/names.ts), goes by this order: a new
 * dataset comes last, so it never takes a name an older one holds.
 */
export function inCreationOrder(registry: ReadonlyMap<string, DatasetSpec>): readonly DatasetSpec[] {
	return creationOrders.get(registry) ?? [...registry.values()];
}

/** A stored spec; specs stored before a field had a default get that default. */
function parseSpec(text: string): DatasetSpec {
	const spec = JSON.parse(text) as DatasetSpec;
	spec.history_days ??= DEFAULT_HISTORY_DAYS;
	return spec;
}
