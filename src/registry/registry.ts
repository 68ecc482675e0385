/** The dataset registry: specs in D1, cached whole in the isolate and dropped when the control version moves. */
import { asc, eq } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import type { ControlVersion } from "../control/version";
import { ApiError } from "../errors";
import { datasets } from "../storage/schema";
import { type DatasetSpec, incompatibilities } from "./spec";

export interface PutResult {
	spec: DatasetSpec;
	created: boolean;
}

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

	/** The spec of `name`, or a 404 problem. */
	async require(name: string): Promise<DatasetSpec> {
		const spec = await this.get(name);
		if (!spec) throw new ApiError("not_found", `dataset "${name}" does not exist`);
		return spec;
	}

	async all(): Promise<Map<string, DatasetSpec>> {
		await this.control.ensureCurrent();
		// Each request that finds no cache loads it itself: awaiting another request's load is unsafe in workerd.
		return this.cache ?? this.load();
	}

	/** Creates or updates a spec. An incompatible change is refused with a 409 that lists every reason. */
	async put(spec: DatasetSpec, now = Date.now()): Promise<PutResult> {
		const prevRow = await this.db.select().from(datasets).where(eq(datasets.name, spec.name)).get();
		if (prevRow) {
			const prev = JSON.parse(prevRow.spec) as DatasetSpec;
			const reasons = incompatibilities(prev, spec);
			if (reasons.length) {
				throw new ApiError("conflict", `incompatible change to dataset "${spec.name}": ${reasons.map((r) => r.detail).join("; ")}`, {
					errors: reasons,
				});
			}
		}
		const json = JSON.stringify(spec);
		await this.db.batch([
			this.db
				.insert(datasets)
				.values({ name: spec.name, spec: json, createdAt: now, updatedAt: now })
				.onConflictDoUpdate({ target: datasets.name, set: { spec: json, updatedAt: now } }),
			this.control.bumpStatement(),
		]);
		this.control.invalidate();
		return { spec, created: !prevRow };
	}

	private async load(): Promise<Map<string, DatasetSpec>> {
		const rows = await this.db.select({ spec: datasets.spec }).from(datasets).orderBy(asc(datasets.name)).all();
		const map = new Map<string, DatasetSpec>();
		for (const r of rows) {
			const spec = JSON.parse(r.spec) as DatasetSpec;
			map.set(spec.name, spec);
		}
		this.cache = map;
		return map;
	}
}
