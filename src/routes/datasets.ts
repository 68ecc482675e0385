/** The registry's HTTP surface: create or update a dataset spec, list specs, show one, and its value's JSON Schema. */

import * as z from "zod";
import { ensureAggregateBackfills } from "../aggregates/backfill";
import { sameTiles } from "../aggregates/facts";
import { requireScope } from "../auth/middleware";
import { assertDatasets, mayAccess } from "../auth/policy";
import { HotpathError } from "../errors";
import { refillForNewDerivedFields } from "../ingest/rebuild";
import { type AggregateSpec, type DatasetSpec, type FieldSpec, NAME_PATTERN, normaliseSpec, specInputSchema } from "../registry/spec";
import { ensureSearchIndex } from "../search/jobs";
import { bearer, datasetParam, json, mount, newRouter, problems } from "./openapi";
import { BODY_LIMITS, limitBody, parseJsonBody } from "./validation";

export const datasetRoutes = newRouter();

const FieldSchema = z.object({
	type: z.string().openapi({ example: "float" }),
	dim: z.number().int().optional().openapi({ description: "Vectors only" }),
	derive: z
		.string()
		.optional()
		.openapi({ description: "Derived fields only: the expression the consumer computes the field with on write", example: "clicks / max(impressions, 1)" }),
});
export const SpecSchema = z
	.object({
		name: z.string(),
		key: z.string().openapi({ example: "user_id" }),
		fields: z.record(z.string(), FieldSchema),
		ttl_seconds: z.number().int(),
		history_days: z.number().int(),
		ingest: z
			.object({ key: z.string(), event_time: z.string().optional(), op: z.string().optional(), fields: z.record(z.string(), z.string()).optional() })
			.optional()
			.openapi({ description: "JSON Pointers mapping log shippers' records to events (POST /v1/datasets/{name}/ingest)" }),
		search: z
			.object({ text: z.array(z.string()).optional(), filters: z.array(z.string()).optional(), vector: z.string().optional() })
			.optional()
			.openapi({ description: "Fields the search index keeps (POST /v1/datasets/{name}/search); a change re-indexes in the background" }),
		aggregates: z
			.record(
				z.string(),
				z.object({ fn: z.string(), of: z.string().optional(), window: z.string(), n: z.number().int().optional(), since: z.number().int().optional() }),
			)
			.optional()
			.openapi({ description: "Windowed aggregates, read beside the fields; since: when each was added" }),
		description: z.string().optional(),
	})
	.openapi("DatasetSpec");

mount(
	datasetRoutes,
	{
		method: "put",
		path: "/{name}",
		summary: "Create or update a dataset spec",
		description: `Adding fields is compatible; removing a field, changing a field's type or a vector's dim, or changing the key is refused with a 409 listing every reason. Of two concurrent updates the second is checked against the first. Body at most ${BODY_LIMITS.spec / 1024} KiB.`,
		tags: ["datasets"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }), body: { required: true, content: { "application/json": { schema: specInputSchema } } } },
		responses: {
			200: json("Updated", SpecSchema),
			201: json("Created", SpecSchema),
			...problems("bad_request", "validation_failed", "forbidden", "conflict", "payload_too_large"),
		},
	},
	requireScope("admin"),
	limitBody(BODY_LIMITS.spec),
	async (c) => {
		const name = c.req.param("name") as string;
		if (!NAME_PATTERN.test(name)) {
			throw new HotpathError("bad_request", `dataset name "${name}" is invalid: lowercase letters, digits and _, starting with a letter, at most 63`);
		}
		assertDatasets(c.get("principal"), [name]);
		const input = await parseJsonBody(c, specInputSchema);
		if (input.name !== undefined && input.name !== name) {
			throw new HotpathError("bad_request", `body name "${input.name}" does not match the path's "${name}"`, {
				errors: [{ pointer: "/name", detail: "must match the path" }],
			});
		}
		const { spec, created, previous } = await c.get("services").registry.put(normaliseSpec(name, input), Date.now(), sameTiles);
		// New aggregates count facts logged from now on; a backfill folds in what the log already holds
		// (also for one a failed PUT added without its job: this retry finds it already in the spec).
		if (spec.aggregates) await ensureAggregateBackfills(c.env.DB, c.env.EVENTS_QUEUE, spec, Date.now(), created);
		// A changed search part starts a background re-index (GET /v1/datasets/:name/search shows it); none drops the index.
		await ensureSearchIndex(c.get("services"), spec, previous);
		// A derived field new to a dataset that has records: a refill rebuild writes it into them (GET .../rebuild shows it).
		if (previous) await refillForNewDerivedFields(c.get("services"), previous, spec);
		return c.json(spec, created ? 201 : 200);
	},
);

mount(
	datasetRoutes,
	{
		method: "get",
		path: "/",
		summary: "List the datasets this key may see",
		tags: ["datasets"],
		security: bearer,
		responses: { 200: json("The specs", z.object({ datasets: z.array(SpecSchema) })), ...problems("forbidden") },
	},
	requireScope("read"),
	async (c) => {
		const principal = c.get("principal");
		const all = [...(await c.get("services").registry.all()).values()];
		return c.json({ datasets: all.filter((d) => mayAccess(principal, d.name)) });
	},
);

mount(
	datasetRoutes,
	{
		method: "get",
		path: "/{name}",
		summary: "Show one dataset's spec",
		tags: ["datasets"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }) },
		responses: { 200: json("The spec", SpecSchema), ...problems("forbidden", "not_found") },
	},
	requireScope("read"),
	async (c) => {
		const name = c.req.param("name") as string;
		assertDatasets(c.get("principal"), [name]);
		return c.json(await c.get("services").registry.require(name));
	},
);

mount(
	datasetRoutes,
	{
		method: "get",
		path: "/{name}/schema",
		summary: "The JSON Schema of the dataset's records' values",
		description: "A JSON Schema (2020-12) of one record's `value`, generated from the spec: every field may be null (a missing feature).",
		tags: ["datasets"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }) },
		responses: { 200: json("JSON Schema", z.record(z.string(), z.unknown())), ...problems("forbidden", "not_found") },
	},
	requireScope("read"),
	async (c) => {
		const name = c.req.param("name") as string;
		assertDatasets(c.get("principal"), [name]);
		return c.json(valueJsonSchema(await c.get("services").registry.require(name)));
	},
);

/** One field's JSON Schema; every field may be null. */
function fieldJsonSchema(f: FieldSpec): Record<string, unknown> {
	const nullable = (s: Record<string, unknown>) => ({ anyOf: [s, { type: "null" }] });
	switch (f.type) {
		case "string":
			return nullable({ type: "string" });
		case "int":
			return nullable({ type: "integer", minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER });
		case "float":
			return nullable({ type: "number" });
		case "bool":
			return nullable({ type: "boolean" });
		case "json":
			return {};
		case "string[]":
			return nullable({ type: "array", items: { type: "string" } });
		case "float[]":
			return nullable({ type: "array", items: { type: "number" } });
		case "vector":
			return nullable({ type: "array", items: { type: "number" }, minItems: f.dim, maxItems: f.dim });
	}
}

/** An aggregate's JSON Schema: counts are integers, sums numbers (null past the largest double), means and min/max numbers or null, last_n a list of its values. */
function aggregateJsonSchema(a: AggregateSpec, of: FieldSpec | undefined): Record<string, unknown> {
	const description = `${a.fn}${a.of ? ` of ${a.of}` : ""} over the last ${a.window}`;
	switch (a.fn) {
		case "count":
		case "distinct":
			return { type: "integer", minimum: 0, description, readOnly: true };
		case "sum":
		case "mean":
		case "min":
		case "max":
			return { anyOf: [{ type: "number" }, { type: "null" }], description, readOnly: true };
		case "last_n":
			return { type: "array", items: of ? fieldJsonSchema(of) : {}, maxItems: a.n, description: `${description}, newest first`, readOnly: true };
	}
}

export function valueJsonSchema(spec: DatasetSpec): Record<string, unknown> {
	return {
		$schema: "https://json-schema.org/draft/2020-12/schema",
		title: `${spec.name} value`,
		description: spec.description,
		type: "object",
		properties: {
			...Object.fromEntries(
				Object.entries(spec.fields).map(([name, f]) => [
					name,
					f.derive === undefined ? fieldJsonSchema(f) : { ...fieldJsonSchema(f), description: `derived on write: ${f.derive}`, readOnly: true },
				]),
			),
			...Object.fromEntries(Object.entries(spec.aggregates ?? {}).map(([name, a]) => [name, aggregateJsonSchema(a, spec.fields[a.of ?? ""])])),
		},
		additionalProperties: false,
		"x-hotpath-key": spec.key,
	};
}
