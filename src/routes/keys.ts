/** API key administration: create (the secret is shown once), list, revoke. A limited admin key manages only keys within its datasets. */

import * as z from "zod";
import { SCOPES } from "../auth/keys";
import { requireScope } from "../auth/middleware";
import { assertManagesKey, assertMayRevokeKey, assertMintsWithin, covers } from "../auth/policy";
import { HotpathError } from "../errors";
import { parseEventTime } from "../input";
import { NAME_PATTERN } from "../registry/spec";
import { bearer, json, mount, newRouter, problems } from "./openapi";
import { BODY_LIMITS, limitBody, parseFlag, parseJsonBody } from "./validation";

const createKeySchema = z
	.object({
		name: z.string().min(1).max(200),
		scopes: z.array(z.enum(SCOPES)).min(1).openapi({ description: "admin implies read and write" }),
		// A name no dataset can have would limit the key to nothing, silently.
		datasets: z
			.array(z.string().regex(NAME_PATTERN, "must be a dataset name: lowercase letters, digits and _, starting with a letter, at most 63"))
			.min(1)
			.nullable()
			.optional()
			.openapi({ description: "Limit the key to these datasets; absent or null: all" }),
		rate_limit: z
			.object({
				requests: z.number().int().min(1).max(1_000_000),
				period_seconds: z.number().int().min(1).max(86_400),
			})
			.strict()
			.nullable()
			.optional()
			.openapi({ description: "A token bucket: `requests` per `period_seconds`, exact per isolate; past it, 429 with Retry-After" }),
		expires_at: z
			.union([z.string(), z.number()], { error: "expires_at must be RFC 3339 text or epoch milliseconds (or null for a key that does not expire)" })
			.nullable()
			.optional()
			.openapi({ description: "RFC 3339 or epoch ms, in the future; after it the key is refused (401)" }),
	})
	.strict();

const KeyInfoSchema = z
	.object({
		id: z.string(),
		name: z.string(),
		scopes: z.array(z.enum(SCOPES)),
		datasets: z.array(z.string()).nullable(),
		rate_limit: z.object({ requests: z.number().int(), period_seconds: z.number().int() }).nullable(),
		expires_at: z.string().nullable(),
		created_at: z.string(),
		revoked_at: z.string().nullable(),
	})
	.openapi("KeyInfo");

export const keyRoutes = newRouter();

const admin = requireScope("admin");

mount(
	keyRoutes,
	{
		method: "post",
		path: "/",
		summary: "Create an API key",
		description: `The secret is in this answer only; D1 keeps its SHA-256. A key limited to datasets may only create keys limited within them; a key that expires or has a rate limit may only create keys that expire no later and are limited no looser. Body at most ${BODY_LIMITS.small / 1024} KiB.`,
		tags: ["keys"],
		security: bearer,
		request: { body: { required: true, content: { "application/json": { schema: createKeySchema } } } },
		responses: {
			201: json("Created", KeyInfoSchema.extend({ key: z.string() })),
			...problems("bad_request", "validation_failed", "forbidden", "payload_too_large"),
		},
	},
	admin,
	limitBody(BODY_LIMITS.small),
	async (c) => {
		const body = await parseJsonBody(c, createKeySchema);
		// A name given twice limits the key no further: it is kept once.
		const datasets = body.datasets ? [...new Set(body.datasets)] : null;
		// A key limited to some datasets can only hand out keys limited to a subset of them.
		assertManagesKey(c.get("principal"), datasets);
		let expiresAt: number | null = null;
		if (body.expires_at !== undefined && body.expires_at !== null) {
			const now = Date.now();
			const t = parseEventTime(body.expires_at, now, Number.POSITIVE_INFINITY);
			const why = typeof t === "string" ? t.replace("event_time", "expires_at") : t <= now ? "must be in the future" : null;
			if (why) throw new HotpathError("validation_failed", `/expires_at: ${why}`, { errors: [{ pointer: "/expires_at", detail: why }] });
			expiresAt = t as number;
		}
		const rateLimit = body.rate_limit ?? null;
		assertMintsWithin(c.get("principal"), { expiresAt, rateLimit });
		const { key, info } = await c.get("services").keys.create({
			name: body.name,
			scopes: [...new Set(body.scopes)],
			datasets,
			rateLimit,
			expiresAt,
		});
		return c.json({ ...info, key }, 201);
	},
);

mount(
	keyRoutes,
	{
		method: "get",
		path: "/",
		summary: "List API keys (never their secrets)",
		description: "A key limited to datasets sees only keys whose datasets lie within its own.",
		tags: ["keys"],
		security: bearer,
		request: { query: z.object({ include_revoked: z.enum(["true", "false"]).optional() }) },
		responses: { 200: json("The keys", z.object({ keys: z.array(KeyInfoSchema) })), ...problems("bad_request", "forbidden") },
	},
	admin,
	async (c) => {
		const principal = c.get("principal");
		const keys = await c.get("services").keys.list(parseFlag(c, "include_revoked"));
		return c.json({ keys: keys.filter((k) => covers(principal, k.datasets)) });
	},
);

mount(
	keyRoutes,
	{
		method: "delete",
		path: "/{id}",
		summary: "Revoke an API key",
		description: "The key stops working on the next request in this isolate, within CONTROL_CHECK_MS elsewhere.",
		tags: ["keys"],
		security: bearer,
		request: { params: z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) }) },
		responses: { 204: { description: "Revoked" }, ...problems("forbidden", "not_found") },
	},
	admin,
	async (c) => {
		const id = c.req.param("id") as string;
		const keys = c.get("services").keys;
		const info = await keys.get(id);
		if (!info || info.revoked_at !== null) throw new HotpathError("not_found", `no active key with id "${id}"`);
		assertMayRevokeKey(c.get("principal"), id, info.datasets);
		if (!(await keys.revoke(id))) throw new HotpathError("not_found", `no active key with id "${id}"`);
		return c.body(null, 204);
	},
);
