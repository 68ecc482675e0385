/** `hotpath keys create NAME | list | revoke ID`: API keys (admin). */
import type { KeyInfo, KeyInput, Scope } from "@hotpath/client";
import { type Command, InvalidArgumentError } from "commander";
import { listOption, nonEmptyListOption, timeOption, verbAction } from "../context.ts";
import { table } from "../output.ts";

const SCOPES: readonly Scope[] = ["read", "write", "admin"];

const scopesOption = (raw: string): Scope[] => {
	const scopes = listOption(raw);
	const bad = scopes.filter((s) => !SCOPES.includes(s as Scope));
	if (!scopes.length || bad.length) throw new InvalidArgumentError(`scopes are a comma-separated list of ${SCOPES.join(", ")}`);
	return scopes as Scope[];
};

/** The server's bounds on a key's rate limit (src/routes/keys.ts). */
const MAX_REQUESTS = 1_000_000;
const MAX_PERIOD_S = 86_400;

/** "100/60" -> 100 requests per 60 seconds, within what the server takes (past it: exit 2, not the server's 400). */
const rateLimitOption = (raw: string): { requests: number; period_seconds: number } => {
	const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
	const requests = Number(m?.[1]);
	const period = Number(m?.[2]);
	if (!m || requests < 1 || period < 1 || requests > MAX_REQUESTS || period > MAX_PERIOD_S)
		throw new InvalidArgumentError(`expected REQUESTS/SECONDS, e.g. "100/60": 1 to ${MAX_REQUESTS} requests per 1 to ${MAX_PERIOD_S} seconds`);
	return { requests, period_seconds: period };
};

/** --datasets: at least one name (an empty list would be a key limited to no dataset, which the server refuses). */
const datasetsOption = nonEmptyListOption("dataset names");

/** "100/60s" for a key's rate limit, as --rate-limit takes it; null when it has none. */
const rateLimitText = (k: KeyInfo): string | null => (k.rate_limit ? `${k.rate_limit.requests}/${k.rate_limit.period_seconds}s` : null);

export function registerKeys(program: Command): void {
	const keys = program.command("keys").description("create, list and revoke API keys (admin)");

	keys
		.command("create")
		.description("create a key; its secret is printed once")
		.argument("<name>")
		.requiredOption("--scopes <scopes>", "comma-separated: read, write, admin", scopesOption)
		.option("--datasets <a,b>", "limit the key to these datasets", datasetsOption)
		.option("--rate-limit <n/seconds>", "at most N requests per period", rateLimitOption)
		// As the server takes it (RFC 3339 with an offset, or epoch ms): Date.parse guessed at other text
		// and rolled 2030-02-30 over to March, and the CLI sent its guess.
		.option("--expires-at <time>", "RFC 3339 with an offset, or epoch ms", timeOption)
		.action(
			verbAction(
				async (
					{ client, out },
					[name]: [string],
					o: { scopes: Scope[]; datasets?: string[]; rateLimit?: KeyInput["rate_limit"]; expiresAt?: string | number },
				) => {
					const input: KeyInput = { name, scopes: o.scopes };
					if (o.datasets) input.datasets = o.datasets;
					if (o.rateLimit) input.rate_limit = o.rateLimit;
					if (o.expiresAt !== undefined) input.expires_at = o.expiresAt;
					const created = await client.keys.create(input);
					out.result(created, () =>
						[
							`created key ${created.id} (${created.name}): scopes ${created.scopes.join(",")}${created.datasets ? `, datasets ${created.datasets.join(",")}` : ""}${
								created.rate_limit ? `, rate limit ${rateLimitText(created)}` : ""
							}${created.expires_at ? `, expires ${created.expires_at}` : ""}`,
							`secret (shown only now): ${created.key}`,
						].join("\n"),
					);
					return 0;
				},
			),
		);

	keys
		.command("list")
		.description("list keys (never their secrets)")
		.option("--include-revoked", "list revoked keys too")
		.action(
			verbAction(async ({ client, out }, _args: [], o: { includeRevoked?: boolean }) => {
				const list = await client.keys.list({ includeRevoked: o.includeRevoked === true });
				out.result({ keys: list }, () =>
					list.length
						? table(
								["ID", "NAME", "SCOPES", "DATASETS", "RATE_LIMIT", "EXPIRES", "CREATED", "REVOKED"],
								list.map((k) => [k.id, k.name, k.scopes.join(","), k.datasets?.join(",") ?? "all", rateLimitText(k), k.expires_at, k.created_at, k.revoked_at]),
							)
						: "no keys",
				);
				return 0;
			}),
		);

	keys
		.command("revoke")
		.description("revoke a key at once")
		.argument("<id>")
		.action(
			verbAction(async ({ client, out }, [id]: [string]) => {
				await client.keys.revoke(id);
				out.result({ revoked: id }, () => `revoked ${id}`);
				return 0;
			}),
		);
}
