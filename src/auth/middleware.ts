/** Bearer-key authentication and scope checks for routes. */
import { createMiddleware } from "hono/factory";
import { ApiError } from "../errors";
import type { Principal, Scope } from "./keys";

declare module "hono" {
	interface ContextVariableMap {
		principal: Principal;
	}
}

/**
 * Requires a bearer key with `scope`. A missing or unknown key is a 401; a key without the
 * scope is a 403. Admin keys hold every scope.
 */
export const requireScope = (scope: Scope) =>
	createMiddleware(async function requireScope(c, next) {
		const header = c.req.header("authorization");
		const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
		if (!match) {
			throw new ApiError("unauthorized", header ? "Authorization must be 'Bearer <key>'" : "missing Authorization: Bearer <key>", {
				headers: { "www-authenticate": 'Bearer realm="hotpath"' },
			});
		}
		const principal = await c.get("services").keys.authenticate(match[1] as string);
		if (!principal)
			throw new ApiError("unauthorized", "unknown or revoked API key", { headers: { "www-authenticate": 'Bearer realm="hotpath", error="invalid_token"' } });
		if (!hasScope(principal, scope)) {
			throw new ApiError("forbidden", `this key lacks the "${scope}" scope`);
		}
		c.set("principal", principal);
		await next();
	});

/** Admin keys hold every scope. */
export function hasScope(principal: Principal, scope: Scope): boolean {
	return principal.scopes.includes(scope) || principal.scopes.includes("admin");
}

/** Whether the principal may touch `dataset` (a key without a dataset list may touch all). */
export function mayAccess(principal: Principal, dataset: string): boolean {
	return !principal.datasets || principal.datasets.includes(dataset);
}

/** Throws a 403 unless the principal may touch every one of `datasets`. */
export function assertDatasetAccess(principal: Principal, datasets: Iterable<string>): void {
	const denied = [...new Set(datasets)].filter((d) => !mayAccess(principal, d));
	if (denied.length) throw new ApiError("forbidden", `this key may not access dataset(s): ${denied.join(", ")}`);
}
