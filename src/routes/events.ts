/** Ingest: POST /v1/events. Validates each event, queues the good ones, answers 202 once the queue has them. */

import * as z from "zod";
import { requireScope } from "../auth/middleware";
import { mayAccess } from "../auth/policy";
import { HotpathError } from "../errors";
import { isRefusal, MAX_BODY_BYTES, parseEventsBody, rejectedAt, rejectedToItems, stampReceiptTime, validateEvent } from "../ingest/events";
import { acceptEvents } from "../ingest/intake";
import type { ChangeEvent } from "../ingest/merge";
import { MAX_ID_LENGTH } from "../input";
import { bearer, json, mount, newRouter, problems } from "./openapi";
import { limitBody, readBodyText } from "./validation";

export const eventRoutes = newRouter();

// What validateEvent takes (it checks each event by hand, to reject it by index with its reason):
// no other member, and null in place of any optional one.
const EventSchema = z
	.strictObject({
		id: z
			.string()
			.min(1)
			.max(MAX_ID_LENGTH)
			.nullable()
			.optional()
			.openapi({ description: "Makes the event idempotent: an id is applied at most once per key. When absent: see Idempotency-Key" }),
		dataset: z.string(),
		key: z
			.union([z.string().min(1), z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER)])
			.nullable()
			.optional()
			.openapi({ description: "Entity key (at most 400 UTF-8 bytes); may be left out when value holds the dataset's key field" }),
		op: z.enum(["upsert", "patch", "delete"]),
		value: z.record(z.string(), z.unknown()).nullable().optional().openapi({ description: "Fields (upsert, patch); none for delete" }),
		event_time: z
			.union([z.string(), z.number().int().min(0)])
			.nullable()
			.optional()
			.openapi({ description: "RFC 3339 or epoch ms, at most MAX_FUTURE_SKEW_SECONDS ahead; default: receipt time" }),
	})
	.openapi("Event");

export const RejectedSchema = z.array(z.object({ index: z.number().int().openapi({ description: "Array index, or 0-based NDJSON line" }), error: z.string() }));

/** The Idempotency-Key header, checked: printable ASCII, 1 to 255 characters. */
export function parseIdempotencyKey(raw: string | undefined): string | undefined {
	if (raw === undefined) return undefined;
	if (!/^[\x21-\x7e][\x20-\x7e]{0,254}$/.test(raw)) {
		throw new HotpathError("bad_request", "Idempotency-Key must be 1 to 255 printable ASCII characters", {
			errors: [{ pointer: "Idempotency-Key", detail: "1 to 255 printable ASCII characters" }],
		});
	}
	return raw;
}

/** Whether a body is NDJSON (by Content-Type); refuses types that are neither JSON nor NDJSON. */
export function isNdjson(contentType: string | undefined): boolean {
	const type = (contentType ?? "application/json").split(";")[0]?.trim().toLowerCase();
	const ndjson = type === "application/x-ndjson" || type === "application/jsonl" || type === "application/ndjson";
	if (!ndjson && type !== "application/json" && type !== "text/plain" && type !== "") {
		throw new HotpathError("unsupported_media_type", `Content-Type ${type} is not supported: send application/json (an array) or application/x-ndjson`);
	}
	return ndjson;
}

export const idempotencyHeader = z.object({
	"idempotency-key": z.string().optional().openapi({
		description:
			"Derives the ids of events without one from this key and each event's index, and gives events without event_time the time the first accepted request under this key was received: resending the same body is a no-op, and a resend never applies at a later time than the original",
	}),
});

mount(
	eventRoutes,
	{
		method: "post",
		path: "/",
		summary: "Send change events",
		description: `A JSON array of events, or NDJSON (Content-Type: application/x-ndjson). Each event is validated on its own; the good ones go on the queue and the answer (202) comes once the queue holds them. At most ${MAX_BODY_BYTES / (1024 * 1024)} MiB and 10,000 events per request (413). Without id, event_time or Idempotency-Key, each POST is a new event.`,
		tags: ["events"],
		security: bearer,
		request: {
			headers: idempotencyHeader,
			body: {
				required: true,
				content: {
					"application/json": { schema: z.array(EventSchema) },
					"application/x-ndjson": { schema: z.string().openapi({ description: "One event per line" }) },
				},
			},
		},
		responses: {
			202: json("Accepted (the queue holds them)", z.object({ accepted: z.number().int(), rejected: RejectedSchema })),
			...problems("bad_request", "forbidden", "validation_failed", "payload_too_large", "unsupported_media_type", "unavailable"),
		},
	},
	requireScope("write"),
	limitBody(MAX_BODY_BYTES),
	async (c) => {
		const ndjson = isNdjson(c.req.header("content-type"));
		const idempotencyKey = parseIdempotencyKey(c.req.header("idempotency-key"));
		const { items, rejected } = parseEventsBody(await readBodyText(c), ndjson);
		const services = c.get("services");
		const specs = await services.registry.all();
		const principal = c.get("principal");
		const receivedAt = Date.now();
		const maxFutureMs = services.settings.MAX_FUTURE_SKEW_SECONDS * 1000;
		const valid: { index: number; event: ChangeEvent; sentTime: number | null }[] = [];
		const mayWrite = (d: string) => mayAccess(principal, d);
		const outOfBounds = new Set<string>();
		for (const { index, raw } of items) {
			const v = validateEvent(raw, (d) => specs.get(d), receivedAt, mayWrite, maxFutureMs);
			if (isRefusal(v)) {
				rejected.push(rejectedAt(index, v));
				const dataset = (raw as { dataset?: unknown } | null)?.dataset;
				if (typeof dataset === "string" && !mayWrite(dataset)) outOfBounds.add(dataset);
			} else valid.push({ index, ...v });
		}
		// Nothing to accept and a dataset out of the key's bounds: that is the key's limit, a 403 naming
		// it (a bridge stops on it as a config error), not bad input. A mixed body is answered per index.
		if (!valid.length && outOfBounds.size) {
			const names = [...outOfBounds].slice(0, 5).map((d) => `"${d}"`);
			throw new HotpathError("forbidden", `this key may not write to dataset ${names.join(", ")}`, {
				errors: rejectedToItems(rejected.sort((a, b) => a.index - b.index)),
			});
		}
		const ids = { idempotencyKey, principalId: principal.id };
		await stampReceiptTime(c.env.DB, valid, ids, receivedAt, services.settings.D1_TIMEOUT_MS);
		return c.json(await acceptEvents(c.env.EVENTS_QUEUE, valid, rejected, ids, "event(s)"), 202);
	},
);
