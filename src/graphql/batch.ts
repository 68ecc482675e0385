/**
 * The reads of one GraphQL operation, batched DataLoader-style: every root field that reads
 * records queues its read, and once all of them have (graphql-js calls every root resolver of a
 * query in one synchronous pass, so a microtask runs after the last), one `lookupRecords` call
 * reads them all: one pass through the tiers, like POST /v1/lookup, whatever the fields'
 * freshness options (a key is read within the tightest asked of it, and each field's records are
 * rendered under its own max_staleness and if_stale). Point-in-time reads go to the event log, one
 * read per (dataset, as_of, options).
 */
import { attachAggregates } from "../aggregates/read";
import { HotpathError } from "../errors";
import { lookupsAsOf } from "../history/as-of";
import { keyVersions, type VersionsPage } from "../history/versions";
import { log } from "../observability/log";
import type { DatasetSpec } from "../registry/spec";
import type { Services } from "../services";
import type { IfStale, RecordView } from "../serving/freshness";
import { lookupRecords } from "../serving/lookup";
import type { ReadContext, TieredReader } from "../serving/reader";
import type { TierName } from "../serving/tier";

/** What every resolver gets: the operation's batched reads, and the services (search reads its own index; without them, search fields answer UNAVAILABLE). */
export interface GraphqlContext {
	batch: ReadBatch;
	services?: Services;
}

/** One root field's read: the keys of one dataset, with the field's projection and freshness options. */
export interface RecordRead {
	spec: DatasetSpec;
	keys: string[];
	fields?: string[];
	maxStalenessS?: number;
	ifStale: IfStale;
	/** Epoch ms: the state as of then, from the event log. */
	asOf?: number;
}

interface Pending {
	read: RecordRead;
	resolve: (views: RecordView[]) => void;
	reject: (e: unknown) => void;
}

/** A projection of a view read without one: the same rule as the read path's (a field the value lacks is null). */
function project(view: RecordView, fields: string[] | undefined): RecordView {
	if (!fields || view.value === null) return view;
	const value: Record<string, unknown> = {};
	for (const f of fields) value[f] = Object.hasOwn(view.value, f) ? view.value[f] : null;
	return { ...view, value };
}

/** Storage errors of the event log are an outage to the caller, never an internal error. */
async function fromEventLog<T>(what: string, fn: () => Promise<T>): Promise<T> {
	try {
		return await fn();
	} catch (e) {
		if (e instanceof HotpathError) throw e;
		log.warn("event log read failed", { what, error: String(e) });
		throw new HotpathError("unavailable", `the event log (D1) could not be read for ${what}; retry shortly`, { retryAfterSeconds: 1 });
	}
}

export class ReadBatch {
	private queue: Pending[] = [];
	/** Tiers that answered any read of the operation, for X-Hotpath-Tier. */
	readonly tiers = new Set<TierName>();

	constructor(
		private readonly reader: TieredReader,
		private readonly db: D1Database,
		readonly ctx: ReadContext,
	) {}

	/** The views of `read.keys`, in key order, once the operation's batch has been read. */
	records(read: RecordRead): Promise<RecordView[]> {
		return new Promise((resolve, reject) => {
			if (!this.queue.length) queueMicrotask(() => void this.dispatch());
			this.queue.push({ read, resolve, reject });
		});
	}

	/** A page of one key's versions (not batched: one key per field, as in REST). */
	versions(spec: DatasetSpec, key: string, q: Parameters<typeof keyVersions>[3]): Promise<VersionsPage> {
		this.tiers.add("d1");
		return fromEventLog(`the history of "${key}"`, () => this.ctx.timing.measure("history", () => keyVersions(this.db, spec, key, q)));
	}

	private async dispatch(): Promise<void> {
		const batch = this.queue;
		this.queue = [];
		const groups = new Map<string, Pending[]>();
		for (const p of batch) {
			const { spec, maxStalenessS, ifStale, asOf } = p.read;
			// Current reads share one tier pass, whatever their freshness options; past reads one log read per dataset and time.
			const group = asOf === undefined ? "now" : `past|${spec.name}|${asOf}|${maxStalenessS ?? ""}|${ifStale}`;
			const list = groups.get(group);
			if (list) list.push(p);
			else groups.set(group, [p]);
		}
		// Past reads of every dataset and time (fields with as_of, each its own) in one read of the log
		// per dataset and set of freshness options, not one per field: D1 caps the queries of an invocation.
		const pastByOptions = new Map<string, { group: Pending[]; req: RecordRead; asOf: number }[]>();
		for (const g of groups.values()) {
			const first = (g[0] as Pending).read;
			if (first.asOf === undefined) continue;
			const keys = [...new Set(g.flatMap((p) => p.read.keys))];
			const o = `${first.maxStalenessS ?? ""}|${first.ifStale}`;
			const list = pastByOptions.get(o) ?? [];
			list.push({ group: g, req: { ...first, keys, fields: undefined }, asOf: first.asOf });
			pastByOptions.set(o, list);
		}
		const past = new Map<Pending[], Promise<RecordView[]>>();
		for (const reads of pastByOptions.values()) {
			const { maxStalenessS, ifStale } = (reads[0] as (typeof reads)[number]).req;
			const opts = { maxStalenessS, ifStale };
			const all = fromEventLog(`${reads.length} as_of read(s)`, () => this.ctx.timing.measure("history", () => lookupsAsOf(this.db, reads, opts)));
			// Each group's field settles (or fails) with the read; the rejection is handled there.
			all.catch(() => {});
			reads.forEach((r, i) => {
				past.set(
					r.group,
					all.then((views) => views[i] ?? []),
				);
			});
		}
		await Promise.all([...groups.values()].map((g) => this.readGroup(g, past.get(g))));
	}

	/** Reads one group; each field gets its keys' views, projected as it asked. A past group's views come read (`past`). */
	private async readGroup(group: Pending[], past?: Promise<RecordView[]>): Promise<void> {
		try {
			const first = (group[0] as Pending).read;
			const opts = { maxStalenessS: first.maxStalenessS, ifStale: first.ifStale };
			// Every dataset and set of freshness options once, each key once: fields that ask for the same key share its read.
			const requestOf = (read: RecordRead) => `${read.spec.name}|${read.maxStalenessS ?? ""}|${read.ifStale}`;
			const byRequest = new Map<string, { spec: DatasetSpec; keys: Set<string>; freshness: typeof opts }>();
			for (const { read } of group) {
				const id = requestOf(read);
				const entry = byRequest.get(id) ?? {
					spec: read.spec,
					keys: new Set<string>(),
					freshness: { maxStalenessS: read.maxStalenessS, ifStale: read.ifStale },
				};
				byRequest.set(id, entry);
				for (const k of read.keys) entry.keys.add(k);
			}
			const ids = [...byRequest.keys()];
			const requests = [...byRequest.values()].map(({ spec, keys, freshness }) => ({ spec, keys: [...keys], freshness }));
			let results: RecordView[][];
			if (first.asOf === undefined) {
				const found = await lookupRecords(this.reader, requests, opts, this.ctx);
				for (const t of found.tiers) this.tiers.add(t);
				results = found.results.map((r) => r.records);
			} else {
				this.tiers.add("d1");
				results = [await (past ?? Promise.resolve([]))];
			}
			// Aggregates slide with time: computed at the read time (or as_of), beside the fields, once per
			// dataset (its requests' views together), for the ones any field of the group selects.
			const at = first.asOf ?? Date.now();
			const withAggregates = new Map<string, { spec: DatasetSpec; views: RecordView[] }>();
			requests.forEach((req, i) => {
				if (!req.spec.aggregates) return;
				const entry = withAggregates.get(req.spec.name) ?? { spec: req.spec, views: [] };
				withAggregates.set(req.spec.name, entry);
				entry.views.push(...(results[i] ?? []));
			});
			await fromEventLog("aggregates", () =>
				Promise.all(
					[...withAggregates.values()].map(({ spec, views }) => {
						const reads = group.filter((p) => p.read.spec.name === spec.name);
						const fields = reads.some((p) => !p.read.fields) ? undefined : [...new Set(reads.flatMap((p) => p.read.fields ?? []))];
						return this.ctx.timing.measure("aggregates", async () => {
							// Read from D1 whichever tier held the fields: X-Hotpath-Tier says so.
							if (await attachAggregates(this.db, spec, views, at, fields)) this.tiers.add("d1");
						});
					}),
				),
			);
			const byId = new Map<string, Map<string, RecordView>>();
			requests.forEach((_, i) => {
				byId.set(ids[i] as string, new Map((results[i] ?? []).map((v) => [v.key, v])));
			});
			for (const { read, resolve } of group) {
				const views = byId.get(requestOf(read)) as Map<string, RecordView>;
				resolve(read.keys.map((k) => project(views.get(k) as RecordView, read.fields)));
			}
		} catch (e) {
			for (const p of group) p.reject(e);
		}
	}
}
