/** Search: POST /v1/datasets/:name/search (query), GET of the same path (the index's status), POST .../search/reindex (admin). */
import type { Context } from "hono";
import * as z from "zod";
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import type { AppEnv } from "../env";
import type { DatasetSpec } from "../registry/spec";
import { MAX_DEPTH } from "../search/cursor";
import { MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH, MAX_FILTER_NODES, MAX_IN_VALUES, MAX_QUERY_TERMS } from "../search/filter";
import { searchIndexStatus, startIndexBuild } from "../search/jobs";
import { DEFAULT_K, DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_CHARS, RRF_K, searchDataset, withoutNulls } from "../search/search";
import { MAX_DATASET_FLOATS, MAX_VECTORS } from "../search/vectors";
import { bearer, datasetParam, json, mount, newRouter, problems } from "./openapi";
import { readContext } from "./read-context";
import { RecordViewSchema } from "./records";
import { limitBody, parseJsonBody } from "./validation";

/** POST /v1/datasets/:name/search body: a query vector of 4,096 dims as JSON, an in list of 1,000 long strings, a cursor of 1,000 hits. */
export const SEARCH_BODY_LIMIT = 256 * 1024;

/** A sort key in object form; parseSort (src/search/filter.ts) checks the keys' names and number. */
const sortKeyObject = z.object({ field: z.string(), order: z.enum(["asc", "desc"]).optional() }).strict();

// Every member may be null, meaning not given (a client's None or undefined serialised), as in
// POST /v1/lookup and GraphQL.
const searchSchema = z
	.object({
		q: z
			.string()
			.max(MAX_QUERY_CHARS)
			.nullable()
			.optional()
			.openapi({
				description: `Words to find in the text fields, all of them (BM25). Only letters and digits count: no FTS5 syntax. At most ${MAX_QUERY_TERMS} words.`,
			}),
		// Taken as parsed, not copied as z.record would: a copy loses a "__proto__" key, which
		// must reach compileFilter to be named as an unknown field.
		filter: z
			.custom<Record<string, unknown>>((v) => typeof v === "object" && v !== null && !Array.isArray(v), { message: "Invalid input: expected an object" })
			.nullable()
			.optional()
			.openapi({
				type: "object",
				additionalProperties: {},
				description: `On declared filter fields only: {"price": {"lt": 20}, "category": {"in": ["a", "b"]}, "or": [...], "and": [...]}, operators eq ne lt lte gt gte in contains exists (contains for string[] fields). A bare value means eq. ne matches a missing value too. At most ${MAX_FILTER_DEPTH} levels, ${MAX_FILTER_NODES} filter objects (and/or members included), ${MAX_FILTER_CONDITIONS} operators, ${MAX_IN_VALUES} values per in.`,
				example: { price: { lt: 20 }, or: [{ category: { in: ["a", "b"] } }, { tags: { contains: "new" } }] },
			}),
		sort: z
			.union([z.string(), sortKeyObject, z.array(z.union([z.string(), sortKeyObject]))], {
				error: 'sort is a key ("price", "-price", "_score" or {"field": "price", "order": "asc" | "desc"}) or a list of up to 3 keys',
			})
			.nullable()
			.optional()
			.openapi({
				description:
					'"price" (ascending), "-price" (descending) or "_score" (best first, the default with q or vector); up to 3 keys, ties by key. Null sorts lowest.',
			}),
		vector: z
			.object({
				value: z.array(z.number()).max(4096).nullable().optional(),
				key: z.string().max(400).nullable().optional(),
				k: z
					.number()
					.int()
					.min(1)
					.max(MAX_DEPTH)
					.nullable()
					.optional()
					.openapi({ description: `Neighbours to rank (default ${DEFAULT_K})` }),
			})
			.strict()
			.nullable()
			.optional()
			.openapi({
				description: `Exact cosine k-nearest neighbours of value, or of the vector of record key (left out of the results, also with q). With q: both rankings fused by reciprocal rank (k=${RRF_K}). At most ${MAX_VECTORS} vectors and ${MAX_DATASET_FLOATS} floats per dataset (409 past it).`,
			}),
		limit: z
			.number()
			.int()
			.min(1)
			.max(MAX_LIMIT)
			.nullable()
			.optional()
			.openapi({ description: `Hits per page (default ${DEFAULT_LIMIT})` }),
		cursor: z
			.string()
			.max(32 * 1024)
			.nullable()
			.optional()
			.openapi({
				description: `next_cursor of the previous page, with the same q, filter, sort and vector. Pages serve the first page's ranking: a doc that exists throughout is served once, none skipped, up to ${MAX_DEPTH} hits in all.`,
			}),
		fields: z.array(z.string()).max(500).nullable().optional().openapi({ description: "Projection of each hit's value" }),
		highlight: z
			.boolean()
			.nullable()
			.optional()
			.openapi({ description: "With q: each hit's matching text fields, the words in <mark></mark> (FTS5 highlight())" }),
		max_staleness: z.number().nonnegative().nullable().optional(),
		if_stale: z.enum(["serve", "omit"]).nullable().optional(),
	})
	.strict()
	.openapi("SearchQuery");

const HitSchema = RecordViewSchema.omit({ status: true })
	.extend({
		status: z.enum(["present", "stale"]),
		score: z.number().openapi({ description: "BM25, cosine similarity, or the fused RRF score; 0 for filter-only queries" }),
		highlights: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
	})
	.openapi("SearchHit");

const StatusSchema = z
	.object({
		dataset: z.string(),
		status: z.enum(["none", "building", "ready", "failed"]),
		docs: z.number().int().openapi({ description: "Live documents in the index queries use" }),
		indexed: z.number().int().openapi({ description: "Records the latest build went through" }),
		total: z.number().int().openapi({ description: "Records (tombstones included) when the latest build started" }),
		started_at: z.string().nullable(),
		finished_at: z.string().nullable(),
		error: z.string().optional(),
	})
	.openapi("SearchIndexStatus");

/** The dataset of the path, checked: within the key's bounds, and existing. */
async function datasetOf(c: Context<AppEnv>): Promise<DatasetSpec> {
	const name = c.req.param("name") as string;
	assertDatasets(c.get("principal"), [name]);
	return c.get("services").registry.require(name);
}

export const searchRoutes = newRouter();

mount(
	searchRoutes,
	{
		method: "post",
		path: "/{name}/search",
		summary: "Search a dataset: text (BM25), filters, vector k-NN, or text and vector fused",
		description: `Ranks in the search index, then reads the hits' values through the tiers like any read (freshness, max_staleness, if_stale); hits whose record is gone are left out. Body at most ${SEARCH_BODY_LIMIT / 1024} KiB.`,
		tags: ["search"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }), body: { required: true, content: { "application/json": { schema: searchSchema } } } },
		responses: {
			200: json("Hits, best first", z.object({ hits: z.array(HitSchema), next_cursor: z.string().nullable(), took_ms: z.number() })),
			...problems("bad_request", "validation_failed", "forbidden", "not_found", "conflict", "payload_too_large", "unavailable"),
		},
	},
	requireScope("read"),
	limitBody(SEARCH_BODY_LIMIT),
	async (c) => {
		const spec = await datasetOf(c);
		const query = withoutNulls(await parseJsonBody(c, searchSchema));
		const ctx = readContext(c);
		const { tiers, ...result } = await searchDataset(c.get("services"), spec, query, ctx);
		// A request that read no key (no keys asked, no hits) touched no tier: no empty headers.
		if (tiers.length) c.header("x-hotpath-tier", tiers.join(","));
		if (ctx.timing.header) c.header("server-timing", ctx.timing.header);
		c.header("cache-control", "no-store");
		return c.json(result);
	},
);

mount(
	searchRoutes,
	{
		method: "get",
		path: "/{name}/search",
		summary: "The status of the dataset's search index",
		description: "A changed search spec re-indexes in the background; this reports its progress.",
		tags: ["search"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }) },
		responses: { 200: json("Status", StatusSchema), ...problems("forbidden", "not_found") },
	},
	requireScope("read"),
	async (c) => {
		const spec = await datasetOf(c);
		c.header("cache-control", "no-store");
		return c.json(await searchIndexStatus(c.get("services"), spec));
	},
);

mount(
	searchRoutes,
	{
		method: "post",
		path: "/{name}/search/reindex",
		summary: "Rebuild the dataset's search index from D1",
		description: "Into a new generation, in the background through the queue; queries use the current index until it is done. GET .../search reports progress.",
		tags: ["search", "admin"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }) },
		responses: { 202: json("Started", StatusSchema), ...problems("bad_request", "forbidden", "not_found", "conflict", "unavailable") },
	},
	requireScope("admin"),
	async (c) => {
		const spec = await datasetOf(c);
		const services = c.get("services");
		await startIndexBuild(services, spec);
		return c.json(await searchIndexStatus(services, spec), 202);
	},
);
