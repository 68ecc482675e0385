/** `hotpath dlq list | replay ID | replay --all | purge ID | purge --all [--replayed | --unreplayed]`: messages that kept failing (admin). */
import type { DeadLetterId } from "@hotpath/client";
import type { Command } from "commander";
import { intOption, nonEmptyOption, verbAction } from "../context.ts";
import { table, UsageError } from "../output.ts";

interface Which {
	all?: boolean;
	dataset?: string;
}

/**
 * Exactly one of an id or --all; --dataset only with --all. An id is a D1 row id (an integer) or
 * `kv:<message id>` for a dead letter waiting in KV while D1 refused it, as `dlq list` shows them.
 */
export function target(id: string | undefined, o: Which, verb: string): DeadLetterId | "all" {
	if (id !== undefined && o.all) throw new UsageError(`dlq ${verb}: give an id or --all, not both`);
	if (id === undefined && !o.all) throw new UsageError(`dlq ${verb}: give a dead letter's id, or --all`);
	if (o.dataset !== undefined && !o.all) throw new UsageError(`dlq ${verb}: --dataset goes with --all`);
	if (id === undefined) return "all";
	if (id.startsWith("kv:") && id.length > 3) return id as `kv:${string}`;
	const n = Number(id);
	if (!/^\d+$/.test(id) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`dlq ${verb}: the id is a positive integer or kv:<message id>, not "${id}"`);
	return n;
}

export function registerDlq(program: Command): void {
	const dlq = program.command("dlq").description("inspect, replay and purge dead letters (admin)");

	dlq
		.command("list")
		.description("list dead letters, newest first")
		.option("--limit <n>", "at most this many (1-500)", intOption(1, 500))
		.option("--dataset <name>", "only those touching this dataset", nonEmptyOption)
		.action(
			verbAction(async ({ client, out }, _args: [], o: { limit?: number; dataset?: string }) => {
				const list = await client.deadLetters.list({ limit: o.limit, dataset: o.dataset });
				// D1 refused: only the letters waiting in KV are listed. Said on stderr and in --json, never dropped.
				if (list.incomplete !== undefined) out.note(`incomplete: ${list.incomplete}`);
				out.result({ dead_letters: [...list], ...(list.incomplete !== undefined ? { incomplete: list.incomplete } : {}) }, () =>
					list.length
						? table(
								["ID", "CREATED", "ATTEMPTS", "DATASETS", "REPLAYED", "ERROR"],
								list.map((d) => [d.id, d.created_at, d.attempts, d.datasets?.join(",") ?? null, d.replayed_at, d.error.slice(0, 80)]),
							)
						: "no dead letters",
				);
				return 0;
			}),
		);

	dlq
		.command("replay")
		.description("put a dead letter (or every one not replayed yet) back on the queue")
		.argument("[id]")
		.option("--all", "every dead letter not replayed yet")
		.option("--dataset <name>", "with --all: only those touching this dataset", nonEmptyOption)
		.action(
			verbAction(async ({ client, out }, [id]: [string | undefined], o: Which) => {
				const which = target(id, o, "replay");
				if (which === "all") {
					const r = await client.deadLetters.replayAll({ dataset: o.dataset });
					out.result(r, () => `replayed ${r.replayed} dead letter(s)`);
				} else {
					const r = await client.deadLetters.replay(which);
					out.result(r, () => `replayed ${r.id} at ${r.replayed_at}`);
				}
				return 0;
			}),
		);

	dlq
		.command("purge")
		.description("delete a dead letter (or every one) for good")
		.argument("[id]")
		.option("--all", "every dead letter")
		.option("--dataset <name>", "with --all: only those touching this dataset", nonEmptyOption)
		.option("--replayed", "with --all: only those replayed already")
		.option("--unreplayed", "with --all: only those never replayed")
		.action(
			verbAction(async ({ client, out }, [id]: [string | undefined], o: Which & { replayed?: boolean; unreplayed?: boolean }) => {
				const which = target(id, o, "purge");
				if (o.replayed && o.unreplayed) throw new UsageError("dlq purge: --replayed or --unreplayed, not both");
				if ((o.replayed || o.unreplayed) && which !== "all") throw new UsageError("dlq purge: --replayed and --unreplayed go with --all");
				if (which === "all") {
					const replayed = o.replayed ? true : o.unreplayed ? false : undefined;
					const r = await client.deadLetters.purgeAll({ dataset: o.dataset, replayed });
					out.result(r, () => `purged ${r.purged} dead letter(s)`);
				} else {
					await client.deadLetters.purge(which);
					out.result({ purged: 1, id: which }, () => `purged ${which}`);
				}
				return 0;
			}),
		);
}
