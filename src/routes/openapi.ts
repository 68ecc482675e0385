/**
 * The OpenAPI description of the HTTP surface, written once, beside each route: `mount` registers a
 * route's description (from the same zod schemas its handler validates with) and mounts its
 * handlers. Bodies are validated by the handlers themselves, with those schemas, so every failure
 * is this API's problem+json and a JSON body is read whatever its Content-Type.
 */
import { extendZodWithOpenApi, OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig, type RouteConfig } from "@asteasolutions/zod-to-openapi";
import { type Handler, Hono, type MiddlewareHandler } from "hono";
import * as z from "zod";
import type { AppEnv } from "../env";
import { type ErrorCode, HotpathError } from "../errors";
import { problemStatus } from "./problem";

// Adds `.openapi()` to zod's types. Only ZodType is handed over, and zod is imported as a namespace
// that is only ever read by member: a `z` object used as a value (as @hono/zod-openapi passes it)
// makes the bundler keep every export of zod, 267 KB of error-message locales among them, which
// took the worker past the 1 MiB bundle limit.
extendZodWithOpenApi({ ZodType: z.ZodType } as unknown as Parameters<typeof extendZodWithOpenApi>[0]);

/** A group of routes and their OpenAPI descriptions, mounted under a prefix by the app. */
export class ApiRouter extends Hono<AppEnv> {
	readonly described: RouteConfig[] = [];
}

export const newRouter = () => new ApiRouter();

/**
 * Refuses query parameters a route does not take, after the route's own middleware (auth first):
 * a misspelt option (`max_stalness=1`) would otherwise be ignored, and the answer read as if the
 * caller had asked for nothing, a value "present" to the dataset's ttl instead of to its bound.
 */
function onlyQueryParams(names: readonly string[]): MiddlewareHandler<AppEnv> {
	const known = new Set(names);
	return async function onlyQueryParams(c, next) {
		if (c.req.url.includes("?")) {
			const unknown = Object.keys(c.req.query()).filter((n) => !known.has(n));
			if (unknown.length) {
				const list = unknown.map((n) => `"${n.slice(0, 100)}"`).join(", ");
				const takes = names.length ? `it takes ${names.join(", ")}` : "it takes none (its options are in the body)";
				throw new HotpathError("bad_request", `unknown query parameter(s) ${list}; ${takes.replace(/^it/, "this route")}`, {
					errors: unknown.map((n) => ({ pointer: n.slice(0, 100), detail: `not a parameter of this route; ${takes}` })),
				});
			}
		}
		await next();
	};
}

/**
 * Refuses query parameters named like members of a route's JSON body. Such a route reads its
 * options from the body and ignores the query string, so `POST /v1/lookup?max_staleness=0` would
 * answer as if no bound had been asked, and `POST /v1/keys?expires_at=...` make a key that never
 * expires. Other parameters (a cache-buster) are still ignored, as on every route that takes none.
 */
function notInQuery(members: readonly string[]): MiddlewareHandler<AppEnv> {
	const inBody = new Set(members);
	return async function notInQuery(c, next) {
		if (c.req.url.includes("?")) {
			const misplaced = Object.keys(c.req.query()).filter((n) => inBody.has(n));
			if (misplaced.length) {
				const list = misplaced.map((n) => `"${n}"`).join(", ");
				throw new HotpathError("bad_request", `${list} given in the query string: this route reads its options from the JSON body; put it there`, {
					errors: misplaced.map((n) => ({ pointer: n, detail: "an option of the JSON body, not of the query string" })),
				});
			}
		}
		await next();
	};
}

/**
 * Registers `route` for the OpenAPI document and mounts its middleware and handler. A route that
 * declares query parameters takes only those (GraphQL's GET excepted: the GraphQL-over-HTTP
 * convention lets clients send more, such as extensions); one that takes a JSON object as its body
 * refuses the body's members in its query string; one that takes a list (events, import rows,
 * log records) and declares no parameters refuses any: a write that ignored `?op=patch` would
 * replace whole values.
 */
export function mount(app: ApiRouter, route: RouteConfig, ...handlers: [...MiddlewareHandler<AppEnv>[], Handler<AppEnv>]): void {
	const described = withScope(route, handlers);
	const keyed = Boolean(described.security?.length);
	app.described.push(keyed ? withPrivateAnswers(described) : described);
	const query = route.request?.query;
	const names = query instanceof z.ZodObject && !route.tags?.includes("graphql") ? Object.keys(query.shape) : undefined;
	const media = route.request?.body?.content?.["application/json"];
	const body = media && "schema" in media ? media.schema : undefined;
	const members = !names && body instanceof z.ZodObject && !route.tags?.includes("graphql") ? Object.keys(body.shape) : undefined;
	const list = !names && !members && route.request?.body && !route.tags?.includes("graphql");
	const queryCheck = names ? onlyQueryParams(names) : members ? notInQuery(members) : list ? onlyQueryParams([]) : undefined;
	const checked = queryCheck ? [...handlers.slice(0, -1), queryCheck, handlers[handlers.length - 1]] : handlers;
	const chain = keyed ? [privateAnswers, ...checked] : checked;
	app.on(route.method.toUpperCase(), route.path.replaceAll(/\{([^}]+)\}/g, ":$1"), ...(chain as [Handler<AppEnv>]));
}

/** What an answer that needs a key tells caches when its route sets no policy of its own. */
const PRIVATE_ANSWER_CACHE_CONTROL = "private, no-store";

/**
 * An answer that needs a key depends on that key (its datasets, its scope) and may change on the
 * next request (a spec applied, a key revoked, a letter replayed): no shared cache or browser may
 * keep it, or reuse it for another key. Record reads set their own freshness-derived policy.
 */
const privateAnswers: MiddlewareHandler<AppEnv> = async function privateAnswers(c, next) {
	await next();
	if (!c.res.headers.has("cache-control")) c.res.headers.set("cache-control", PRIVATE_ANSWER_CACHE_CONTROL);
};

/** The route's description with privateAnswers' Cache-Control declared on each success that declares no policy of its own. */
function withPrivateAnswers(route: RouteConfig): RouteConfig {
	const responses = Object.fromEntries(
		Object.entries(route.responses).map(([status, response]) => {
			const r = response as ResponseConfig;
			if (!status.startsWith("2") || Object.keys(r.headers ?? {}).some((h) => h.toLowerCase() === "cache-control")) return [status, response];
			const cacheControl = {
				description: "private, no-store (or no-store): the answer depends on the key and may change on the next request, so no cache may keep it",
				schema: { type: "string" as const },
			};
			return [status, { ...r, headers: { ...r.headers, "Cache-Control": cacheControl } }];
		}),
	);
	return { ...route, responses };
}

/**
 * The route's description with the scope its key needs: the scope of its `requireScope` middleware,
 * else one the route declares in `security` (a route that checks it inline), stated as the
 * bearer scheme's role (OpenAPI 3.1) and in the description.
 */
function withScope(route: RouteConfig, handlers: readonly unknown[]): RouteConfig {
	const declared = route.security?.flatMap((s) => s.bearer ?? []) ?? [];
	const scope = handlers.map((h) => (h as { scope?: unknown }).scope).find((s) => typeof s === "string") ?? declared[0];
	if (typeof scope !== "string") return route;
	const needs = `Needs a key with the \`${scope}\` scope${scope === "admin" ? "" : " (or `admin`)"}.`;
	return { ...route, security: [{ bearer: [scope] }], description: route.description ? `${needs} ${route.description}` : needs };
}

type OpenApiDocumentConfig = Parameters<OpenApiGeneratorV31["generateDocument"]>[0];

/** The OpenAPI 3.1 document of routers mounted under their prefixes. */
export function openApiDocument(config: OpenApiDocumentConfig, mounted: readonly (readonly [prefix: string, router: ApiRouter])[]): unknown {
	const registry = new OpenAPIRegistry();
	registry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "An API key" });
	for (const [prefix, router] of mounted) {
		for (const route of router.described) registry.registerPath({ ...route, path: route.path === "/" ? prefix || "/" : prefix + route.path });
	}
	return new OpenApiGeneratorV31(registry.definitions).generateDocument(config);
}

export const ProblemSchema = z
	.object({
		type: z.string().openapi({ example: "https://hotpath.dev/problems/validation-failed" }),
		title: z.string().openapi({ example: "Validation failed" }),
		status: z.number().int(),
		detail: z.string().openapi({ description: "What was wrong and where" }),
		instance: z.string().optional(),
		errors: z
			.array(
				z.object({
					pointer: z.string().openapi({ description: "JSON pointer into the body, or a parameter name", example: "/requests/0/keys/3" }),
					detail: z.string(),
				}),
			)
			.optional()
			.openapi({ description: "One entry per bad item" }),
		request_id: z.string().optional(),
	})
	.openapi("Problem", { description: "RFC 9457 problem details (application/problem+json)" });

const problemText: Record<ErrorCode, string> = {
	bad_request: "Malformed request: bad JSON, a body that is not UTF-8, a bad parameter or header, or a query parameter given more than once",
	validation_failed: "The body does not match the schema, or no item of a batch is valid; `errors` lists each",
	unauthorized: "Missing, malformed, unknown, revoked or expired key (with a Bearer challenge)",
	forbidden: "The key lacks the scope, or is limited to other datasets (the detail names them)",
	not_found: "No such dataset, key, dead letter or route",
	record_not_found: "The dataset has no such record (type .../record-not-found): a miss, not a bad request",
	method_not_allowed: "Method not allowed",
	conflict: "An incompatible change, listing every reason",
	payload_too_large: "The body is over this route's byte limit (checked before it is read) or holds too many items",
	uri_too_long: "The query string is over this route's byte limit (checked before it is read)",
	unsupported_media_type: "Content-Type is neither JSON nor NDJSON, or the body has a Content-Encoding (bodies are read as sent, uncompressed)",
	rate_limited: "The key's rate_limit is used up; Retry-After says when to retry",
	unavailable:
		"No tier could answer, or the queue or D1 refused (while D1 is down, a key this isolate has not seen cannot be checked); Retry-After says when to retry",
	internal: "Unexpected server error (logged)",
};

/**
 * Problem responses for a route that takes a key: every such route may answer 401, 429 and 503 (a
 * key must be checked in D1, which may be down), and 400 (a query parameter given twice, refused on
 * every route); pass the other codes it can give.
 */
export function problems(...codes: ErrorCode[]): RouteConfig["responses"] {
	// A route that takes a body (it has a byte limit) refuses one with a Content-Encoding: 415.
	const bodyCodes: ErrorCode[] = codes.includes("payload_too_large") ? ["unsupported_media_type"] : [];
	return problemResponses(["unauthorized", "rate_limited", "unavailable", ...codes, ...bodyCodes]);
}

/** Problem responses for a route that takes no key: 400 (a query parameter given twice) and `codes`. */
export function keylessProblems(...codes: ErrorCode[]): RouteConfig["responses"] {
	return problemResponses(codes);
}

function problemResponses(codes: ErrorCode[]): RouteConfig["responses"] {
	const byStatus = new Map<number, string[]>();
	for (const code of new Set<ErrorCode>(["bad_request", ...codes])) {
		const status = problemStatus[code];
		byStatus.set(status, [...(byStatus.get(status) ?? []), problemText[code]]);
	}
	const out: RouteConfig["responses"] = {};
	for (const [status, texts] of byStatus) {
		const headers = problemHeaderDocs[status];
		out[status] = { description: texts.join("; or: "), ...(headers ? { headers } : {}), content: { "application/problem+json": { schema: ProblemSchema } } };
	}
	return out;
}

const retryAfter = { "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" as const, minimum: 1 } } };

/** The headers a problem of a status carries (problemHeaders in problem.ts), so a client generated from the document can read them. */
const problemHeaderDocs: Record<number, NonNullable<ResponseConfig["headers"]>> = {
	401: {
		"WWW-Authenticate": {
			description: 'The Bearer challenge (error="invalid_token" for a key that is unknown, revoked or expired)',
			schema: { type: "string" },
		},
	},
	429: retryAfter,
	503: retryAfter,
};

/** A JSON response of `schema`. */
export const json = (description: string, schema: z.ZodType) => ({ description, content: { "application/json": { schema } } });

export const bearer = [{ bearer: [] }];

export const datasetParam = z.string().openapi({ param: { name: "name", in: "path" }, description: "Dataset name", example: "demo_users" });
export const recordKeyParam = z.string().openapi({ param: { name: "key", in: "path" }, description: "Entity key (at most 400 UTF-8 bytes)", example: "u1" });
