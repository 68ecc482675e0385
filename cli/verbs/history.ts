/**
 * `hotpath history DATASET KEY`: a record's versions in event_time order, each the whole state
 * after that event; one page, or every page with --all.
 */
import type { HistoryOptions, HistoryVersion } from "@hotpath/client";
import type { Command } from "commander";
import { intOption, nonEmptyOption, timeOption, verbAction } from "../context.ts";
import { count, table } from "../output.ts";
import { fitToTerminal, readPages } from "./paging.ts";

interface HistoryFlags {
	since?: string | number;
	until?: string | number;
	limit?: number;
	cursor?: string;
	all?: boolean;
	ndjson?: boolean;
}

/** The versions as a table, a line per version. */
export function versionsTable(versions: HistoryVersion[], columns?: number): string {
	return table(
		["EVENT_TIME", "OP", "EVENT_ID", "VALUE"],
		versions.map((v) => [v.event_time, v.op, v.event_id, v.value === null ? null : JSON.stringify(v.value)]),
	)
		.split("\n")
		.map((line) => fitToTerminal(line, columns))
		.join("\n");
}

export function registerHistory(program: Command): void {
	program
		.command("history")
		.description("a record's versions in event_time order, each the whole state after that event")
		.argument("<dataset>")
		.argument("<key>")
		.option("--since <time>", "versions at or after this time (RFC 3339 or epoch ms)", timeOption)
		.option("--until <time>", "versions at or before this time (RFC 3339 or epoch ms)", timeOption)
		.option("--limit <n>", "versions per page (1-1000; default 100)", intOption(1, 1000))
		.option("--cursor <cursor>", "the next page (next_cursor of the previous one, with the same --since and --until)", nonEmptyOption)
		.option("--all", "every page")
		.option("--ndjson", "one JSON version per line on stdout (no page envelope)")
		.addHelpText(
			"after",
			`
Examples:
  hotpath history demo_users u1
  hotpath history demo_users u1 --since 2026-01-01T00:00:00Z --all --ndjson`,
		)
		.action(
			verbAction(async ({ client, out }, [dataset, key]: [string, string], f: HistoryFlags) => {
				const opts: HistoryOptions = { since: f.since, until: f.until, limit: f.limit };
				const read = await readPages(
					(cursor) => client.history(dataset, key, { ...opts, cursor }),
					(p) => p.versions,
					f,
				);
				const versions = read.items;
				const page = read.last;
				const nextCursor = read.nextCursor;
				if (f.ndjson) {
					if (nextCursor) out.note(`more: --cursor ${nextCursor}`);
					return 0;
				}
				const tty = process.stdout.isTTY === true;
				out.result(f.all ? { versions, next_cursor: null, history_begins_at: page.history_begins_at } : page, () =>
					versions.length
						? versionsTable(versions, tty ? process.stdout.columns : undefined)
						: `no versions of "${key}" in ${dataset}${f.since !== undefined || f.until !== undefined ? " in that range" : ""}`,
				);
				if (!out.json) {
					out.note(`${count(versions.length)} version${versions.length === 1 ? "" : "s"}; history begins at ${page.history_begins_at}`);
					if (nextCursor) out.note(`more: --cursor ${nextCursor}  (or --all for every page)`);
				}
				return 0;
			}),
		);
}
