/** Telling a D1 outage from a bug: what the HTTP edge answers with a 503 to retry rather than a 500. */

/** D1's own errors ("D1_ERROR: ...", "D1 DB is overloaded"), and drizzle's wrapper around them ("Failed query: ..."). */
const D1_MESSAGE = /^(D1_|D1 DB |Failed query: )/;

/** Whether `e` is D1 refusing or failing a statement (an outage, a table gone), directly or as the cause of another error. */
export function isD1Failure(e: unknown): boolean {
	let err = e;
	for (let depth = 0; err instanceof Error && depth < 5; depth++) {
		if (D1_MESSAGE.test(err.message)) return true;
		err = err.cause;
	}
	return false;
}

/**
 * Whether D1 answers a trivial query: tells a write D1 refused (one bad row) from D1 itself failing,
 * without trying every row of a large write one by one first.
 */
export async function d1Answers(db: D1Database): Promise<boolean> {
	try {
		await db.prepare("SELECT 1").first();
		return true;
	} catch {
		return false;
	}
}
