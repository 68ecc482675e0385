/** Record reads: one key (projection, max_staleness, ETag, cache headers), and a dataset's records page by page (for export). */

import * as z from "zod";
import { attachAggregates } from "../aggregates/read";
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import { HotpathError } from "../errors";
import { lookupAsOf } from "../history/as-of";
import { ServerTiming } from "../observability/timing";
import { decodeCursor, encodeCursor } from "../serving/cursor";
import { freshnessLimitMs } from "../serving/freshness";
import { lookupRecords } from "../serving/lookup";
import { checkFields, fieldsAndAggregates, keyProblem, parseAsOf, parseFieldList, parseIfStale, parseMaxStaleness } from "../serving/params";
import { recordViewJson } from "../serving/render";
import { listRecords } from "../storage/records";
import { bearer, datasetParam, json, mount, newRouter, problems, recordKeyParam } from "./openapi";
import { readContext } from "./read-context";
import { noneMatch, recordEtag, recordHeaders } from "./record-response";
import { parseFlag, parseLimit } from "./validation";

export const recordRoutes = newRouter();

export const RecordViewSchema = z
	.object({
		key: z.string(),
		status: z.enum(["present", "stale", "not_found"]),
		value: z
			.record(z.string(), z.unknown())
			.nullable()
			.openapi({ description: "The fields (projected by `fields`); null when not found, or stale with if_stale=omit" }),
		event_time: z.string().nullable().openapi({ description: "RFC 3339 time of the newest event applied" }),
		age_ms: z.number().nullable().openapi({ description: "Now (or as_of) minus event_time, in ms" }),
	})
	.openapi("RecordView");

const readQuery = z.object({
	fields: z.string().optional().openapi({ description: "Comma-separated projection", example: "age,country" }),
	max_staleness: z.string().optional().openapi({ description: "Seconds: tightens the dataset's ttl_seconds; copies that may lag D1 more are skipped" }),
	if_stale: z.enum(["serve", "omit"]).optional().openapi({ description: "A stale value is reported (serve, default) or withheld (omit)" }),
	as_of: z.string().optional().openapi({
		description:
			"RFC 3339 or epoch ms: the state all events with event_time <= as_of produce (from the event log, never a cache); age and staleness are counted at as_of",
	}),
});

/** The headers of a record read (recordHeaders in record-response.ts), declared so a client generated from the document can read them. */
const recordReadHeaders = {
	ETag: {
		description:
			"A weak tag of the answer (revision, event time, status, projection); If-None-Match with it gives a 304. None on as_of reads and aggregate datasets",
		schema: { type: "string" as const },
	},
	"Cache-Control": {
		description: "private, max-age=N while the value is present (N: how long it stays fresh); no-cache when stale or aggregated; no-store for as_of",
		schema: { type: "string" as const },
	},
	"X-Hotpath-Tier": { description: "The tier or tiers that answered: l0, redis, kv, d1 (comma-separated)", schema: { type: "string" as const } },
	"Server-Timing": { description: "One entry per tier touched, with its time in ms", schema: { type: "string" as const } },
};

mount(
	recordRoutes,
	{
		method: "get",
		path: "/{name}/records/{key}",
		summary: "Read one record",
		description:
			"Cache first: L0, Redis, KV, D1. Headers: X-Hotpath-Tier (the tier that answered), Server-Timing (one entry per tier touched), ETag (If-None-Match gives 304), Cache-Control (how long the value may be reused).",
		tags: ["records"],
		security: bearer,
		request: { params: z.object({ name: datasetParam, key: recordKeyParam }), query: readQuery },
		responses: {
			200: { ...json("The record", RecordViewSchema.extend({ dataset: z.string() })), headers: recordReadHeaders },
			304: { description: "Not modified (If-None-Match)", headers: { ETag: recordReadHeaders.ETag, "Cache-Control": recordReadHeaders["Cache-Control"] } },
			...problems("bad_request", "forbidden", "not_found", "record_not_found", "unavailable"),
		},
	},
	requireScope("read"),
	async (c) => {
		const name = c.req.param("name") as string;
		const key = c.req.param("key") as string;
		assertDatasets(c.get("principal"), [name]);
		const bad = keyProblem(key);
		// The path parameter is named as query parameters are: by its name.
		if (bad) throw new HotpathError("bad_request", bad, { errors: [{ pointer: "key", detail: bad }] });
		const services = c.get("services");
		const spec = await services.registry.require(name);
		// One pass over the query string, and none when there is none (the common case).
		const query: Record<string, string | undefined> = c.req.url.includes("?") ? c.req.query() : {};
		const fieldsParam = query.fields;
		const fields = checkFields(parseFieldList(fieldsParam, "fields"), fieldsAndAggregates(spec), "fields");
		const maxStalenessS = parseMaxStaleness(query.max_staleness, "max_staleness");
		const ifStale = parseIfStale(query.if_stale);
		const asOf = parseAsOf(query.as_of, "as_of", services.settings.MAX_FUTURE_SKEW_SECONDS * 1000);
		if (asOf !== undefined) {
			const timing = new ServerTiming();
			const [past] = await timing.measure("history", () => lookupAsOf(c.env.DB, { spec, keys: [key], fields }, asOf, { maxStalenessS, ifStale }));
			if (past && spec.aggregates) await timing.measure("aggregates", () => attachAggregates(c.env.DB, spec, [past], asOf, fields));
			// A past state can still change (a late event lands at its place in time): not cacheable.
			const headers = { "x-hotpath-tier": "d1", "server-timing": timing.header, "cache-control": "no-store" };
			if (!past || past.status === "not_found") {
				for (const [k, v] of Object.entries(headers)) c.header(k, v);
				throw new HotpathError("record_not_found", `no record "${key}" in dataset "${name}" as of ${new Date(asOf).toISOString()}`);
			}
			return c.body(recordViewJson(past, name), 200, { ...headers, "content-type": "application/json" });
		}

		const ctx = readContext(c);
		const { results, served, tiers } = await lookupRecords(services.reader, [{ spec, keys: [key], fields }], { maxStalenessS, ifStale }, ctx).catch(
			(e: unknown) => {
				// A read no tier could answer (a 503) still says which tiers it tried, and for how long.
				c.header("server-timing", ctx.timing.header);
				throw e;
			},
		);
		const view = results[0]?.records[0];
		const copy = served[0]?.[0];
		if (!view || !copy) throw new Error("unreachable: one key was asked for");
		const headers = recordHeaders({
			view,
			copy,
			limitMs: freshnessLimitMs(spec, maxStalenessS),
			l0TtlSeconds: services.settings.L0_TTL_SECONDS,
			tiers: tiers.join(","),
			serverTiming: ctx.timing.header,
			etag: recordEtag(copy, view.status, `${fieldsParam ? `-${fields?.join(".")}` : ""}${ifStale === "omit" ? "-o" : ""}`),
		});
		if (view.status === "not_found") {
			c.header("x-hotpath-tier", headers["x-hotpath-tier"]);
			c.header("server-timing", headers["server-timing"]);
			// A 404 is cacheable by default (RFC 9111): a reused one would hide the record once it is written.
			c.header("cache-control", headers["cache-control"]);
			c.header("vary", headers.vary);
			throw new HotpathError("record_not_found", `no record "${key}" in dataset "${name}"`);
		}
		if (spec.aggregates) {
			// Aggregates slide with time: computed now, from D1, and not to be reused.
			const fromD1 = await ctx.timing.measure("aggregates", () => attachAggregates(c.env.DB, spec, [view], Date.now(), fields));
			const { etag: _, ...rest } = headers;
			// Part of the answer came from D1, whichever tier held the fields.
			const tier = (fromD1 && !tiers.includes("d1") ? [...tiers, "d1"] : tiers).join(",");
			return c.body(recordViewJson(view, name), 200, { ...rest, "x-hotpath-tier": tier, "server-timing": ctx.timing.header, "cache-control": "no-cache" });
		}
		const inm = c.req.header("if-none-match");
		if (inm && noneMatch(inm, headers.etag)) {
			const { "content-type": _, ...rest } = headers;
			return c.body(null, 304, rest);
		}
		return c.body(recordViewJson(view, name), 200, headers);
	},
);

/** Records per page of GET /v1/datasets/:name/records. */
export const MAX_PAGE = 1000;
const DEFAULT_PAGE = 500;

const RecordsPageSchema = z
	.object({
		records: z.array(
			z.object({
				key: z.string(),
				value: z.record(z.string(), z.unknown()).nullable(),
				event_time: z.string(),
				event_id: z.string(),
				deleted: z.boolean().optional().openapi({ description: "Only with include_deleted=true: the record is a tombstone" }),
			}),
		),
		next_cursor: z.string().nullable().openapi({ description: "Pass as cursor for the next page; null on the last" }),
	})
	.openapi("RecordsPage");

mount(
	recordRoutes,
	{
		method: "get",
		path: "/{name}/records",
		summary: "List a dataset's records, from D1, in key order",
		description: `Pages of at most ${MAX_PAGE} records (default ${DEFAULT_PAGE}), read from D1, the truth: what \`hotpath export\` reads. Tombstones only with include_deleted=true.`,
		tags: ["records"],
		security: bearer,
		request: {
			params: z.object({ name: datasetParam }),
			query: z.object({
				limit: z
					.string()
					.optional()
					.openapi({ description: `1 to ${MAX_PAGE}` }),
				cursor: z.string().optional(),
				include_deleted: z.enum(["true", "false"]).optional(),
			}),
		},
		responses: { 200: json("A page", RecordsPageSchema), ...problems("bad_request", "forbidden", "not_found") },
	},
	requireScope("read"),
	async (c) => {
		const name = c.req.param("name") as string;
		assertDatasets(c.get("principal"), [name]);
		await c.get("services").registry.require(name);
		const limit = parseLimit(c, DEFAULT_PAGE, MAX_PAGE);
		const cursor = c.req.query("cursor");
		const includeDeleted = parseFlag(c, "include_deleted");
		const page = await listRecords(c.env.DB, name, cursor !== undefined ? decodeCursor(cursor) : null, limit, includeDeleted);
		const last = page[page.length - 1];
		return c.json({
			records: page.map(({ key, rec }) => ({
				key,
				value: rec.v,
				event_time: new Date(rec.t).toISOString(),
				event_id: rec.i,
				...(includeDeleted ? { deleted: rec.v === null } : {}),
			})),
			next_cursor: page.length === limit && last ? encodeCursor(last.key) : null,
		});
	},
);
