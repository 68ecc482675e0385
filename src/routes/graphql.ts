/**
 * GraphQL over HTTP: POST /graphql, GET /graphql for queries, and GraphiQL for a browser. Auth,
 * scope, rate limits and the body limit answer as on every route (problem+json); past them, every
 * answer is a GraphQL response. With `Accept: application/graphql-response+json` a request that
 * did not run (parse, validation, limits, variables) is a 400; with application/json (the default)
 * it is a 200, as the GraphQL-over-HTTP spec asks. An operation that ran is a 200 even when a
 * field failed (a tier outage is an error with code UNAVAILABLE and data null): never a 5xx.
 */
import type { Context } from "hono";
import * as z from "zod";
import { authenticate, requireScope } from "../auth/middleware";
import { assertScope } from "../auth/policy";
import type { AppEnv } from "../env";
import { HotpathError } from "../errors";
import { ReadBatch } from "../graphql/batch";
import { requestError } from "../graphql/errors";
import { type GraphqlBody, type GraphqlOutcome, type GraphqlParams, runGraphql } from "../graphql/execute";
import { GRAPHIQL_HTML } from "../graphql/graphiql";
import { MAX_COST, MAX_DEPTH, MAX_KEYS, MAX_READ_FIELDS, MAX_TOKENS } from "../graphql/limits";
import { responseJson } from "../graphql/render";
import { schemaFor } from "../graphql/schema";
import { TIER_ORDER } from "../serving/tier";
import { bearer, mount, newRouter, problems } from "./openapi";
import { readContext } from "./read-context";
import { BODY_LIMITS, limitBody, readBodyText } from "./validation";

export const graphqlRoutes = newRouter();

const GRAPHQL_RESPONSE = "application/graphql-response+json";

const GraphqlResponseSchema = z
	.object({
		data: z.record(z.string(), z.unknown()).nullable().optional().openapi({ description: "Absent when the operation did not run" }),
		errors: z
			.array(
				z.object({
					message: z.string(),
					locations: z.array(z.object({ line: z.number(), column: z.number() })).optional(),
					path: z.array(z.union([z.string(), z.number()])).optional(),
					extensions: z
						.object({ code: z.string().openapi({ example: "TOO_COMPLEX" }) })
						.catchall(z.unknown())
						.openapi({
							description:
								"code: GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, OPERATION_RESOLUTION_FAILURE, BAD_REQUEST, BAD_USER_INPUT, TOO_COMPLEX, UNAVAILABLE (with retry_after_seconds), INTERNAL_SERVER_ERROR",
						}),
				}),
			)
			.optional(),
	})
	.openapi("GraphQLResponse");

type MediaTypes = Record<string, { schema: z.ZodType }>;

/** The responses of both methods; `okMedia`: other media types a 200 may have. */
const graphqlResponses = (extra: Record<number, { description: string; content?: MediaTypes }> = {}, okMedia: MediaTypes = {}) => {
	const routeProblems = problems("forbidden") as Record<number, { description: string; content: MediaTypes }>;
	return {
		...extra,
		...routeProblems,
		200: {
			description:
				"The operation's result (data, and errors of fields that failed); with Accept: application/json also a request that did not run (errors only)",
			content: { "application/json": { schema: GraphqlResponseSchema }, [GRAPHQL_RESPONSE]: { schema: GraphqlResponseSchema }, ...okMedia },
			headers: {
				"Cache-Control": { description: "no-store for an operation's result; public, max-age=300 for the GraphiQL page", schema: { type: "string" as const } },
			},
		},
		// Checks made before the request is read as GraphQL (a query parameter given twice) answer a problem.
		400: {
			description: `Not a GraphQL request (bad JSON, no query); with Accept: ${GRAPHQL_RESPONSE} also a request that did not run (errors only); or a problem: ${routeProblems[400]?.description}`,
			content: {
				[GRAPHQL_RESPONSE]: { schema: GraphqlResponseSchema },
				"application/json": { schema: GraphqlResponseSchema },
				...routeProblems[400]?.content,
			},
		},
	};
};

const limitsText = `Limits: ${MAX_TOKENS} tokens, depth ${MAX_DEPTH}, ${MAX_KEYS} keys and a cost of ${MAX_COST} per operation (a records field costs its keys times the fields selected under it, a search field its page size times the same, its hits counting as keys), and ${MAX_READ_FIELDS} history and search fields: past one, an error with extensions.code TOO_COMPLEX.`;

const badRequest = (message: string): GraphqlOutcome => ({ kind: "request_error", body: { errors: [requestError("BAD_REQUEST", message).toJSON()] } });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The request's parameters, from a JSON body or a query string, or why they are not a GraphQL request. */
function graphqlParams(raw: { query: unknown; variables: unknown; operationName: unknown }): GraphqlParams | string {
	if (typeof raw.query !== "string" || !raw.query.trim()) return "no query: send {query, variables?, operationName?}";
	if (raw.variables !== undefined && raw.variables !== null && !isObject(raw.variables)) return "variables must be a JSON object";
	if (raw.operationName !== undefined && raw.operationName !== null && typeof raw.operationName !== "string") return "operationName must be a string";
	// An empty operationName names no operation (names are never empty): HTML forms and some clients
	// send `operationName=` for "none".
	const operationName = (raw.operationName as string | null | undefined) || null;
	return { query: raw.query, variables: (raw.variables as Record<string, unknown> | null) ?? {}, operationName };
}

/** Runs a request and renders the answer, with the read path's headers. */
async function respond(c: Context<AppEnv>, params: GraphqlParams | string, method: "GET" | "POST"): Promise<Response> {
	const modern = (c.req.header("accept") ?? "").includes(GRAPHQL_RESPONSE);
	const headers: Record<string, string> = {
		"content-type": `${modern ? GRAPHQL_RESPONSE : "application/json"}; charset=utf-8`,
		"cache-control": "no-store",
		vary: "Accept",
	};
	if (typeof params === "string") return c.body(JSON.stringify(badRequest(params).body), 400, headers);

	const services = c.get("services");
	const schema = schemaFor(await services.registry.all(), c.get("principal"));
	const ctx = readContext(c);
	const batch = new ReadBatch(services.reader, c.env.DB, ctx);
	const outcome = await runGraphql(schema, params, method, { batch, services });

	if (batch.tiers.size) headers["x-hotpath-tier"] = TIER_ORDER.filter((t) => batch.tiers.has(t)).join(",");
	if (ctx.timing.header) headers["server-timing"] = ctx.timing.header;
	const retry = outcome.body.errors?.find((e) => typeof e.extensions?.retry_after_seconds === "number")?.extensions?.retry_after_seconds as number | undefined;
	if (retry !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(retry)));
	let status = 200;
	if (outcome.kind === "method_not_allowed") {
		status = 405;
		headers.allow = "POST";
	} else if (outcome.kind === "request_error" && modern) status = 400;
	return c.body(jsonBody(outcome.body), status as 200, headers);
}

/** The body as JSON text; `data` first, as the spec's examples have it (records fields already written as JSON are spliced in). */
const jsonBody = (body: GraphqlBody) => responseJson(body);

mount(
	graphqlRoutes,
	{
		method: "post",
		path: "/",
		summary: "Run a GraphQL query",
		description: `Body: {query, variables?, operationName?} (JSON, at most ${BODY_LIMITS.lookup / (1024 * 1024)} MiB: 413 before parsing). The schema is generated from the registry: per dataset, a field reading records by key (item_scores(keys, fields, max_staleness, if_stale, as_of)) and one reading a key's history (item_scores_history), and for a searchable dataset item_scores_search(q, filter, sort, vector, limit, cursor, fields, highlight, max_staleness, if_stale), answered as POST /v1/datasets/:name/search answers; a key limited to datasets sees only those. Every records field of an operation is read in one pass through the tiers. ${limitsText}`,
		tags: ["graphql"],
		security: bearer,
		request: {
			body: {
				required: true,
				content: {
					"application/json": {
						schema: z.object({
							query: z.string(),
							variables: z.record(z.string(), z.unknown()).nullable().optional(),
							operationName: z.string().nullable().optional(),
						}),
					},
				},
			},
		},
		responses: graphqlResponses(problems("payload_too_large") as Record<number, { description: string }>),
	},
	requireScope("read"),
	limitBody(BODY_LIMITS.lookup),
	async (c) => {
		let text: string;
		try {
			text = await readBodyText(c);
		} catch (e) {
			if (e instanceof HotpathError && e.code === "bad_request") return respond(c, e.message, "POST");
			throw e;
		}
		let raw: unknown;
		try {
			raw = JSON.parse(text);
		} catch (e) {
			// A bare query document (the old application/graphql media type) is not JSON: say what to send instead.
			const bare = /^application\/graphql\b(?!-)/i.test(c.req.header("content-type") ?? "");
			return respond(
				c,
				bare
					? 'Content-Type application/graphql is not supported: send JSON {"query": "...", "variables"?, "operationName"?} with Content-Type application/json'
					: `body is not valid JSON: ${(e as Error).message}`,
				"POST",
			);
		}
		if (!isObject(raw)) return respond(c, "body must be a JSON object {query, variables?, operationName?} (batches of operations are not supported)", "POST");
		return respond(c, graphqlParams({ query: raw.query, variables: raw.variables, operationName: raw.operationName }), "POST");
	},
);

mount(
	graphqlRoutes,
	{
		method: "get",
		path: "/",
		summary: "Run a GraphQL query from the query string, or open GraphiQL",
		description: `query, variables (JSON) and operationName in the query string (the worker reads at most ${BODY_LIMITS.lookup / (1024 * 1024)} MiB, a 414 problem past it, but the platform refuses longer URLs first: 16 KB on Cloudflare, about 64 KB under wrangler dev, each with a plain-text 414; POST longer queries); queries only (anything else is a 405). A browser (Accept: text/html) without a query gets GraphiQL, loaded from unpkg; put your key in its Headers tab. ${limitsText}`,
		tags: ["graphql"],
		security: [{ bearer: ["read"] }],
		request: {
			query: z.object({
				query: z.string().optional(),
				variables: z.string().optional().openapi({ description: "JSON object" }),
				operationName: z.string().optional(),
			}),
		},
		responses: graphqlResponses(
			{
				405: { description: "Not a query (GET runs queries only)", content: { "application/json": { schema: GraphqlResponseSchema } } },
				...(problems("uri_too_long") as Record<number, { description: string }>),
			},
			{ "text/html": { schema: z.string().openapi({ description: "GraphiQL: for a browser (Accept: text/html) without a query; no key needed" }) } },
		),
	},
	async (c) => {
		// The query string is GET's body: held to the POST body's limit before any of it is decoded or parsed.
		const url = c.req.url;
		const q = url.indexOf("?");
		if (q >= 0 && url.length - q - 1 > BODY_LIMITS.lookup) {
			throw new HotpathError(
				"uri_too_long",
				`the query string is larger than ${BODY_LIMITS.lookup / (1024 * 1024)} MiB, the limit of GET /graphql (the same as a POST body's); it was not read`,
			);
		}
		const query = c.req.query("query");
		if (query === undefined && (c.req.header("accept") ?? "").includes("text/html")) {
			// The same URL answers API GETs: a shared cache must key the page on Accept, or it could hand the HTML to a client asking for JSON.
			return c.html(GRAPHIQL_HTML, 200, { "cache-control": "public, max-age=300", vary: "Accept" });
		}
		// As requireScope("read"), inline: GraphiQL above needs no key.
		const principal = await authenticate(c.get("services"), c.req.header("authorization"));
		assertScope(principal, "read");
		c.set("principal", principal);
		const rawVariables = c.req.query("variables");
		let variables: unknown;
		try {
			variables = rawVariables ? JSON.parse(rawVariables) : undefined;
		} catch (e) {
			return respond(c, `variables is not valid JSON: ${(e as Error).message}`, "GET");
		}
		return respond(c, graphqlParams({ query, variables, operationName: c.req.query("operationName") }), "GET");
	},
);
