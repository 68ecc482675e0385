/** Builds the Hono app: services, middleware order, routes, and the one error handler. */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./env";
import { HotpathError } from "./errors";
import { nextRequestId } from "./observability/request-id";
import { adminRoutes } from "./routes/admin";
import { datasetRoutes } from "./routes/datasets";
import { eventRoutes } from "./routes/events";
import { healthRoutes } from "./routes/health";
import { keyRoutes } from "./routes/keys";
import { lookupRoutes } from "./routes/lookup";
import { onError, problemResponse } from "./routes/problem";
import { recordRoutes } from "./routes/records";
import { type Services, servicesFor } from "./services";

declare module "hono" {
	interface ContextVariableMap {
		services: Services;
	}
}

export function createApp() {
	const app = new Hono<AppEnv>();

	// Liveness: a constant answer with no middleware and no I/O. Also the benchmark's baseline route.
	app.get("/ping", (c) => c.text("pong"));

	app.use(requestId({ generator: nextRequestId }));
	app.use(async function initServices(c, next) {
		c.set("services", servicesFor(c.env));
		await next();
	});

	app.get("/", (c) => c.json({ name: "hotpath", docs: "https://github.com/hotpath/hotpath#readme", health: "/healthz" }));
	app.route("/healthz", healthRoutes);
	app.route("/v1/datasets", datasetRoutes);
	app.route("/v1/datasets", recordRoutes);
	app.route("/v1/events", eventRoutes);
	app.route("/v1/lookup", lookupRoutes);
	app.route("/v1/keys", keyRoutes);
	app.route("/v1", adminRoutes);

	app.notFound((c) => problemResponse(new HotpathError("not_found", `no route for ${c.req.method} ${c.req.path}`), c.req.path, c.get("requestId")));
	app.onError(onError);

	return app;
}
