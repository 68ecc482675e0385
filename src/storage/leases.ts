/**
 * Leases on maintenance jobs (table `maintenance_leases`): one holder at a time, for a bounded time.
 * A job that runs in steps hands the lease from each step's holder to the next one's, so a step
 * delivered twice finds the lease gone and does nothing; a holder that died leaves a lease that
 * expires. Writes made under a lease carry `leaseGuard` in their own transaction: a holder that
 * lost its lease (it expired and someone else took it) writes nothing.
 */

const TAKE = `INSERT INTO maintenance_leases (name, holder, until) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
WHERE maintenance_leases.until <= ?4 OR maintenance_leases.holder = ?5
RETURNING holder`;

/**
 * Takes the lease `name` for `holder` until `until`: when it is free or expired, or (a job's next
 * step) when `from` holds it. Returns whether `holder` holds it now.
 */
export async function takeLease(db: D1Database, name: string, holder: string, now: number, until: number, from?: string): Promise<boolean> {
	const row = await db
		.prepare(TAKE)
		.bind(name, holder, until, now, from ?? null)
		.first<{ holder: string }>();
	return row?.holder === holder;
}

/** Gives the lease up, if `holder` still holds it. */
export async function releaseLease(db: D1Database, name: string, holder: string): Promise<void> {
	await db.prepare("DELETE FROM maintenance_leases WHERE name = ?1 AND holder = ?2").bind(name, holder).run();
}

/**
 * A statement for the front of a batch: extends the lease while `holder` holds it, and fails (so
 * D1 rolls the whole batch back) when it does not. SQLite has no way to raise an error from a
 * plain statement, so the failure is a NOT NULL violation on a row that only a lost lease inserts.
 */
export function leaseGuard(db: D1Database, name: string, holder: string, until: number): D1PreparedStatement[] {
	return [
		db
			.prepare(
				`INSERT INTO maintenance_leases (name, holder, until)
SELECT ?1 || ' (lease lost)', NULL, 0 WHERE NOT EXISTS (SELECT 1 FROM maintenance_leases WHERE name = ?1 AND holder = ?2)`,
			)
			.bind(name, holder),
		db.prepare("UPDATE maintenance_leases SET until = max(until, ?3) WHERE name = ?1 AND holder = ?2").bind(name, holder, until),
	];
}

/** Whether a D1 error is leaseGuard's: the lease was lost, and the batch was not applied. */
export const isLeaseLost = (e: unknown): boolean => /NOT NULL constraint failed: maintenance_leases\.holder/.test(String((e as Error)?.message ?? e));
