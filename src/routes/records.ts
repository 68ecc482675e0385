/** Single-key reads: GET /v1/datasets/:name/records/:key, with projection, max_staleness, ETag and cache headers. */
import { Hono } from "hono";
import { requireScope } from "../auth/middleware";
import { assertDatasets } from "../auth/policy";
import type { AppEnv } from "../env";
import { HotpathError } from "../errors";
import { isWellFormedKey, MAX_KEY_BYTES } from "../ingest/events";
import { freshnessLimitMs, type IfStale } from "../serving/freshness";
import { lookupRecords } from "../serving/lookup";
import { recordViewJson } from "../serving/render";
import { readContext } from "./read-context";
import { recordEtag, recordHeaders } from "./record-response";
import { checkFields, parseMaxStaleness } from "./validation";

const encoder = new TextEncoder();

export const recordRoutes = new Hono<AppEnv>();

export function parseIfStale(raw: string | undefined): IfStale {
	if (raw === undefined || raw === "serve" || raw === "omit") return raw ?? "serve";
	throw new HotpathError("bad_request", `if_stale must be "serve" (report the value marked stale) or "omit" (withhold it), not "${raw}"`);
}

/** Checks a record key from a path or a body: at most MAX_KEY_BYTES of well-formed Unicode. */
export function keyProblem(key: string): string | null {
	if (encoder.encode(key).length > MAX_KEY_BYTES) return `key is longer than ${MAX_KEY_BYTES} bytes`;
	if (!isWellFormedKey(key)) return "key must be well-formed Unicode (it holds a lone surrogate)";
	return null;
}

recordRoutes.get("/:name/records/:key", requireScope("read"), async (c) => {
	const { name, key } = c.req.param();
	assertDatasets(c.get("principal"), [name]);
	const bad = keyProblem(key);
	if (bad) throw new HotpathError("bad_request", bad);
	const services = c.get("services");
	const spec = await services.registry.require(name);
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
	const { results, served, tiers } = await lookupRecords(services.reader, [{ spec, keys: [key], fields }], { maxStalenessS, ifStale }, ctx);
	const view = results[0]?.records[0];
	const copy = served[0]?.[0];
	if (!view || !copy) throw new Error("unreachable: one key was asked for");
	const headers = recordHeaders({
		view,
		copy,
		limitMs: freshnessLimitMs(spec, maxStalenessS),
		l0TtlSeconds: services.settings.L0_TTL_SECONDS,
		tiers: tiers.join(","),
		serverTiming: ctx.timing.header,
		etag: recordEtag(copy, view.status, `${fieldsParam ? `-${fields?.join(".")}` : ""}${ifStale === "omit" ? "-o" : ""}`),
	});
	if (view.status === "not_found") {
		c.header("x-hotpath-tier", headers["x-hotpath-tier"]);
		c.header("server-timing", headers["server-timing"]);
		throw new HotpathError("not_found", `no record "${key}" in dataset "${name}"`);
	}
	const inm = c.req.header("if-none-match");
	if (inm && (inm.trim() === "*" || inm.split(",").some((t) => t.trim() === headers.etag))) {
		const { "content-type": _, ...rest } = headers;
		return c.body(null, 304, rest);
	}
	return c.body(recordViewJson(view, name), 200, headers);
});
