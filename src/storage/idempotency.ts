/**
 * Idempotency receipts (table `idempotency_receipts`): when the first request under an
 * Idempotency-Key was received. A resend takes that time instead of its own, so its events are the
 * first attempt's events exactly (ids and event times), and whichever copy is applied first, the
 * other changes nothing.
 */

// The no-op update makes RETURNING hand back the row that was there first; a plain DO NOTHING returns no row.
const FIRST_RECEIPT = `INSERT INTO idempotency_receipts (scope, received_at) VALUES (?1, ?2)
ON CONFLICT (scope) DO UPDATE SET received_at = idempotency_receipts.received_at
RETURNING received_at`;

/** The receipt time of the first request under `scope`: `now` when this is the first, and then recorded. */
export async function firstReceiptTime(db: D1Database, scope: string, now: number): Promise<number> {
	const row = await db.prepare(FIRST_RECEIPT).bind(scope, now).first<{ received_at: number }>();
	if (!row) throw new Error("D1_ERROR: the idempotency receipt was not returned");
	return row.received_at;
}

/** Deletes up to `limit` receipts received before `before`; returns how many went. */
export async function pruneReceipts(db: D1Database, before: number, limit: number): Promise<number> {
	const res = await db
		.prepare("DELETE FROM idempotency_receipts WHERE scope IN (SELECT scope FROM idempotency_receipts WHERE received_at < ?1 LIMIT ?2)")
		.bind(before, limit)
		.run();
	return res.meta.changes ?? 0;
}
