/** The queue producer: packs events into as few messages and sendBatch calls as the Queue limits allow. */
import { ApiError } from "../errors";
import type { ChangeEvent } from "./merge";

/** The body of one queue message: many events, so one message carries up to ~100 KB of them. */
export interface EventsMessage {
	v: 1;
	events: ChangeEvent[];
}

// Cloudflare Queues: 128 KB per message, 100 messages and 256 KB per sendBatch. Stay under with
// headroom for the envelope and the JSON encoding the runtime does.
const MESSAGE_BYTES = 110 * 1024;
const BATCH_BYTES = 240 * 1024;
const BATCH_MESSAGES = 100;
const encoder = new TextEncoder();

interface Packed {
	body: EventsMessage;
	bytes: number;
	count: number;
}

/** Groups events into messages under MESSAGE_BYTES. Exported for tests. */
export function packMessages(events: ChangeEvent[]): Packed[] {
	const out: Packed[] = [];
	let cur: Packed | null = null;
	for (const e of events) {
		const size = encoder.encode(JSON.stringify(e)).length + 1;
		if (!cur || cur.bytes + size > MESSAGE_BYTES) {
			cur = { body: { v: 1, events: [] }, bytes: 32, count: 0 };
			out.push(cur);
		}
		cur.body.events.push(e);
		cur.bytes += size;
		cur.count++;
	}
	return out;
}

/** Groups messages into sendBatch calls under the per-call limits. Exported for tests. */
export function packBatches(messages: Packed[]): Packed[][] {
	const batches: Packed[][] = [];
	let cur: Packed[] = [];
	let bytes = 0;
	for (const m of messages) {
		if (cur.length === BATCH_MESSAGES || (cur.length > 0 && bytes + m.bytes > BATCH_BYTES)) {
			batches.push(cur);
			cur = [];
			bytes = 0;
		}
		cur.push(m);
		bytes += m.bytes;
	}
	if (cur.length) batches.push(cur);
	return batches;
}

/**
 * Puts events on the queue and resolves once the queue has accepted all of them. If a send fails
 * part way, the error says how many were enqueued: events are idempotent by id, so the client
 * can safely resend the whole request.
 */
export async function enqueueEvents(queue: Queue<unknown>, events: ChangeEvent[]): Promise<void> {
	let sent = 0;
	for (const batch of packBatches(packMessages(events))) {
		try {
			await queue.sendBatch(batch.map((m) => ({ body: m.body, contentType: "json" as const })));
		} catch (e) {
			throw new ApiError(
				"unavailable",
				`the event queue refused a batch after ${sent} of ${events.length} events were enqueued (${(e as Error).message}); resending the request is safe, events are idempotent by id`,
				{ headers: { "retry-after": "1" } },
			);
		}
		sent += batch.reduce((n, m) => n + m.count, 0);
	}
}
