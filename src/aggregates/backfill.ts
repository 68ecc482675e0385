/**
 * Backfill of aggregates added to a dataset: the facts the event log holds (within the window)
 * that their writers did not count into the new aggregates (written before they were added, or by
 * a consumer whose registry was a moment old: see aggregateVersion) are folded into its tiles, a
 * page of keys at a time through the queue. Each page writes its tiles and moves the job's cursor
 * in one transaction, only from where it began: a redelivered page counts nothing twice, so every
 * fact is in the tiles once.
 */
import type { DatasetSpec } from "../registry/spec";
import { type BackfillJob, backfillsOf, factsNotCounted, getBackfill, startBackfill, writeBackfillPage } from "../storage/aggregates";
import { listRecords } from "../storage/records";
import { tileRowsOf } from "./facts";
import { TILE_RETENTION } from "./windows";

/** How far back any read takes tiles (older spans come from the log). */
const OLDEST_TILE_READ = Math.max(...Object.values(TILE_RETENTION));

/** Keys per backfill page. */
export const BACKFILL_PAGE_KEYS = 100;

/** A backfill job's queue message body. */
export interface BackfillMessage {
	v: 1;
	backfill: { job: string };
}

export const backfillMessage = (job: string): string => JSON.stringify({ v: 1, backfill: { job } } satisfies BackfillMessage);

export function readBackfillMessage(body: unknown): { job: string } | null {
	if (body === null || typeof body !== "object") return null;
	const b = body as Partial<BackfillMessage>;
	return b.v === 1 && b.backfill && typeof b.backfill.job === "string" ? { job: b.backfill.job } : null;
}

/**
 * Records the job and queues its first page, a little later than the change: a consumer that
 * loaded the registry just before it may still log facts without the new aggregates, and the
 * backfill must see them.
 */
export async function startAggregateBackfill(
	db: D1Database,
	queue: Queue<unknown>,
	spec: DatasetSpec,
	names: readonly string[],
	now = Date.now(),
	newDataset = false,
): Promise<string> {
	const before = Math.min(...names.map((n) => spec.aggregates?.[n]?.since ?? now));
	// Named by what it backfills, so two PUTs that both find the job missing record one job, not two
	// (two would count every fact twice); only the one that recorded it queues it.
	const aggs = [...names].sort();
	const job = `${spec.name}:${before}:${aggs.join(",")}`;
	if (!(await startBackfill(db, { job, dataset: spec.name, aggs, before, startedAt: now, newDataset }))) return job;
	await queue.send(backfillMessage(job), { contentType: "text", delaySeconds: BACKFILL_DELAY_S });
	return job;
}

/**
 * Starts the backfill of every aggregate of `spec` that has none: those the change just added, and
 * any whose job was never recorded (D1 took the spec but refused the job, and the PUT failed: the
 * client's retry finds the aggregate already there, so it would never be backfilled otherwise). A
 * job recorded but never begun (its first message was refused) is queued again: pages move the
 * job's cursor conditionally, so a second delivery counts nothing twice. Aggregates from before
 * jobs were recorded (no `since`) are left alone.
 */
export async function ensureAggregateBackfills(
	db: D1Database,
	queue: Queue<unknown>,
	spec: DatasetSpec,
	now = Date.now(),
	/** The PUT created the dataset: no fact can predate its aggregates. */
	newDataset = false,
): Promise<void> {
	const aggs = Object.entries(spec.aggregates ?? {});
	if (!aggs.length) return;
	const jobs = await backfillsOf(db, spec.name);
	// Jobs go by the time their aggregates were added: one per `since`.
	const missing = new Map<number, string[]>();
	const unstarted = new Set<string>();
	for (const [name, agg] of aggs) {
		if (agg.since === undefined) continue;
		const job = jobs.find((j) => j.before === agg.since && j.aggs.includes(name));
		if (!job) missing.set(agg.since, [...(missing.get(agg.since) ?? []), name]);
		else if (!job.done && job.cursor === null) unstarted.add(job.job);
	}
	for (const names of missing.values()) await startAggregateBackfill(db, queue, spec, names, now, newDataset);
	for (const job of unstarted) await queue.send(backfillMessage(job), { contentType: "text", delaySeconds: BACKFILL_DELAY_S });
}

/** Seconds before a backfill starts: longer than a consumer batch that began with the old registry can take. */
export const BACKFILL_DELAY_S = 30;

/** Of a job's aggregates, those `spec` still has as the job started them (with its `since`). */
const jobAggregates = (spec: DatasetSpec | undefined, job: BackfillJob): NonNullable<DatasetSpec["aggregates"]> =>
	Object.fromEntries(
		job.aggs
			.filter((n) => spec?.aggregates?.[n]?.since === job.before)
			.map((n) => [n, spec?.aggregates?.[n] as NonNullable<DatasetSpec["aggregates"]>[string]]),
	);

/**
 * Works one page of a backfill job; returns whether another page follows (queued here). `fresh`
 * reads the dataset's spec from D1, for when `spec` (the isolate's registry) lacks the job's aggregates.
 */
export async function backfillPage(
	db: D1Database,
	queue: Queue<unknown>,
	given: DatasetSpec | undefined,
	jobId: string,
	now = Date.now(),
	fresh?: () => Promise<DatasetSpec | undefined>,
): Promise<boolean> {
	const job: BackfillJob | null = await getBackfill(db, jobId);
	if (!job || job.done) return false;
	let spec = given;
	// Only the aggregates this job was started for: one removed and added again since (or whose
	// window moved across a day) has a new since, new tiles, and a backfill job of its own.
	let aggregates = jobAggregates(spec, job);
	// A registry without them may be older than the job (an isolate whose version check failed
	// serves the last registry it read): ask D1 before taking them for removed, or the job would
	// end, or stall, without counting the facts it was started for.
	if (!Object.keys(aggregates).length && fresh) {
		spec = await fresh();
		aggregates = jobAggregates(spec, job);
	}
	if (!spec || !Object.keys(aggregates).length) {
		await writeBackfillPage(db, job.job, job.cursor, job.cursor, 0, true, [], []);
		return false;
	}
	const page = await listRecords(db, spec.name, job.cursor, BACKFILL_PAGE_KEYS, true);
	const keys = page.map((r) => r.key);
	// Every fact a read could take from tiles, not only those of the window ending now: an as_of
	// read's window ends in the past, and reads tiles as far back as the retention keeps them.
	const facts = keys.length ? await factsNotCounted(db, spec.name, keys, job.before, now - OLDEST_TILE_READ) : [];
	const byKey = new Map<string, typeof facts>();
	for (const f of facts) byKey.set(f.key, [...(byKey.get(f.key) ?? []), f]);
	const only: DatasetSpec = { ...spec, aggregates };
	const tiles = [];
	const hll = [];
	for (const [key, list] of byKey) {
		const rows = tileRowsOf(
			only,
			key,
			list.map((f) => ({
				time: f.event_time,
				id: f.event_id,
				op: f.op,
				value: f.value === null ? undefined : (JSON.parse(f.value) as Record<string, unknown>),
			})),
		);
		tiles.push(...rows.tiles);
		hll.push(...rows.hll);
	}
	const done = page.length < BACKFILL_PAGE_KEYS;
	const moved = await writeBackfillPage(db, job.job, job.cursor, keys[keys.length - 1] ?? job.cursor, keys.length, done, tiles, hll);
	if (moved && !done) await queue.send(backfillMessage(job.job), { contentType: "text" });
	return moved && !done;
}
