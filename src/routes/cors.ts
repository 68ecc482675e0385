/**
 * CORS: the SDK runs in browsers too, and a page calling Hotpath is on another origin. Keys travel
 * in the Authorization header, never in cookies, so any origin may call: what a page can do is
 * what the key it holds allows. Preflights are answered before anything else (no key, no I/O).
 */

export const CORS_HEADERS = {
	"access-control-allow-origin": "*",
	// What a page may read of an answer beyond the safelisted headers.
	"access-control-expose-headers": "etag, x-hotpath-tier, server-timing, retry-after, x-request-id, www-authenticate, allow",
} as const;

const PREFLIGHT_HEADERS = {
	...CORS_HEADERS,
	"access-control-allow-methods": "GET, HEAD, POST, PUT, DELETE",
	"access-control-allow-headers": "authorization, content-type, idempotency-key, if-none-match, accept, x-request-id",
	"access-control-max-age": "86400",
} as const;

/** The answer to a browser's preflight (OPTIONS with Access-Control-Request-Method), or undefined for any other request. */
export function corsPreflight(req: Request): Response | undefined {
	if (req.method !== "OPTIONS" || !req.headers.has("access-control-request-method")) return undefined;
	return new Response(null, { status: 204, headers: PREFLIGHT_HEADERS });
}

/** The response with the CORS headers it lacks. */
export function withCors(res: Response): Response {
	if (res.headers.has("access-control-allow-origin")) return res;
	let out = res;
	try {
		for (const [k, v] of Object.entries(CORS_HEADERS)) out.headers.set(k, v);
	} catch {
		// Headers of a response made elsewhere may be immutable: a copy takes them.
		out = new Response(res.body, res);
		for (const [k, v] of Object.entries(CORS_HEADERS)) out.headers.set(k, v);
	}
	return out;
}
