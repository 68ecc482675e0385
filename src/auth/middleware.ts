/** Bearer-key authentication for routes: who is calling, whether the key is usable, its scope and its budget. */
import { createMiddleware } from "hono/factory";
import { HotpathError } from "../errors";
import type { KeyStore, Principal, Scope } from "./keys";
import { assertScope, isExpired } from "./policy";
import type { RateLimiter } from "./rate-limit";

declare module "hono" {
	interface ContextVariableMap {
		principal: Principal;
	}
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The principal behind an Authorization header. A missing or malformed header, an unknown, revoked
 * or expired key is `unauthorized`; a key past its rate limit is `rate_limited`.
 */
export async function authenticate(services: { keys: KeyStore; rateLimiter: RateLimiter }, header: string | undefined, now = Date.now()): Promise<Principal> {
	const match = header?.match(BEARER);
	if (!match) throw new HotpathError("unauthorized", header ? "Authorization must be 'Bearer <key>'" : "missing Authorization: Bearer <key>");
	const principal = await services.keys.authenticate(match[1] as string);
	if (!principal) throw new HotpathError("unauthorized", "unknown or revoked API key", { invalidCredential: true });
	if (isExpired(principal, now)) {
		throw new HotpathError("unauthorized", `this API key expired at ${new Date(principal.expiresAt as number).toISOString()}`, { invalidCredential: true });
	}
	const decision = await services.rateLimiter.take(principal);
	if (!decision.ok) {
		const limit = principal.rateLimit;
		throw new HotpathError(
			"rate_limited",
			`this key's rate limit of ${limit?.requests} requests per ${limit?.period_seconds} s is used up; retry after ${decision.retryAfterSeconds} s`,
			{ retryAfterSeconds: decision.retryAfterSeconds },
		);
	}
	return principal;
}

/**
 * Requires a usable bearer key with `scope` (admin keys hold every scope). The middleware carries
 * its `scope`, so the route's OpenAPI description states the scope it enforces.
 */
export const requireScope = (scope: Scope) =>
	Object.assign(
		createMiddleware(async function requireScope(c, next) {
			const principal = await authenticate(c.get("services"), c.req.header("authorization"));
			assertScope(principal, scope);
			c.set("principal", principal);
			await next();
		}),
		{ scope },
	);
