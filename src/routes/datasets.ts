/** The registry's HTTP surface: create or update a dataset spec, list specs, show one. */
import { Hono } from "hono";
import { requireScope } from "../auth/middleware";
import { assertDatasets, mayAccess } from "../auth/policy";
import type { AppEnv } from "../env";
import { HotpathError } from "../errors";
import { NAME_PATTERN, normaliseSpec, specInputSchema } from "../registry/spec";
import { BODY_LIMITS, limitBody, parseJsonBody } from "./validation";

export const datasetRoutes = new Hono<AppEnv>();

datasetRoutes.put("/:name", requireScope("admin"), limitBody(BODY_LIMITS.spec), async (c) => {
	const name = c.req.param("name");
	if (!NAME_PATTERN.test(name)) {
		throw new HotpathError("bad_request", `dataset name "${name}" is invalid: lowercase letters, digits and _, starting with a letter, at most 63`);
	}
	assertDatasets(c.get("principal"), [name]);
	const input = await parseJsonBody(c, specInputSchema);
	if (input.name !== undefined && input.name !== name) {
		throw new HotpathError("bad_request", `body name "${input.name}" does not match the path's "${name}"`, {
			errors: [{ pointer: "/name", detail: "must match the path" }],
		});
	}
	const { spec, created } = await c.get("services").registry.put(normaliseSpec(name, input));
	return c.json(spec, created ? 201 : 200);
});

datasetRoutes.get("/", requireScope("read"), async (c) => {
	const principal = c.get("principal");
	const all = [...(await c.get("services").registry.all()).values()];
	return c.json({ datasets: all.filter((d) => mayAccess(principal, d.name)) });
});

datasetRoutes.get("/:name", requireScope("read"), async (c) => {
	const name = c.req.param("name");
	assertDatasets(c.get("principal"), [name]);
	return c.json(await c.get("services").registry.require(name));
});
