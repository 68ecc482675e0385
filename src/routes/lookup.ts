/** Batch reads: POST /v1/lookup, many keys of many datasets in one pass through the tiers. */

import * as z from "zod";
import { attachAggregates } from "../aggregates/read";
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import { HotpathError, itemsDetail, type ProblemItem } from "../errors";
import { assertWithinHistory, lookupsAsOf } from "../history/as-of";
import type { RecordView } from "../serving/freshness";
import { type LookupRequest, lookupRecords, MAX_LOOKUP_KEYS } from "../serving/lookup";
import { checkFields, fieldsAndAggregates, keyProblem, parseAsOf, parseIfStale, parseMaxStaleness } from "../serving/params";
import { lookupResultsJson } from "../serving/render";
import type { TierName } from "../serving/tier";
import { bearer, json, mount, newRouter, problems } from "./openapi";
import { readContext } from "./read-context";
import { RecordViewSchema } from "./records";
import { BODY_LIMITS, limitBody, parseJsonBody } from "./validation";

const asOfSchema = z.union([z.string(), z.number()], { error: "as_of must be RFC 3339 text or epoch milliseconds (or null for current values)" });

const lookupSchema = z
	.object({
		requests: z
			.array(
				z
					.object({
						dataset: z.string(),
						// No keys reads nothing, as GraphQL's keys: [] and Redis's MGET of nothing: an empty records list, not a 400.
						keys: z
							.array(z.union([z.string().min(1), z.number().int()], { error: "a key is a non-empty string or a safe integer" }).transform(String))
							.openapi({ description: "The keys to read, in the order their records come back; [] gives an empty records list" }),
						fields: z
							.array(z.string())
							.nullable()
							.optional()
							.openapi({ description: "The fields to return; left out or null: every field (as GraphQL's fields: null)" }),
						as_of: asOfSchema
							.nullable()
							.optional()
							.openapi({ description: "This request's point in time (overrides the top-level as_of); null: current values" }),
					})
					.strict(),
			)
			// No requests reads nothing, as a request's keys: [] does: an empty results list, not a 400.
			.openapi({ description: "The reads, answered in this order; [] gives an empty results list" }),
		// null as for as_of: none (a client's None or undefined serialised), the dataset's ttl_seconds bounds the read.
		max_staleness: z.number().nonnegative().nullable().optional(),
		if_stale: z.enum(["serve", "omit"]).optional(),
		as_of: asOfSchema.nullable().optional().openapi({
			description:
				"RFC 3339 or epoch ms: answer the state all events with event_time <= as_of produce, from the event log (never a cache); null: current values",
		}),
	})
	.strict();

export const lookupRoutes = newRouter();

mount(
	lookupRoutes,
	{
		method: "post",
		path: "/",
		summary: "Read many keys of many datasets in one pass",
		description: `One round trip per tier for the whole batch. Results come back in request order, and each request's records in the order of its keys. At most ${MAX_LOOKUP_KEYS} keys (413) and ${BODY_LIMITS.lookup / (1024 * 1024)} MiB per request.`,
		tags: ["records"],
		security: bearer,
		request: { body: { required: true, content: { "application/json": { schema: lookupSchema } } } },
		responses: {
			200: json("The records", z.object({ results: z.array(z.object({ dataset: z.string(), records: z.array(RecordViewSchema) })) })),
			...problems("bad_request", "validation_failed", "forbidden", "payload_too_large", "unavailable"),
		},
	},
	requireScope("read"),
	limitBody(BODY_LIMITS.lookup),
	async (c) => {
		const body = await parseJsonBody(c, lookupSchema);
		const total = body.requests.reduce((n, r) => n + r.keys.length, 0);
		if (total > MAX_LOOKUP_KEYS) throw new HotpathError("payload_too_large", `${total} keys in one lookup; the limit is ${MAX_LOOKUP_KEYS}`);
		assertDatasets(
			c.get("principal"),
			body.requests.map((r) => r.dataset),
		);

		const registry = c.get("services").registry;
		const errors: ProblemItem[] = [];
		// Items already reported, by pointer and detail: a set, as a body of 1,000 requests can give 20,000 items.
		const reported = new Set<string>();
		const requests: (LookupRequest & { asOf?: number; asOfPointer: string })[] = [];
		// A bad top-level as_of is one error among the others of the body, not the only one reported.
		let topAsOf: number | undefined;
		const maxFutureMs = c.get("services").settings.MAX_FUTURE_SKEW_SECONDS * 1000;
		try {
			topAsOf = parseAsOf(body.as_of, "/as_of", maxFutureMs);
		} catch (e) {
			if (!(e instanceof HotpathError)) throw e;
			for (const item of e.errors ?? [{ pointer: "/as_of", detail: e.message }]) {
				reported.add(`${item.pointer}\u0000${item.detail}`);
				errors.push(item);
			}
		}
		for (const [i, r] of body.requests.entries()) {
			const spec = await registry.get(r.dataset);
			if (!spec) {
				errors.push({ pointer: `/requests/${i}/dataset`, detail: `dataset "${r.dataset}" does not exist` });
				continue;
			}
			r.keys.forEach((k, j) => {
				const bad = keyProblem(k);
				if (bad) errors.push({ pointer: `/requests/${i}/keys/${j}`, detail: bad });
			});
			let fields: string[] | undefined;
			let asOf: number | undefined;
			// Where the as_of came from: the request's own, or the top-level one it inherits.
			const from = r.as_of === undefined || r.as_of === "" ? "/as_of" : `/requests/${i}/as_of`;
			try {
				fields = checkFields(r.fields ?? undefined, fieldsAndAggregates(spec), `/requests/${i}/fields`, true);
				// A request's own as_of overrides the top-level one; null asks for current values.
				asOf = r.as_of === null ? undefined : (parseAsOf(r.as_of, `/requests/${i}/as_of`, maxFutureMs) ?? topAsOf);
				if (asOf !== undefined) assertWithinHistory(spec, asOf);
			} catch (e) {
				if (!(e instanceof HotpathError)) throw e;
				for (const x of e.errors ?? []) {
					const item = x.pointer === "as_of" ? { ...x, pointer: from } : x;
					// The top-level as_of is named once, however many requests inherit it.
					const id = `${item.pointer}\u0000${item.detail}`;
					if (!reported.has(id)) {
						reported.add(id);
						errors.push(item);
					}
				}
			}
			requests.push({ spec, keys: r.keys, fields, asOf, asOfPointer: from });
		}
		if (errors.length) throw new HotpathError("validation_failed", itemsDetail(errors), { errors });

		const ctx = readContext(c);
		const opts = { maxStalenessS: parseMaxStaleness(body.max_staleness, "/max_staleness"), ifStale: parseIfStale(body.if_stale) };
		// Current reads go through the tiers in one pass; point-in-time reads come from the event log.
		const current = requests.filter((r) => r.asOf === undefined);
		const result = current.length
			? await lookupRecords(c.get("services").reader, current, opts, ctx).catch((e: unknown) => {
					// A lookup no tier could answer (a 503) still says which tiers it tried, and for how long.
					c.header("server-timing", ctx.timing.header);
					throw e;
				})
			: { results: [], tiers: [] as TierName[] };
		// Every point-in-time request in one read of the log per dataset, whatever its time (a join's rows each have their own).
		const pastReads = requests.flatMap((r, i) => (r.asOf === undefined ? [] : [{ i, req: r, asOf: r.asOf, pointer: r.asOfPointer }]));
		const pastViews = pastReads.length ? await ctx.timing.measure("history", () => lookupsAsOf(c.env.DB, pastReads, opts)) : [];
		const past: (RecordView[] | null)[] = requests.map(() => null);
		pastReads.forEach((p, j) => {
			past[p.i] = pastViews[j] ?? [];
		});
		let next = 0;
		const results = requests.map((r, i) =>
			past[i] ? { dataset: r.spec.name, records: past[i] } : (result.results[next++] as (typeof result.results)[number]),
		);
		// Aggregates are computed at read time (or as_of), beside the fields, from D1: timed as the record route and GraphQL time them.
		// One read per (dataset, time) for all its requests, as GraphQL reads them: a lookup of 1,000
		// one-key requests is one round of D1 statements, not 1,000 (past a Worker's per-invocation queries).
		const now = Date.now();
		const groups = new Map<string, { spec: (typeof requests)[number]["spec"]; at: number; views: RecordView[]; fields: Set<string> | undefined }>();
		requests.forEach((r, i) => {
			if (!r.spec.aggregates) return;
			const at = r.asOf ?? now;
			const id = `${r.spec.name}\u0000${at}`;
			const group = groups.get(id) ?? { spec: r.spec, at, views: [], fields: new Set<string>() };
			group.views.push(...(results[i]?.records ?? []));
			// No projection in any request: every aggregate; else the union, each request cut back to its own below.
			group.fields = r.fields && group.fields ? new Set([...group.fields, ...r.fields]) : undefined;
			groups.set(id, group);
		});
		const aggregatesRead = await Promise.all(
			[...groups.values()].map((g) =>
				ctx.timing.measure("aggregates", () => attachAggregates(c.env.DB, g.spec, g.views, g.at, g.fields ? [...g.fields] : undefined)),
			),
		);
		requests.forEach((r, i) => {
			if (!r.spec.aggregates || !r.fields) return;
			const fields = r.fields;
			for (const v of results[i]?.records ?? []) {
				if (v.value === null) continue;
				const value = v.value;
				v.value = Object.fromEntries(fields.map((f) => [f, Object.hasOwn(value, f) ? value[f] : null]));
			}
		});
		// The log (as_of) and the aggregate tiles are D1's: an answer that used them names d1 among its tiers.
		const fromD1 = past.some((p) => p) || aggregatesRead.some(Boolean);
		const tiers: TierName[] = fromD1 && !result.tiers.includes("d1") ? [...result.tiers, "d1"] : result.tiers;
		// A request that read no key (no keys asked, no hits) touched no tier: no empty headers.
		if (tiers.length) c.header("x-hotpath-tier", tiers.join(","));
		if (ctx.timing.header) c.header("server-timing", ctx.timing.header);
		c.header("cache-control", "no-store");
		return c.body(lookupResultsJson(results), 200, { "content-type": "application/json" });
	},
);
