/** Bulk import: POST /v1/datasets/:name/import, rows of batch output straight into D1, under the merge rules. */

import * as z from "zod";
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import { HotpathError } from "../errors";
import { answeredRejects, parseEventsBody, rejectedToItems } from "../ingest/events";
import { importRows, MAX_IMPORT_BYTES, MAX_IMPORT_ROWS } from "../ingest/import";
import { summariseRejects } from "../ingest/intake";
import { idempotencyHeader, isNdjson, parseIdempotencyKey, RejectedSchema } from "./events";
import { bearer, datasetParam, json, mount, newRouter, problems } from "./openapi";
import { limitBody, readBodyText } from "./validation";

export const importRoutes = newRouter();

const RowSchema = z.record(z.string(), z.unknown()).openapi("ImportRow", {
	description:
		"The record's value, with the dataset's key field; optional _event_time (RFC 3339 or epoch ms; default: receipt time), _op (upsert, the default; patch; delete) and _id (as an event id: a row is applied at most once per key).",
	example: { user_id: "u1", age: 34, country: "DE", _event_time: "2026-11-01T00:00:00Z" },
});

mount(
	importRoutes,
	{
		method: "post",
		path: "/{name}/import",
		summary: "Bulk-load rows into D1",
		description: `A JSON array or NDJSON (application/x-ndjson) of rows, at most ${MAX_IMPORT_ROWS} rows and ${MAX_IMPORT_BYTES / (1024 * 1024)} MiB (413). Every row is validated (bad ones rejected by index), the good ones applied to D1 under the same merge rules, id log and revision checks as the queue consumer, and the cached copies of the changed keys refreshed. The answer comes once D1 has committed. A row without _id gets one as an event does (Idempotency-Key, else its content when it has _event_time, else random), so re-importing rows with _event_time or _id changes nothing.`,
		tags: ["records"],
		security: bearer,
		request: {
			params: z.object({ name: datasetParam }),
			headers: idempotencyHeader,
			body: { required: true, content: { "application/json": { schema: z.array(RowSchema) }, "application/x-ndjson": { schema: z.string() } } },
		},
		responses: {
			200: json(
				"Applied",
				z.object({
					imported: z.number().int().openapi({ description: "Valid rows whose record changed" }),
					unchanged: z.number().int().openapi({ description: "Valid rows that changed nothing (applied before, or older than the record)" }),
					rejected: RejectedSchema,
				}),
			),
			...problems("bad_request", "validation_failed", "forbidden", "not_found", "payload_too_large", "unsupported_media_type", "unavailable"),
		},
	},
	requireScope("write"),
	limitBody(MAX_IMPORT_BYTES),
	async (c) => {
		const name = c.req.param("name") as string;
		const principal = c.get("principal");
		assertDatasets(principal, [name]);
		const services = c.get("services");
		const spec = await services.registry.require(name);
		const ndjson = isNdjson(c.req.header("content-type"));
		const idempotencyKey = parseIdempotencyKey(c.req.header("idempotency-key"));
		const { items, rejected } = parseEventsBody(await readBodyText(c), ndjson, MAX_IMPORT_ROWS, "rows");
		const result = await importRows(services, spec, items, { idempotencyKey, principalId: principal.id });
		const allRejected = [...rejected, ...result.rejected].sort((a, b) => a.index - b.index);
		if (!result.imported && !result.unchanged) {
			throw new HotpathError("validation_failed", `none of the ${allRejected.length} row(s) is valid: ${summariseRejects(allRejected)}`, {
				errors: rejectedToItems(allRejected),
			});
		}
		return c.json({ imported: result.imported, unchanged: result.unchanged, rejected: answeredRejects(allRejected) });
	},
);
