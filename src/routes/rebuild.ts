/** Rebuild: POST/GET /v1/datasets/:name/rebuild, and POST /v1/rebuild for every dataset. */
import type { Context } from "hono";
import * as z from "zod";
import { requireScope } from "../auth/middleware";
import { assertDatasets, assertUnlimitedAdmin } from "../auth/policy";
import type { AppEnv } from "../env";
import { HotpathError } from "../errors";
import { type RebuildMode, rebuildStatus, startDatasetRebuild } from "../ingest/rebuild";
import type { RebuildRow } from "../storage/rebuilds";
import { bearer, datasetParam, json, mount, newRouter, problems } from "./openapi";

const RebuildSchema = z
	.object({
		dataset: z.string(),
		mode: z.enum(["refill", "drop"]),
		status: z.enum(["idle", "running", "done", "failed"]),
		keys_done: z.number().int(),
		pages_done: z.number().int(),
		total_keys: z.number().int().openapi({ description: "Records (tombstones included) when the run started" }),
		started_at: z.string().nullable(),
		finished_at: z.string().nullable(),
		started: z.boolean().optional().openapi({
			description: "POST answers only: true when this request started the run, false when it answered the run already running",
		}),
		error: z.string().optional().openapi({
			description:
				"Failed: why. Running: the failure of a page being retried (a tier timing out or down); the run waits for the tier, sending the page again with a back-off up to a minute, and fails once one page has been failing for 30 minutes",
		}),
	})
	.openapi("RebuildStatus");

const modeQuery = z.object({
	mode: z.enum(["refill", "drop"]).optional().openapi({ description: "refill (default): rewrite the copies from D1; drop: delete them" }),
});

function parseMode(raw: string | undefined): RebuildMode {
	if (raw === undefined || raw === "refill" || raw === "drop") return raw ?? "refill";
	throw new HotpathError("bad_request", `mode must be "refill" or "drop", not "${raw}"`, { errors: [{ pointer: "mode", detail: "refill or drop" }] });
}

const view = (dataset: string, row: RebuildRow | undefined) => ({
	dataset,
	mode: (row?.mode ?? "refill") as RebuildMode,
	status: row?.status ?? "idle",
	keys_done: row?.keysDone ?? 0,
	pages_done: row?.pagesDone ?? 0,
	total_keys: row?.totalKeys ?? 0,
	started_at: row ? new Date(row.startedAt).toISOString() : null,
	finished_at: row?.finishedAt ? new Date(row.finishedAt).toISOString() : null,
	...(row?.error ? { error: row.error } : {}),
});

/** The dataset of the path, checked: within the key's bounds, and existing. */
async function datasetOf(c: Context<AppEnv>): Promise<string> {
	const name = c.req.param("name") as string;
	assertDatasets(c.get("principal"), [name]);
	await c.get("services").registry.require(name);
	return name;
}

export const rebuildRoutes = newRouter();

mount(
	rebuildRoutes,
	{
		method: "post",
		path: "/datasets/{name}/rebuild",
		summary: "Rewrite (or drop) the dataset's KV and Redis copies from D1",
		description:
			"Runs in the background through the queue, a page of keys at a time; GET on the same path reports progress. While a rebuild of the dataset is running, starting one of the same mode answers that one's progress (it is not started over), and one of the other mode is a 409. A run that showed no progress for 10 minutes (its queued pages were lost, as when a dev server restarts) reads as failed and may be started again.",
		tags: ["admin"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }), query: modeQuery },
		responses: {
			202: json("Started, or already running", RebuildSchema),
			...problems("bad_request", "forbidden", "not_found", "conflict", "unavailable"),
		},
	},
	requireScope("admin"),
	async (c) => {
		const name = await datasetOf(c);
		const mode = parseMode(c.req.query("mode"));
		const { row, started } = await startDatasetRebuild(c.get("services"), name, mode);
		if (!started && row.mode !== mode) {
			throw new HotpathError(
				"conflict",
				`a ${row.mode} rebuild of "${name}" is running (${row.keysDone} of ${row.totalKeys} keys done); wait until GET /v1/datasets/${name}/rebuild says done or failed, then start the ${mode}`,
			);
		}
		return c.json({ ...view(name, row), started }, 202);
	},
);

mount(
	rebuildRoutes,
	{
		method: "get",
		path: "/datasets/{name}/rebuild",
		summary: "Progress of the dataset's latest rebuild",
		tags: ["admin"],
		security: bearer,
		request: { params: z.object({ name: datasetParam }) },
		responses: { 200: json("Progress (status idle when none ran)", RebuildSchema), ...problems("forbidden", "not_found") },
	},
	requireScope("admin"),
	async (c) => {
		const name = await datasetOf(c);
		return c.json(view(name, await rebuildStatus(c.env.DB, name)));
	},
);

mount(
	rebuildRoutes,
	{
		method: "post",
		path: "/rebuild",
		summary: "Rebuild every dataset",
		description: "Needs an admin key limited to no dataset. A dataset whose rebuild is running keeps it: its status (and mode) is reported as it is.",
		tags: ["admin"],
		security: bearer,
		request: { query: modeQuery },
		responses: { 202: json("Started", z.object({ rebuilds: z.array(RebuildSchema) })), ...problems("bad_request", "forbidden", "unavailable") },
	},
	requireScope("admin"),
	async (c) => {
		assertUnlimitedAdmin(c.get("principal"), "rebuilding every dataset");
		const mode = parseMode(c.req.query("mode"));
		const services = c.get("services");
		const rows = [];
		for (const name of (await services.registry.all()).keys()) {
			const { row, started } = await startDatasetRebuild(services, name, mode);
			rows.push({ ...view(name, row), started });
		}
		return c.json({ rebuilds: rows }, 202);
	},
);
