/**
 * The fast lane for the commonest read: `GET /v1/datasets/:name/records/:key`, no query string,
 * answered from a fresh L0 copy. It answers exactly what the records route answers (same body,
 * status and headers) without Hono's routing, middleware chain and context, which were most of the
 * worker's own time on an L0 hit (docs/BENCHMARKS.md). Anything it is not sure of (a query, a
 * conditional or traced request, an encoded path, a key that fails auth, scope or dataset access,
 * a miss, a stale or revalidating copy) returns undefined, and the request goes through the app as
 * usual, which also produces every error response. So the lane only ever answers 200 with a
 * present value, after the same key, scope and dataset checks as the app.
 */
import type { Principal } from "../auth/keys";
import { isExpired, mayRead } from "../auth/policy";
import { MAX_KEY_BYTES } from "../input";
import { nextRequestId } from "../observability/request-id";
import { ServerTiming } from "../observability/timing";
import type { DatasetSpec } from "../registry/spec";
import type { Services } from "../services";
import { readLimits, viewRecord } from "../serving/freshness";
import { recordViewJson } from "../serving/render";
import { recordCacheKey } from "../storage/cached-record";
import { recordEtag, recordHeaders } from "./record-response";

const PREFIX = "/v1/datasets/";
const RECORDS = "/records/";
const BEARER = "Bearer ";

/** The (name, key) of a plain record URL, or undefined for anything the router would decode, or a query. */
function parsePlainRecordUrl(url: string): { name: string; key: string } | undefined {
	const pathStart = url.indexOf("/", url.indexOf("://") + 3);
	if (pathStart < 0 || !url.startsWith(PREFIX, pathStart)) return undefined;
	// Percent-encoded text is decoded by the router (and may hold non-ASCII or a lone surrogate); a
	// query or fragment means options. Both go the long way.
	const rest = url.slice(pathStart + PREFIX.length);
	if (rest.includes("%") || rest.includes("?") || rest.includes("#")) return undefined;
	const at = rest.indexOf(RECORDS);
	if (at <= 0) return undefined;
	const name = rest.slice(0, at);
	const key = rest.slice(at + RECORDS.length);
	// Without "%", a URL path is ASCII: its length is its size in bytes and it is well-formed.
	if (!key || key.includes("/") || name.includes("/") || key.length > MAX_KEY_BYTES) return undefined;
	return { name, key };
}

/**
 * The records route's answer to `req` when it is a plain read of a fresh L0 copy, else undefined.
 * Requests that are not plain record reads get undefined at once, without a promise or the
 * services, so the lane costs every other route one URL check. When the isolate already knows the
 * key and the dataset, the answer comes back as is, without a promise: each await costs the
 * commonest read a turn of the microtask queue and an async frame.
 */
export function fastRecordRead(
	req: Request,
	services: () => Services,
	/** The request's context, for the change counters' background poll. */
	ctx?: { waitUntil(p: Promise<unknown>): void },
): Response | Promise<Response | undefined> | undefined {
	if (req.method !== "GET") return undefined;
	const path = parsePlainRecordUrl(req.url);
	if (!path) return undefined;
	const headers = req.headers;
	const auth = headers.get("authorization");
	// A caller's request id and If-None-Match are the app's to handle (echo, 304).
	if (!auth?.startsWith(BEARER) || headers.has("if-none-match") || headers.has("x-request-id")) return undefined;
	const token = auth.slice(BEARER.length);
	if (!token || /\s/.test(token)) return undefined;
	const s = services();
	const principal = s.keys.knownPrincipal(token);
	const spec = principal && s.registry.cached(path.name);
	if (principal && spec !== undefined) return fromL0(path, principal, spec, s, ctx);
	return loadThenRead(path, token, s, ctx);
}

/** The lane when the key or the registry must be loaded (or checked against D1) first. */
async function loadThenRead(
	path: { name: string; key: string },
	token: string,
	services: Services,
	ctx: { waitUntil(p: Promise<unknown>): void } | undefined,
): Promise<Response | undefined> {
	const principal = await services.keys.authenticate(token);
	// Checked before the registry is asked, so a key that may not read never costs a registry load.
	if (!principal || !mayRead(principal, path.name)) return undefined;
	return fromL0(path, principal, (await services.registry.get(path.name)) ?? null, services, ctx);
}

function fromL0(
	path: { name: string; key: string },
	principal: Principal,
	spec: DatasetSpec | null,
	services: Services,
	ctx: { waitUntil(p: Promise<unknown>): void } | undefined,
): Response | undefined {
	const now = Date.now();
	// A key with a rate limit goes the long way, where its budget is counted and a 429 can be answered.
	if (principal.rateLimit || isExpired(principal, now) || !mayRead(principal, path.name)) return undefined;
	// Aggregates are computed at read time from D1: the app answers those datasets.
	if (!spec || spec.aggregates) return undefined;

	const start = performance.now();
	// The lag an L0 copy may have, as lookupRecords sets it for a read without max_staleness.
	const { maxLagMs } = readLimits(spec);
	const l0 = services.reader.l0;
	// Keeps the change counters coming while the lane serves, so copies are confirmed, not reloaded, when their fresh time runs out.
	if (ctx) l0.changes?.poll(now, ctx);
	const hit = l0.get(recordCacheKey(path.name, path.key), maxLagMs, now);
	if (hit?.state !== "fresh") return undefined;
	const view = viewRecord(path.key, hit.rec, spec, { ifStale: "serve" }, now);
	if (view.status !== "present") return undefined;
	const timing = new ServerTiming();
	timing.add("l0", performance.now() - start);
	const copy = { rev: hit.rec.r, eventTimeMs: hit.rec.t, lagMs: Math.max(0, now - hit.syncedAt) };
	const headers = recordHeaders({
		view,
		copy,
		limitMs: maxLagMs,
		l0TtlSeconds: services.settings.L0_TTL_SECONDS,
		tiers: "l0",
		serverTiming: timing.header,
		etag: recordEtag(copy, "present"),
	});
	headers["x-request-id"] = nextRequestId();
	const res = new Response(recordViewJson(view, path.name), { headers });
	services.stats.count("l0", "hits", 1);
	services.stats.fastLaneHits++;
	return res;
}
