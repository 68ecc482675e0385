/** The end of every intake path (events, log shippers): ids for events without one, one serialisation each, the queue. */
import { HotpathError } from "../errors";
import { answeredRejects, assignIds, type EncodedEvent, encodeEvent, type IdSource, type Rejected, rejectedToItems } from "./events";
import type { ChangeEvent } from "./merge";
import { enqueueEvents } from "./producer";

/** Summarises rejects for a problem's detail: the first three, and how many more. */
export function summariseRejects(rejected: readonly Rejected[]): string {
	const first = rejected.slice(0, 3).map((r) => `[${r.index}] ${r.error}`);
	return first.join("; ") + (rejected.length > 3 ? `; and ${rejected.length - 3} more` : "");
}

/**
 * Queues the valid events and resolves once the queue holds them, with the rejects (also those too
 * large for a queue message) in index order. When nothing is left to queue, a validation_failed
 * error lists every reject.
 */
export async function acceptEvents(
	queue: Queue<unknown>,
	valid: { index: number; event: ChangeEvent; sentTime: number | null }[],
	rejected: Rejected[],
	ids: IdSource,
	noun: string,
): Promise<{ accepted: number; rejected: Rejected[] }> {
	// Before ids are given: whether each event keeps its id on a resend (see enqueueEvents).
	const resendSafe = ids.idempotencyKey !== undefined || valid.every((v) => v.event.id !== "" || v.sentTime !== null);
	await assignIds(valid, ids);
	const good: EncodedEvent[] = [];
	for (const v of valid) {
		const encoded = encodeEvent(v.event);
		if (typeof encoded === "string") rejected.push({ index: v.index, error: encoded });
		else good.push(encoded);
	}
	rejected.sort((a, b) => a.index - b.index);
	if (!good.length) {
		throw new HotpathError("validation_failed", `none of the ${rejected.length} ${noun} is valid: ${summariseRejects(rejected)}`, {
			errors: rejectedToItems(rejected),
		});
	}
	await enqueueEvents(queue, good, resendSafe);
	return { accepted: good.length, rejected: answeredRejects(rejected) };
}
