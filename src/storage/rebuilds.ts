/** D1 queries for rebuild progress (schema `rebuilds`): one row per dataset, for its latest run. No policy here. */
import { and, eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { rebuilds } from "./schema";

export type RebuildRow = typeof rebuilds.$inferSelect;

/** Starts a run, replacing any earlier one of the dataset (its pages then find their job gone and stop). */
export async function startRebuild(
	db: D1Database,
	row: { dataset: string; job: string; mode: string; totalKeys: number; startedAt: number },
): Promise<RebuildRow> {
	const values = { ...row, status: "running", keysDone: 0, pagesDone: 0, finishedAt: null, error: null };
	await drizzle(db).insert(rebuilds).values(values).onConflictDoUpdate({ target: rebuilds.dataset, set: values });
	return values;
}

export async function getRebuild(db: D1Database, dataset: string): Promise<RebuildRow | undefined> {
	return drizzle(db).select().from(rebuilds).where(eq(rebuilds.dataset, dataset)).get();
}

/** Counts one page done, if `job` is still the dataset's run. Returns false when a newer run replaced it. */
export async function recordPage(db: D1Database, dataset: string, job: string, keys: number, finishedAt: number | null): Promise<boolean> {
	const res = await drizzle(db)
		.update(rebuilds)
		.set({
			keysDone: sql`${rebuilds.keysDone} + ${keys}`,
			pagesDone: sql`${rebuilds.pagesDone} + 1`,
			...(finishedAt === null ? {} : { status: "done", finishedAt }),
		})
		.where(and(eq(rebuilds.dataset, dataset), eq(rebuilds.job, job), eq(rebuilds.status, "running")))
		.returning({ dataset: rebuilds.dataset });
	return res.length > 0;
}

export async function failRebuild(db: D1Database, dataset: string, job: string, error: string, at: number): Promise<void> {
	await drizzle(db)
		.update(rebuilds)
		.set({ status: "failed", error, finishedAt: at })
		.where(and(eq(rebuilds.dataset, dataset), eq(rebuilds.job, job)));
}

/** Whether `job` is the dataset's running job. */
export async function isCurrentJob(db: D1Database, dataset: string, job: string): Promise<boolean> {
	const row = await getRebuild(db, dataset);
	return row?.job === job && row.status === "running";
}
