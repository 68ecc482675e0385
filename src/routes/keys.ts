/** API key administration: create (the secret is shown once), list, revoke. */
import { Hono } from "hono";
import { z } from "zod";
import { SCOPES } from "../auth/keys";
import { assertDatasetAccess, requireScope } from "../auth/middleware";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { parseJsonBody } from "./validation";

const createKeySchema = z
	.object({
		name: z.string().min(1).max(200),
		scopes: z.array(z.enum(SCOPES)).min(1),
		datasets: z.array(z.string().min(1)).min(1).nullable().optional(),
	})
	.strict();

export const keyRoutes = new Hono<AppEnv>();

keyRoutes.use(requireScope("admin"));

keyRoutes.post("/", async (c) => {
	const body = await parseJsonBody(c, createKeySchema);
	// A key limited to some datasets can only hand out keys limited to a subset of them.
	const limit = c.get("principal").datasets;
	if (limit) {
		if (!body.datasets)
			throw new ApiError("forbidden", `this key is limited to dataset(s) ${limit.join(", ")}; a key it creates must list datasets within them`);
		assertDatasetAccess(c.get("principal"), body.datasets);
	}
	const { key, info } = await c.get("services").keys.create({ name: body.name, scopes: [...new Set(body.scopes)], datasets: body.datasets ?? null });
	return c.json({ ...info, key }, 201);
});

keyRoutes.get("/", async (c) => c.json({ keys: await c.get("services").keys.list(c.req.query("include_revoked") === "true") }));

keyRoutes.delete("/:id", async (c) => {
	const id = c.req.param("id");
	if (!(await c.get("services").keys.revoke(id))) throw new ApiError("not_found", `no active key with id "${id}"`);
	return c.body(null, 204);
});
