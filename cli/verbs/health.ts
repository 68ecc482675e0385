/** `hotpath health`: every tier's state. Exit 1 unless the status is ok. */
import type { Command } from "commander";
import { verbAction } from "../context.ts";
import { table } from "../output.ts";

export function registerHealth(program: Command): void {
	program
		.command("health")
		.description("health of every tier (l0, redis, kv, d1)")
		.action(
			verbAction(async ({ client, out }) => {
				const health = await client.health();
				out.result(health, () => `${health.status}\n${table(["TIER", "STATE"], Object.entries(health.tiers))}`);
				return health.status === "ok" ? 0 : 1;
			}),
		);
}
