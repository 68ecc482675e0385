/**
 * Who may do what: the one place key checks are written. Scopes (admin holds every scope),
 * dataset limits (a limited key sees and acts only within its datasets, on every route), and the
 * things only an unlimited admin key may do (global stats, every dataset's rebuild, unlimited keys).
 */
import { HotpathError } from "../errors";
import type { Principal, RateLimitSpec, Scope } from "./keys";

/** Admin keys hold every scope. */
export function hasScope(p: Principal, scope: Scope): boolean {
	return p.scopes.includes(scope) || p.scopes.includes("admin");
}

/** Whether the principal may touch `dataset` (a key without a dataset list may touch all). */
export function mayAccess(p: Principal, dataset: string): boolean {
	return !p.datasets || p.datasets.includes(dataset);
}

/** Whether the principal's dataset bounds contain all of `datasets` (null: every dataset, which only an unlimited key covers). */
export function covers(p: Principal, datasets: readonly string[] | null): boolean {
	if (!p.datasets) return true;
	return datasets?.every((d) => mayAccess(p, d)) ?? false;
}

/** Whether a plain read of `dataset` is allowed: what the L0 fast lane asks before answering. */
export function mayRead(p: Principal, dataset: string): boolean {
	return hasScope(p, "read") && mayAccess(p, dataset);
}

export function assertScope(p: Principal, scope: Scope): void {
	if (!hasScope(p, scope)) throw new HotpathError("forbidden", `this key lacks the "${scope}" scope`);
}

/** Throws forbidden, naming the datasets out of bounds, unless the principal may touch every one of `datasets`. */
export function assertDatasets(p: Principal, datasets: Iterable<string>): void {
	if (!p.datasets) return;
	const denied = [...new Set(datasets)].filter((d) => !mayAccess(p, d));
	if (denied.length) throw new HotpathError("forbidden", `this key is limited to dataset(s) ${p.datasets.join(", ")}; it may not access ${denied.join(", ")}`);
}

/** Throws forbidden unless the principal is an admin key limited to no datasets. */
export function assertUnlimitedAdmin(p: Principal, what: string): void {
	assertScope(p, "admin");
	if (p.datasets)
		throw new HotpathError("forbidden", `${what} needs an admin key that is not limited to datasets (this one is limited to ${p.datasets.join(", ")})`);
}

/** Throws forbidden unless the principal may manage a key limited to `datasets` (null: unlimited). */
export function assertManagesKey(p: Principal, datasets: readonly string[] | null): void {
	if (covers(p, datasets)) return;
	throw new HotpathError(
		"forbidden",
		datasets === null
			? `this key is limited to dataset(s) ${p.datasets?.join(", ")}; only an unlimited admin key may manage unlimited keys`
			: `this key is limited to dataset(s) ${p.datasets?.join(", ")}; it may not manage a key for ${datasets.filter((d) => !mayAccess(p, d)).join(", ")}`,
	);
}

/**
 * Throws forbidden unless the principal may revoke key `id`, limited to `datasets`. The request
 * named a key, not its datasets: a limited key learns that the key is out of its bounds, never the
 * names of datasets its listings hide from it.
 */
export function assertMayRevokeKey(p: Principal, id: string, datasets: readonly string[] | null): void {
	if (covers(p, datasets)) return;
	throw new HotpathError(
		"forbidden",
		`this key is limited to dataset(s) ${p.datasets?.join(", ")}; key "${id}" is not limited to datasets within them, so it may not revoke it`,
	);
}

/**
 * Throws forbidden unless a key with these bounds stays within the principal's own. A key that
 * expires, or has a rate limit, hands out only keys that expire no later and are limited no looser
 * (no larger burst, no faster rate): otherwise the key it made would go on working after it
 * expired, at any rate. Its datasets are checked by assertManagesKey.
 */
export function assertMintsWithin(p: Principal, child: { expiresAt: number | null; rateLimit: RateLimitSpec | null }): void {
	if (p.expiresAt !== null && (child.expiresAt === null || child.expiresAt > p.expiresAt)) {
		const until = new Date(p.expiresAt).toISOString();
		throw new HotpathError("forbidden", `this key expires at ${until}; a key it creates must expire by then too (give expires_at no later than ${until})`);
	}
	const own = p.rateLimit;
	if (!own) return;
	const asked = child.rateLimit;
	// requests per period, compared without division: asked.requests / asked.period <= own.requests / own.period.
	if (!asked || asked.requests > own.requests || asked.requests * own.period_seconds > own.requests * asked.period_seconds) {
		throw new HotpathError(
			"forbidden",
			`this key has a rate limit of ${own.requests} requests per ${own.period_seconds} s; a key it creates needs a rate_limit no looser (at most ${own.requests} requests, at most ${own.requests} per ${own.period_seconds} s)`,
		);
	}
}

/** Whether the key has expired at `now`. */
export const isExpired = (p: Principal, now: number): boolean => p.expiresAt !== null && p.expiresAt <= now;
