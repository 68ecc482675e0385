/** History: GET /v1/datasets/:name/records/:key/history, a record's versions in event_time order. */

import * as z from "zod";
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import { HotpathError } from "../errors";
import { DEFAULT_VERSIONS, keyVersions, MAX_VERSIONS, pageCursor, parsePageCursor } from "../history/versions";
import { ServerTiming } from "../observability/timing";
import { checkTimeRange, keyProblem, parseTimeParam } from "../serving/params";
import { bearer, datasetParam, json, mount, newRouter, problems, recordKeyParam } from "./openapi";
import { parseLimit } from "./validation";

export const historyRoutes = newRouter();

const VersionSchema = z
	.object({
		event_time: z.string(),
		event_id: z.string(),
		op: z.enum(["upsert", "patch", "delete"]),
		value: z.record(z.string(), z.unknown()).nullable().openapi({ description: "The whole state after this event under the merge rules; null after a delete" }),
	})
	.openapi("Version");

mount(
	historyRoutes,
	{
		method: "get",
		path: "/{name}/records/{key}/history",
		summary: "A record's versions, in event_time order",
		description: `Each applied event with the whole state after it. A late event appears at its place in time, and the states after it include it. since and until are RFC 3339 or epoch ms (inclusive); pages of at most ${MAX_VERSIONS} (default ${DEFAULT_VERSIONS}). Events older than the dataset's history_days are folded together by the retention: history begins at history_begins_at.`,
		tags: ["records"],
		security: bearer,
		request: {
			params: z.object({ name: datasetParam, key: recordKeyParam }),
			query: z.object({ since: z.string().optional(), until: z.string().optional(), limit: z.string().optional(), cursor: z.string().optional() }),
		},
		responses: {
			200: json("Versions", z.object({ versions: z.array(VersionSchema), next_cursor: z.string().nullable(), history_begins_at: z.string() })),
			...problems("bad_request", "forbidden", "not_found"),
		},
	},
	requireScope("read"),
	async (c) => {
		const name = c.req.param("name") as string;
		const key = c.req.param("key") as string;
		assertDatasets(c.get("principal"), [name]);
		const bad = keyProblem(key);
		// The path parameter is named as query parameters are: by its name.
		if (bad) throw new HotpathError("bad_request", bad, { errors: [{ pointer: "key", detail: bad }] });
		const spec = await c.get("services").registry.require(name);
		const limit = parseLimit(c, DEFAULT_VERSIONS, MAX_VERSIONS);
		const since = parseTimeParam(c.req.query("since"), "since");
		const untilParam = parseTimeParam(c.req.query("until"), "until");
		checkTimeRange(since, untilParam);
		const until = untilParam ?? Number.MAX_SAFE_INTEGER;
		const cursor = c.req.query("cursor");
		const after = cursor !== undefined ? parsePageCursor(cursor) : undefined;
		const timing = new ServerTiming();
		const page = await timing.measure("history", () => keyVersions(c.env.DB, spec, key, { since, until, limit, after }));
		// The log is in D1: the tier that answered, as on every read (and GraphQL's history field).
		c.header("x-hotpath-tier", "d1");
		c.header("server-timing", timing.header);
		c.header("cache-control", "no-store");
		return c.json({
			versions: page.versions,
			next_cursor: page.next ? pageCursor(page.next) : null,
			history_begins_at: new Date(page.historyBeginsAt).toISOString(),
		});
	},
);
