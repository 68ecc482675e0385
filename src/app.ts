/** Builds the Hono app: services, middleware order, routes, the OpenAPI document and its viewer, and the one error handler. */
import { Scalar } from "@scalar/hono-api-reference";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import * as z from "zod";
import type { AppEnv } from "./env";
import { HotpathError } from "./errors";
import { nextRequestId } from "./observability/request-id";
import { adminRoutes } from "./routes/admin";
import { datasetRoutes } from "./routes/datasets";
import { eventRoutes } from "./routes/events";
import { graphqlRoutes } from "./routes/graphql";
import { healthRoutes } from "./routes/health";
import { historyRoutes } from "./routes/history";
import { importRoutes } from "./routes/import";
import { ingestRoutes } from "./routes/ingest";
import { keyRoutes } from "./routes/keys";
import { lookupRoutes } from "./routes/lookup";
import { type ApiRouter, json, keylessProblems, newRouter, openApiDocument } from "./routes/openapi";
import { instancePath, onError, problemResponse } from "./routes/problem";
import { rebuildRoutes } from "./routes/rebuild";
import { recordRoutes } from "./routes/records";
import { searchRoutes } from "./routes/search";
import { badlyEncodedPathSegment, repeatedQueryParam } from "./routes/validation";
import { type Services, servicesFor } from "./services";

declare module "hono" {
	interface ContextVariableMap {
		services: Services;
	}
}

const DOCUMENT = {
	openapi: "3.1.0",
	info: {
		title: "Hotpath",
		version: "1",
		description:
			"Cache-first serving of precomputed AI data (features, predictions, embeddings, recommendations) by entity key. Every error is application/problem+json (RFC 9457). Auth: `Authorization: Bearer <key>`. A path below asked with a method it does not list is a 405 problem with an Allow header; a path not below is a 404 problem.",
	},
	servers: [{ url: "/" }],
};

// The routes the app answers itself (outside the mounted routers, /ping before any middleware), for the document.
const appRoutes = newRouter();
appRoutes.described.push(
	{
		method: "get",
		path: "/ping",
		summary: "Liveness: `pong`, no auth, no I/O",
		responses: { 200: { description: "pong", content: { "text/plain": { schema: z.string() } } } },
	},
	{
		method: "get",
		path: "/",
		summary: "Where the document, the docs and the health check are (no auth)",
		responses: { ...keylessProblems(), 200: json("Links", z.object({ name: z.string(), openapi: z.string(), docs: z.string(), health: z.string() })) },
	},
	{
		method: "get",
		path: "/openapi.json",
		summary: "This OpenAPI 3.1 document (no auth)",
		responses: { ...keylessProblems(), 200: json("The document", z.record(z.string(), z.unknown()).openapi({ description: "An OpenAPI 3.1 document" })) },
	},
	{
		method: "get",
		path: "/docs",
		summary: "The document rendered for a browser (no auth)",
		responses: { ...keylessProblems(), 200: { description: "An HTML page", content: { "text/html": { schema: z.string() } } } },
	},
);

/** A documented path (`/v1/datasets/{name}`) as a pattern matching the request paths it stands for. */
const pathPattern = (path: string) => new RegExp(`^${path.replaceAll(".", "\\.").replaceAll(/\{[^}]+\}/g, "[^/]+")}$`);

export function createApp() {
	const app = new Hono<AppEnv>();

	// Liveness: a constant answer with no middleware and no I/O. Also the benchmark's baseline route.
	app.get("/ping", (c) => c.text("pong"));

	app.use(requestId({ generator: nextRequestId }));
	app.use(async function initServices(c, next) {
		c.set("services", servicesFor(c.env));
		await next();
	});

	app.use(async function wellEncodedPath(c, next) {
		const segment = badlyEncodedPathSegment(c.req.url);
		if (segment !== undefined) {
			const shown = segment.length > 100 ? `${segment.slice(0, 100)}...` : segment;
			const why = `path segment "${shown}" is not percent-encoded UTF-8: encode each byte of its UTF-8 as %XX, and a "%" itself as %25`;
			throw new HotpathError("bad_request", why, { errors: [{ pointer: shown, detail: "not percent-encoded UTF-8" }] });
		}
		await next();
	});

	app.use(async function singleQueryValues(c, next) {
		const repeated = repeatedQueryParam(c.req.url);
		if (repeated !== undefined) {
			const why = `query parameter "${repeated.slice(0, 100)}" is given more than once; give each option once`;
			throw new HotpathError("bad_request", why, { errors: [{ pointer: repeated.slice(0, 100), detail: "given more than once" }] });
		}
		await next();
	});

	app.get("/", (c) => c.json({ name: "hotpath", openapi: "/openapi.json", docs: "/docs", health: "/healthz" }));
	const mounted: (readonly [string, ApiRouter])[] = [
		["/healthz", healthRoutes],
		["/v1/datasets", datasetRoutes],
		["/v1/datasets", recordRoutes],
		["/v1/datasets", importRoutes],
		["/v1/datasets", historyRoutes],
		["/v1/datasets", ingestRoutes],
		["/v1/datasets", searchRoutes],
		["/v1/events", eventRoutes],
		["/v1/lookup", lookupRoutes],
		["/v1/keys", keyRoutes],
		["/v1", rebuildRoutes],
		["/v1", adminRoutes],
		["/graphql", graphqlRoutes],
	];
	for (const [prefix, router] of mounted) app.route(prefix, router);

	// The document is made once per isolate, on first request, from the routes' own schemas.
	let document: unknown;
	app.get("/openapi.json", (c) => {
		document ??= openApiDocument(DOCUMENT, [...mounted, ["", appRoutes]]);
		return c.json(document);
	});
	app.get("/docs", Scalar({ url: "/openapi.json", pageTitle: "Hotpath API" }));

	// A known path asked with another method is a 405 naming the methods it takes, not a 404 that reads as "no such path".
	const routes = [...mounted, ["", appRoutes] as const].flatMap(([prefix, router]) =>
		router.described.map((r) => ({ method: r.method.toUpperCase(), path: pathPattern(r.path === "/" ? prefix || "/" : prefix + r.path) })),
	);
	app.notFound((c) => {
		const allow = [...new Set(routes.filter((r) => r.path.test(c.req.path)).map((r) => r.method))];
		if (allow.includes("GET")) allow.push("HEAD");
		if (allow.length && !allow.includes(c.req.method)) {
			return problemResponse(
				new HotpathError("method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; it takes ${allow.join(", ")}`),
				instancePath(c),
				c.get("requestId"),
				{ allow: allow.join(", ") },
			);
		}
		return problemResponse(new HotpathError("not_found", `no route for ${c.req.method} ${c.req.path}`), instancePath(c), c.get("requestId"));
	});
	app.onError(onError);

	return app;
}
