/** Ingest: POST /v1/events. Validates each event, queues the good ones, answers 202 once the queue has them. */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { mayAccess, requireScope } from "../auth/middleware";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { assignIds, type EncodedEvent, encodeEvent, MAX_BODY_BYTES, parseEventsBody, type Rejected, rejectedToItems, validateEvent } from "../ingest/events";
import type { ChangeEvent } from "../ingest/merge";
import { enqueueEvents } from "../ingest/producer";

export const eventRoutes = new Hono<AppEnv>();

eventRoutes.post(
	"/",
	requireScope("write"),
	bodyLimit({
		maxSize: MAX_BODY_BYTES,
		onError: () => {
			throw new ApiError("payload_too_large", `body is larger than ${MAX_BODY_BYTES} bytes; split it into several requests`);
		},
	}),
	async (c) => {
		const type = (c.req.header("content-type") ?? "application/json").split(";")[0]?.trim().toLowerCase();
		const ndjson = type === "application/x-ndjson" || type === "application/jsonl" || type === "application/ndjson";
		if (!ndjson && type !== "application/json" && type !== "text/plain" && type !== "") {
			throw new ApiError("unsupported_media_type", `Content-Type ${type} is not supported: send application/json (an array of events) or application/x-ndjson`);
		}
		const { items, rejected } = parseEventsBody(await c.req.text(), ndjson);
		const specs = await c.get("services").registry.all();
		const principal = c.get("principal");
		const receivedAt = Date.now();
		const valid: { index: number; event: ChangeEvent; sentTime: number | null }[] = [];
		const mayWrite = (d: string) => mayAccess(principal, d);
		for (const { index, raw } of items) {
			const v = validateEvent(raw, (d) => specs.get(d), receivedAt, mayWrite);
			if (typeof v === "string") rejected.push({ index, error: v });
			else valid.push({ index, ...v });
		}
		await assignIds(valid);
		const good: EncodedEvent[] = [];
		for (const v of valid) {
			const encoded = encodeEvent(v.event);
			if (typeof encoded === "string") rejected.push({ index: v.index, error: encoded });
			else good.push(encoded);
		}
		rejected.sort((a, b) => a.index - b.index);
		if (!good.length) {
			throw new ApiError("validation_failed", `none of the ${rejected.length} event(s) is valid: ${summarise(rejected)}`, {
				errors: rejectedToItems(rejected),
			});
		}
		await enqueueEvents(c.env.EVENTS_QUEUE, good);
		return c.json({ accepted: good.length, rejected }, 202);
	},
);

function summarise(rejected: Rejected[]): string {
	const first = rejected.slice(0, 3).map((r) => `[${r.index}] ${r.error}`);
	return first.join("; ") + (rejected.length > 3 ? `; and ${rejected.length - 3} more` : "");
}
