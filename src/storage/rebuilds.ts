/** D1 queries for rebuild progress (schema `rebuilds`): one row per dataset, for its latest run. No policy here. */
import { and, eq, inArray, lt, ne, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { rebuilds } from "./schema";

export type RebuildRow = typeof rebuilds.$inferSelect;

/** When a run last showed life: rows from before heartbeats were kept count from their start. */
const lastHeartbeat = sql`coalesce(${rebuilds.heartbeatAt}, ${rebuilds.startedAt})`;

/**
 * Starts a run unless one is running with a heartbeat at or after `liveSince`: that one is left
 * alone and `started` is false. A run replaced (finished, failed or silent) has its pages find
 * their job gone and stop.
 */
export async function startRebuild(
	db: D1Database,
	row: { dataset: string; job: string; mode: string; totalKeys: number; startedAt: number },
	liveSince = Number.NEGATIVE_INFINITY,
): Promise<{ row: RebuildRow; started: boolean }> {
	const values = { ...row, status: "running", keysDone: 0, pagesDone: 0, finishedAt: null, error: null, heartbeatAt: row.startedAt };
	const started = await drizzle(db)
		.insert(rebuilds)
		.values(values)
		.onConflictDoUpdate({ target: rebuilds.dataset, set: values, where: or(ne(rebuilds.status, "running"), lt(lastHeartbeat, liveSince)) })
		.returning({ job: rebuilds.job });
	if (started.length) return { row: values, started: true };
	return { row: (await getRebuild(db, row.dataset)) ?? values, started: false };
}

export async function getRebuild(db: D1Database, dataset: string): Promise<RebuildRow | undefined> {
	return drizzle(db).select().from(rebuilds).where(eq(rebuilds.dataset, dataset)).get();
}

/**
 * Counts page `index` of `job` done, once: only while the run has done exactly `index` pages, so
 * a page delivered twice (queues deliver at least once) counts its keys once. Returns false when
 * the page was counted already, or a newer run replaced this one.
 */
export async function recordPage(
	db: D1Database,
	page: { dataset: string; job: string; index: number },
	keys: number,
	now: number,
	finished: boolean,
): Promise<boolean> {
	const res = await drizzle(db)
		.update(rebuilds)
		.set({
			keysDone: sql`${rebuilds.keysDone} + ${keys}`,
			pagesDone: sql`${rebuilds.pagesDone} + 1`,
			heartbeatAt: now,
			// The page that was being retried got through: its failure is no longer news.
			error: null,
			...(finished ? { status: "done", finishedAt: now } : {}),
		})
		.where(and(eq(rebuilds.dataset, page.dataset), eq(rebuilds.job, page.job), eq(rebuilds.status, "running"), eq(rebuilds.pagesDone, page.index)))
		.returning({ dataset: rebuilds.dataset });
	return res.length > 0;
}

/** Marks the running runs `jobs` alive at `now` (their pages wait their turn in the queue). */
export async function touchRebuilds(db: D1Database, jobs: string[], now: number): Promise<void> {
	if (!jobs.length) return;
	await drizzle(db)
		.update(rebuilds)
		.set({ heartbeatAt: now })
		.where(and(inArray(rebuilds.job, jobs), eq(rebuilds.status, "running")));
}

/** Records on the running run `job` the failure of a page that is being retried, as a sign of life too. */
export async function noteRebuildRetry(db: D1Database, dataset: string, job: string, error: string, now: number): Promise<void> {
	await drizzle(db)
		.update(rebuilds)
		.set({ error, heartbeatAt: now })
		.where(and(eq(rebuilds.dataset, dataset), eq(rebuilds.job, job), eq(rebuilds.status, "running")));
}

export async function failRebuild(db: D1Database, dataset: string, job: string, error: string, at: number): Promise<void> {
	await drizzle(db)
		.update(rebuilds)
		.set({ status: "failed", error, finishedAt: at })
		.where(and(eq(rebuilds.dataset, dataset), eq(rebuilds.job, job)));
}

/** Marks `job` failed with `error` if it is still running with no heartbeat since `liveSince`. Returns whether it did. */
export async function failSilentRebuild(db: D1Database, dataset: string, job: string, liveSince: number, error: string, at: number): Promise<boolean> {
	const res = await drizzle(db)
		.update(rebuilds)
		.set({ status: "failed", error, finishedAt: at })
		.where(and(eq(rebuilds.dataset, dataset), eq(rebuilds.job, job), eq(rebuilds.status, "running"), lt(lastHeartbeat, liveSince)))
		.returning({ dataset: rebuilds.dataset });
	return res.length > 0;
}
