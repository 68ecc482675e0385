/** `hotpath rebuild DATASET | --all`: rewrites (or drops) the KV and Redis copies from D1, and waits, showing progress. */
import { type Hotpath, HotpathError, type RebuildMode, type RebuildStatus } from "@hotpath/client";
import { type Command, Option } from "commander";
import { secondsOption, verbAction } from "../context.ts";
import { count, OperationFailed, table, UsageError } from "../output.ts";
import { Progress } from "../progress.ts";

const finished = (s: RebuildStatus) => s.status === "done" || s.status === "failed" || s.status === "idle";

const otherMode = (mode: RebuildMode): RebuildMode => (mode === "refill" ? "drop" : "refill");

/** Whether the POST answered a run already running rather than starting one (the server says so in `started`). */
const joinedRun = (answer: RebuildStatus) => answer.started === false;

/**
 * Starts the rebuilds (one dataset's, or every dataset's) and says of each it did not start that it
 * joined the one running; one of the other mode was not what was asked: those are returned too.
 */
async function startRebuilds(client: Hotpath, dataset: string | undefined, mode: RebuildMode, note: (line: string) => void) {
	let started: RebuildStatus[];
	if (dataset !== undefined) {
		try {
			started = [await client.rebuild(dataset, { mode })];
		} catch (e) {
			if (!(e instanceof HotpathError) || e.status !== 409) throw e;
			const running = await client.rebuildStatus(dataset).catch(() => undefined);
			const other = running?.status === "running" ? running.mode : otherMode(mode);
			const progress =
				running?.status === "running" ? ` (${count(running.keys_done)} of ${count(running.total_keys)} keys done, since ${running.started_at})` : "";
			throw new OperationFailed(
				`rebuild: a ${other} rebuild of ${dataset} is running${progress}; a ${mode} cannot start until it ends\n` +
					`  wait for it with \`hotpath rebuild ${dataset} --mode ${other}\`, then run this again`,
				{ error: e.problem },
			);
		}
	} else started = await client.rebuildAll({ mode });
	const otherModeRunning: RebuildStatus[] = [];
	for (const s of started) {
		if (!joinedRun(s)) continue;
		const progress = `${count(s.keys_done)}${s.total_keys ? ` of ${count(s.total_keys)}` : ""} keys done`;
		if (s.mode === mode) note(`rebuild ${s.dataset}: joined the ${s.mode} rebuild running since ${s.started_at} (${progress}) rather than start one`);
		else {
			otherModeRunning.push(s);
			note(
				`rebuild ${s.dataset}: a ${s.mode} rebuild is running (${progress}); no ${mode} was started, run \`hotpath rebuild ${s.dataset} --mode ${mode}\` once it ends`,
			);
		}
	}
	return { started, otherModeRunning };
}

/**
 * The error of each running rebuild (a page retried while Redis or KV is down), said when it appears
 * or changes, not at every poll; and that the page went through once the server clears it.
 */
function errorReporter(note: (line: string) => void): (statuses: RebuildStatus[]) => void {
	const shown = new Map<string, string>();
	return (statuses) => {
		for (const s of statuses) {
			const last = shown.get(s.dataset);
			if (s.status === "running" && s.error && s.error !== last) {
				shown.set(s.dataset, s.error);
				note(`rebuild ${s.dataset}: ${s.error}`);
			} else if (last !== undefined && !s.error && s.status !== "failed") {
				shown.delete(s.dataset);
				note(`rebuild ${s.dataset}: the failing page went through; going on`);
			}
		}
	};
}

/**
 * Polls every rebuild until it has finished (or `timeoutMs` passed: the rebuilds go on in the
 * background); a status from before the one started (an older started_at) does not count.
 */
async function waitFor(client: Hotpath, started: RebuildStatus[], intervalMs: number, timeoutMs: number, progress: Progress): Promise<RebuildStatus[]> {
	const deadline = Date.now() + timeoutMs;
	const reportErrors = errorReporter((line) => progress.note(line));
	let current = started;
	for (;;) {
		const total = current.reduce((n, s) => n + (s.total_keys ?? 0), 0);
		const done = current.reduce((n, s) => n + s.keys_done, 0);
		progress.update({ done: total ? (done / total) * 1000 : 0, items: done });
		reportErrors(current);
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
					const { started, otherModeRunning } = await startRebuilds(client, dataset, o.mode, (line) => out.note(line));
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
					if (otherModeRunning.length)
						out.note(
							`not ${o.mode === "refill" ? "refilled" : "dropped"} (a rebuild of the other mode was running): ${otherModeRunning.map((s) => s.dataset).join(", ")}`,
						);
					return failed.length || running.length || otherModeRunning.length ? 1 : 0;
				},
			),
		);
}
