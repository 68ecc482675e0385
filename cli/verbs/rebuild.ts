/** `hotpath rebuild DATASET | --all`: rewrites (or drops) the KV and Redis copies from D1, and waits, showing progress. */
import type { Hotpath, RebuildMode, RebuildStatus } from "@hotpath/client";
import { type Command, Option } from "commander";
import { secondsOption, verbAction } from "../context.ts";
import { count, table, UsageError } from "../output.ts";
import { Progress } from "../progress.ts";

const finished = (s: RebuildStatus) => s.status === "done" || s.status === "failed" || s.status === "idle";

/**
 * Polls every rebuild until it has finished (or `timeoutMs` passed: the rebuilds go on in the
 * background); a status from before the one started (an older started_at) does not count.
 */
async function waitFor(client: Hotpath, started: RebuildStatus[], intervalMs: number, timeoutMs: number, progress: Progress): Promise<RebuildStatus[]> {
	const deadline = Date.now() + timeoutMs;
	let current = started;
	for (;;) {
		const total = current.reduce((n, s) => n + (s.total_keys ?? 0), 0);
		const done = current.reduce((n, s) => n + s.keys_done, 0);
		progress.update({ done: total ? (done / total) * 1000 : 0, items: done });
		if (current.every(finished) || Date.now() >= deadline) return current;
		await new Promise((r) => setTimeout(r, intervalMs));
		current = await Promise.all(
			current.map(async (s, i) => {
				if (finished(s)) return s;
				const now = await client.rebuildStatus(s.dataset);
				const first = started[i];
				return first?.started_at && now.started_at && now.started_at < first.started_at ? s : now;
			}),
		);
	}
}

export function registerRebuild(program: Command): void {
	program
		.command("rebuild")
		.description("refill (or drop) a dataset's KV and Redis copies from D1, or every dataset's with --all; waits and shows progress")
		.argument("[dataset]")
		.option("--all", "every dataset (unlimited admin key)")
		.addOption(new Option("--mode <mode>", "refill the copies from D1, or drop them").choices(["refill", "drop"]).default("refill"))
		.option("--no-wait", "start it and return")
		.option("--interval <seconds>", "how often to poll for progress (default 1)", secondsOption)
		.option("--timeout <seconds>", "stop waiting after this long (exit 1; the rebuild goes on)", secondsOption)
		.option("--no-progress", "no progress on stderr")
		.action(
			verbAction(
				async (
					{ client, out },
					[dataset]: [string | undefined],
					o: { all?: boolean; mode: RebuildMode; wait: boolean; interval?: number; timeout?: number; progress: boolean },
				) => {
					if (dataset !== undefined && o.all) throw new UsageError("rebuild: give a dataset or --all, not both");
					if (dataset === undefined && !o.all) throw new UsageError("rebuild: give a dataset, or --all");
					const started = dataset === undefined ? await client.rebuildAll({ mode: o.mode }) : [await client.rebuild(dataset, { mode: o.mode })];
					let statuses = started;
					if (o.wait) {
						const progress = new Progress({ label: `rebuild (${o.mode}) ${dataset ?? "all"}`, total: 1000, noun: "keys", quiet: !o.progress });
						try {
							statuses = await waitFor(client, started, (o.interval ?? 1) * 1000, (o.timeout ?? Number.POSITIVE_INFINITY) * 1000, progress);
						} finally {
							progress.stop();
						}
					}
					const failed = statuses.filter((s) => s.status === "failed");
					const running = o.wait ? statuses.filter((s) => s.status === "running") : [];
					out.result(dataset === undefined ? { rebuilds: statuses } : statuses[0], () =>
						table(
							["DATASET", "MODE", "STATUS", "KEYS", "PAGES", "ERROR"],
							statuses.map((s) => [
								s.dataset,
								s.mode,
								s.status,
								`${count(s.keys_done)}${s.total_keys !== null ? `/${count(s.total_keys)}` : ""}`,
								s.pages_done,
								s.error ?? "",
							]),
						),
					);
					if (running.length)
						out.note(`still running after ${o.timeout} s: ${running.map((s) => s.dataset).join(", ")} (hotpath rebuild goes on in the background)`);
					return failed.length || running.length ? 1 : 0;
				},
			),
		);
}
