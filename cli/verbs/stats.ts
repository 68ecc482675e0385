/** `hotpath stats`: the answering isolate's per-tier counters. */
import type { Command } from "commander";
import { verbAction } from "../context.ts";
import { table } from "../output.ts";

export function registerStats(program: Command): void {
	program
		.command("stats")
		.description("per-tier hits, misses, errors and skips of the isolate that answers (unlimited admin key)")
		.action(
			verbAction(async ({ client, out }) => {
				const stats = await client.stats();
				out.result(stats, () => {
					const tiers = Object.entries(stats.tiers ?? {});
					const counters = [...new Set(tiers.flatMap(([, c]) => Object.keys(c)))];
					const lines = [`since ${stats.since} (${stats.scope})`];
					if (tiers.length)
						lines.push(
							table(
								["TIER", ...counters.map((c) => c.toUpperCase())],
								tiers.map(([t, c]) => [t, ...counters.map((k) => c[k])]),
							),
						);
					const { since: _since, scope: _scope, tiers: _tiers, ...rest } = stats;
					for (const [k, v] of Object.entries(rest)) lines.push(`${k}: ${JSON.stringify(v)}`);
					return lines.join("\n");
				});
				return 0;
			}),
		);
}
