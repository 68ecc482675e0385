/** API key administration: create (the secret is shown once), list, revoke. A limited admin key manages only keys within its datasets. */
import { Hono } from "hono";
import { z } from "zod";
import { SCOPES } from "../auth/keys";
import { requireScope } from "../auth/middleware";
import { assertManagesKey, covers } from "../auth/policy";
import type { AppEnv } from "../env";
import { HotpathError } from "../errors";
import { parseEventTime } from "../ingest/events";
import { BODY_LIMITS, limitBody, parseJsonBody } from "./validation";

const createKeySchema = z
	.object({
		name: z.string().min(1).max(200),
		scopes: z.array(z.enum(SCOPES)).min(1),
		datasets: z.array(z.string().min(1)).min(1).nullable().optional(),
		rate_limit: z
			.object({
				requests: z.number().int().min(1).max(1_000_000),
				period_seconds: z.number().int().min(1).max(86_400),
			})
			.strict()
			.nullable()
			.optional(),
		expires_at: z.union([z.string(), z.number()]).nullable().optional(),
	})
	.strict();

export const keyRoutes = new Hono<AppEnv>();

keyRoutes.use(requireScope("admin"));

keyRoutes.post("/", limitBody(BODY_LIMITS.small), async (c) => {
	const body = await parseJsonBody(c, createKeySchema);
	const datasets = body.datasets ?? null;
	// A key limited to some datasets can only hand out keys limited to a subset of them.
	assertManagesKey(c.get("principal"), datasets);
	let expiresAt: number | null = null;
	if (body.expires_at !== undefined && body.expires_at !== null) {
		const now = Date.now();
		const t = parseEventTime(body.expires_at, now, Number.POSITIVE_INFINITY);
		if (typeof t === "string")
			throw new HotpathError("validation_failed", `/expires_at: ${t.replace("event_time", "expires_at")}`, {
				errors: [{ pointer: "/expires_at", detail: t.replace("event_time", "expires_at") }],
			});
		if (t <= now)
			throw new HotpathError("validation_failed", "/expires_at: must be in the future", {
				errors: [{ pointer: "/expires_at", detail: "must be in the future" }],
			});
		expiresAt = t;
	}
	const { key, info } = await c.get("services").keys.create({
		name: body.name,
		scopes: [...new Set(body.scopes)],
		datasets,
		rateLimit: body.rate_limit ?? null,
		expiresAt,
	});
	return c.json({ ...info, key }, 201);
});

keyRoutes.get("/", async (c) => {
	const principal = c.get("principal");
	const keys = await c.get("services").keys.list(c.req.query("include_revoked") === "true");
	// A limited admin key sees only the keys whose datasets lie within its own.
	return c.json({ keys: keys.filter((k) => covers(principal, k.datasets)) });
});

keyRoutes.delete("/:id", async (c) => {
	const id = c.req.param("id");
	const keys = c.get("services").keys;
	const info = await keys.get(id);
	if (!info || info.revoked_at !== null) throw new HotpathError("not_found", `no active key with id "${id}"`);
	assertManagesKey(c.get("principal"), info.datasets);
	if (!(await keys.revoke(id))) throw new HotpathError("not_found", `no active key with id "${id}"`);
	return c.body(null, 204);
});
