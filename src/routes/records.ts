/** Single-key reads: GET /v1/datasets/:name/records/:key, with projection, max_staleness, ETag and cache headers. */
import { Hono } from "hono";
import { assertDatasetAccess, requireScope } from "../auth/middleware";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { isWellFormedKey, MAX_KEY_BYTES } from "../ingest/events";
import { freshnessLimitMs, type IfStale, type RecordView } from "../serving/freshness";
import { lookupRecords } from "../serving/lookup";
import { recordViewJson } from "../serving/render";
import { readContext } from "./read-context";
import { checkFields, parseMaxStaleness } from "./validation";

const encoder = new TextEncoder();

export const recordRoutes = new Hono<AppEnv>();

export function parseIfStale(raw: string | undefined): IfStale {
	if (raw === undefined || raw === "serve" || raw === "omit") return raw ?? "serve";
	throw new ApiError("bad_request", `if_stale must be "serve" (report the value marked stale) or "omit" (withhold it), not "${raw}"`);
}

/**
 * The ETag of a record response: the revision, the value's event time and status, and a suffix for
 * the options that change the body (projection, if_stale=omit).
 */
export function recordEtag(rev: number, eventTimeMs: number, status: RecordView["status"], optionsSuffix = ""): string {
	return `W/"${rev}-${eventTimeMs}-${status}${optionsSuffix}"`;
}

/** A present value may be reused until its freshness limit runs out, and no longer than L0 keeps it. */
export function recordCacheControl(view: RecordView, limitMs: number, l0TtlS: number): string {
	if (view.status !== "present") return "no-cache";
	const remainingS = Math.floor((limitMs - (view.age_ms ?? 0)) / 1000);
	return `private, max-age=${Math.max(0, Math.min(remainingS, l0TtlS))}`;
}

recordRoutes.get("/:name/records/:key", requireScope("read"), async (c) => {
	const { name, key } = c.req.param();
	assertDatasetAccess(c.get("principal"), [name]);
	if (encoder.encode(key).length > MAX_KEY_BYTES) throw new ApiError("bad_request", `key is longer than ${MAX_KEY_BYTES} bytes`);
	if (!isWellFormedKey(key)) throw new ApiError("bad_request", "key must be well-formed Unicode (it holds a lone surrogate)");
	const spec = await c.get("services").registry.require(name);
	// One pass over the query string, and none when there is none (the common case).
	const query: Record<string, string | undefined> = c.req.url.includes("?") ? c.req.query() : {};
	const fieldsParam = query.fields;
	const fields = checkFields(
		fieldsParam
			? fieldsParam
					.split(",")
					.map((f) => f.trim())
					.filter(Boolean)
			: undefined,
		spec.fields,
		"fields",
	);
	const maxStalenessS = parseMaxStaleness(query.max_staleness, "max_staleness");
	const ifStale = parseIfStale(query.if_stale);

	const ctx = readContext(c);
	const { results, revisions, tiers } = await lookupRecords(c.get("services").reader, [{ spec, keys: [key], fields }], { maxStalenessS, ifStale }, ctx);
	const view = results[0]?.records[0];
	if (!view) throw new Error("unreachable: one key was asked for");
	c.header("x-hotpath-tier", tiers.join(","));
	c.header("server-timing", ctx.timing.header);
	if (view.status === "not_found")
		throw new ApiError("not_found", `no record "${key}" in dataset "${name}"`, {
			headers: { "x-hotpath-tier": tiers.join(","), "server-timing": ctx.timing.header },
		});

	const etag = recordEtag(
		revisions[0]?.[0] ?? 0,
		view.event_time ? Date.parse(view.event_time) : 0,
		view.status,
		`${fieldsParam ? `-${fields?.join(".")}` : ""}${ifStale === "omit" ? "-o" : ""}`,
	);
	c.header("etag", etag);
	c.header("cache-control", recordCacheControl(view, freshnessLimitMs(spec, maxStalenessS), c.get("services").settings.L0_TTL_SECONDS));
	const inm = c.req.header("if-none-match");
	if (inm && (inm.trim() === "*" || inm.split(",").some((t) => t.trim() === etag))) return c.body(null, 304);
	return c.body(recordViewJson(view, name), 200, { "content-type": "application/json" });
});
