/**
 * Waiting for work another request started, without awaiting its promise: workerd may resume such
 * a waiter in the other request's I/O context, where touching its own request fails. So the waiter
 * looks on a timer instead.
 */

/** How often a waiter looks. */
const POLL_MS = 5;

/**
 * Resolves once `busy()` is false, or after about `maxMs`, looking every few milliseconds. Call it
 * only when `busy()` holds: an await yields even when nothing is waited for, which would let
 * requests arriving together all pass the check before any of them marks its own work as started.
 */
export async function waitWhile(busy: () => boolean, maxMs: number): Promise<void> {
	for (let waited = 0; busy() && waited < maxMs; waited += POLL_MS) await new Promise<void>((r) => setTimeout(r, POLL_MS));
}
