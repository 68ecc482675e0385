/** Log shippers: POST /v1/datasets/:name/ingest, arbitrary JSON records mapped to events by the dataset's `ingest` mapping. */

import * as z from "zod";
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import { HotpathError, pointerToken } from "../errors";
import {
	type EventSources,
	isRefusal,
	MAX_BODY_BYTES,
	MAX_EVENTS_PER_REQUEST,
	parseEventsBody,
	rejectedAt,
	relocated,
	stampReceiptTime,
	validateEvent,
} from "../ingest/events";
import { acceptEvents, summariseRejects } from "../ingest/intake";
import { mapRecord, pointerTokens } from "../ingest/mapping";
import type { ChangeEvent } from "../ingest/merge";
import { log } from "../observability/log";
import type { IngestMapping } from "../registry/spec";
import { idempotencyHeader, isNdjson, parseIdempotencyKey, RejectedSchema } from "./events";
import { bearer, datasetParam, json, mount, newRouter, problems } from "./openapi";
import { limitBody, readBodyText } from "./validation";

export const ingestRoutes = newRouter();

mount(
	ingestRoutes,
	{
		method: "post",
		path: "/{name}/ingest",
		summary: "Ingest log shippers' records (Fluent Bit, Vector)",
		description: `Arbitrary JSON records (an array, or NDJSON as Fluent Bit's http output with json_lines and Vector's http sink send them), each mapped to an event by the dataset's ingest mapping of JSON Pointers: key (required), event_time, op (default upsert), fields (default: the record's top-level properties named like the dataset's fields). Records that cannot be mapped or are invalid are rejected by index; the rest take the same queue path as POST /v1/events (202 once the queue holds them). Same limits: ${MAX_BODY_BYTES / (1024 * 1024)} MiB and ${MAX_EVENTS_PER_REQUEST} records.`,
		tags: ["events"],
		security: bearer,
		request: {
			params: z.object({ name: datasetParam }),
			headers: idempotencyHeader,
			body: {
				required: true,
				content: { "application/json": { schema: z.array(z.record(z.string(), z.unknown())) }, "application/x-ndjson": { schema: z.string() } },
			},
		},
		responses: {
			202: json("Accepted (the queue holds them)", z.object({ accepted: z.number().int(), rejected: RejectedSchema })),
			...problems("bad_request", "validation_failed", "forbidden", "not_found", "payload_too_large", "unsupported_media_type", "unavailable"),
		},
	},
	requireScope("write"),
	limitBody(MAX_BODY_BYTES),
	async (c) => {
		const name = c.req.param("name") as string;
		const principal = c.get("principal");
		assertDatasets(principal, [name]);
		const services = c.get("services");
		const spec = await services.registry.require(name);
		if (!spec.ingest) {
			throw new HotpathError("bad_request", `dataset "${name}" has no ingest mapping: add "ingest": {"key": "/pointer/to/key", ...} to its spec`);
		}
		const text = await readBodyText(c);
		// Fluent Bit sent json_lines as application/json before 3.0: lines of JSON under a JSON type
		// are read as NDJSON too (a body that is not one JSON document). Lines of records never start
		// with "[": a body that does is a JSON array, and is refused whole (400) when broken or sent as
		// NDJSON, rather than read line by line and partly applied (shippers ignore a 2xx's rejects).
		const array = text.trimStart().startsWith("[");
		if (array && isNdjson(c.req.header("content-type"))) {
			const detail = "line 1 is a JSON array: NDJSON holds one record per line (send a JSON array with Content-Type: application/json)";
			throw new HotpathError("validation_failed", `the body is a JSON array sent as NDJSON: ${detail}`, { errors: [{ pointer: "/0", detail }] });
		}
		const ndjson = !array && (isNdjson(c.req.header("content-type")) || !isOneJsonDocument(text));
		const idempotencyKey = parseIdempotencyKey(c.req.header("idempotency-key"));
		const { items, rejected } = parseEventsBody(text, ndjson, MAX_EVENTS_PER_REQUEST, "records");
		const receivedAt = Date.now();
		const maxFutureMs = services.settings.MAX_FUTURE_SKEW_SECONDS * 1000;
		const sources = ingestSources(spec.ingest);
		const valid: { index: number; event: ChangeEvent; sentTime: number | null }[] = [];
		for (const { index, raw } of items) {
			const mapped = mapRecord(raw, spec, spec.ingest);
			// A mapping's refusal is already about places in the record; an event's is moved there.
			if (isRefusal(mapped)) {
				rejected.push(rejectedAt(index, mapped));
				continue;
			}
			const v = validateEvent(
				mapped,
				() => spec,
				receivedAt,
				() => true,
				maxFutureMs,
				sources,
			);
			if (isRefusal(v)) rejected.push(rejectedAt(index, relocated(v, sourcePath(spec.ingest))));
			else valid.push({ index, ...v });
		}
		const ids = { idempotencyKey, principalId: principal.id };
		await stampReceiptTime(c.env.DB, valid, ids, receivedAt, services.settings.D1_TIMEOUT_MS);
		const answer = await acceptEvents(c.env.EVENTS_QUEUE, valid, rejected, ids, "record(s) mapped to an event");
		// Log shippers take any 2xx as done and never read the rejects in it (a 400 they log
		// themselves): without this line the records a mapping cannot take would vanish unseen.
		if (answer.rejected.length) {
			log.warn("ingest rejected records; the shipper was answered 202", {
				dataset: name,
				accepted: answer.accepted,
				rejected: answer.rejected.length,
				first: summariseRejects(answer.rejected),
			});
		}
		return c.json(answer, 202);
	},
);

/**
 * Where a mapped event's fields and time are in a log record, for its rejects: the shipper's
 * record has no `value.status`, but it has `/http/status`, which `ingest.fields.status` names.
 */
function ingestSources(mapping: IngestMapping): EventSources {
	const { fields, event_time } = mapping;
	return {
		field: fields
			? (f) => `${f} at ${fields[f] || '""'} (ingest.fields.${f})`
			: // Without a fields mapping a field is the record's own property of that name.
				(f) => `${f} at /${pointerToken(f)}`,
		...(event_time === undefined ? {} : { eventTime: `${event_time || '""'}, ingest.event_time` }),
		key: `${mapping.key || '""'}, ingest.key`,
	};
}

/** Where a place in a mapped event is in the log record: a value field, the time or the key at its mapping's pointer, the rest at the record. */
function sourcePath(mapping: IngestMapping): (path: readonly string[]) => readonly string[] {
	return ([head, field]) => {
		if (head === "value" && field !== undefined) {
			if (!mapping.fields) return [field];
			const pointer = Object.hasOwn(mapping.fields, field) ? mapping.fields[field] : undefined;
			return pointer === undefined ? [] : pointerTokens(pointer);
		}
		if (head === "event_time" && mapping.event_time !== undefined) return pointerTokens(mapping.event_time);
		if (head === "key") return pointerTokens(mapping.key);
		return [];
	};
}

function isOneJsonDocument(text: string): boolean {
	try {
		JSON.parse(text);
		return true;
	} catch {
		return false;
	}
}
