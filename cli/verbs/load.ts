/** `hotpath load DATASET FILE`: bulk-loads NDJSON, CSV or Parquet through the import route, resumable. */
import { existsSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import { intOption, verbAction } from "../context.ts";
import { DEFAULTS, MAX_CHUNK_BYTES, MAX_CHUNK_ROWS } from "../load/limits.ts";
import { LoadFailed, type LoadReport } from "../load/report.ts";
import { formatOf } from "../load/source.ts";
import { count, duration, EXIT, errorDocument, exitCodeOf, reportError, UsageError } from "../output.ts";

interface LoadFlags {
	format?: string;
	eventTimeColumn?: string;
	chunkRows?: number;
	chunkBytes?: number;
	concurrency?: number;
	resume?: boolean;
	checkpoint?: string;
	progress: boolean;
}

/** "4194304", "512k", "4m", "4MiB" -> bytes, from 1 KiB to the route's 5 MiB. */
export const sizeOption = (raw: string): number => {
	const m = /^(\d+(?:\.\d+)?)\s*(k|m|kb|mb|kib|mib)?$/i.exec(raw.trim());
	const n = m ? Math.floor(Number(m[1]) * (m[2]?.toLowerCase().startsWith("m") ? 1024 * 1024 : m[2] ? 1024 : 1)) : Number.NaN;
	if (!(n >= 1024 && n <= MAX_CHUNK_BYTES)) throw new InvalidArgumentError(`expected a size from 1k to 5m (${MAX_CHUNK_BYTES} bytes)`);
	return n;
};

const SHOWN_REJECTIONS = 20;

function summary(r: LoadReport): string {
	const lines = [
		`${r.interrupted ? "stopped after" : "loaded"} ${count(r.rows)} rows from ${r.file} into ${r.dataset} in ${duration(r.elapsed_ms)} (${count(r.rows_per_s)} rows/s${r.resumed ? " this run" : ""}): ${count(r.imported)} imported, ${count(r.unchanged)} unchanged, ${count(r.rejected)} rejected`,
	];
	if (r.rejected) {
		lines.push("rejected:");
		for (const x of r.rejections.slice(0, SHOWN_REJECTIONS)) lines.push(`  ${r.unit} ${x.pos}: ${x.error}`);
		if (r.rejected > SHOWN_REJECTIONS) lines.push(`  ... and ${count(r.rejected - SHOWN_REJECTIONS)} more (--json lists up to 1,000)`);
	}
	return lines.join("\n");
}

export function registerLoad(program: Command): void {
	program
		.command("load")
		.description("bulk-load a file (.ndjson/.jsonl, .csv, .parquet) into a dataset, in chunks, resumable with --resume")
		.argument("<dataset>")
		.argument("<file>")
		.addOption(new Option("--format <format>", "file format (default: from the extension)").choices(["ndjson", "jsonl", "csv", "parquet"]))
		.option("--event-time-column <column>", "take each row's event_time from this column (default: _event_time, else the file's mtime)")
		.option("--chunk-rows <n>", `rows per request (default ${DEFAULTS.chunkRows}, at most ${MAX_CHUNK_ROWS})`, intOption(1, MAX_CHUNK_ROWS))
		.option("--chunk-bytes <size>", "bytes per request, e.g. 4m (default 4m, at most 5m)", sizeOption)
		.option("--concurrency <n>", `requests in flight (default ${DEFAULTS.concurrency})`, intOption(1, 64))
		.option("--resume", "continue an interrupted load of the same file from its checkpoint")
		.option("--checkpoint <path>", "where the checkpoint is kept (default: FILE.hotpath-load.json)")
		.option("--no-progress", "no progress bar or lines on stderr")
		.addHelpText(
			"after",
			"\nExit codes: 0 loaded; 1 rows rejected, or a request failed (the report, --json too, holds what was done before it);\n" +
				"2 bad usage; 130 stopped by Ctrl-C (SIGINT), 143 by SIGTERM. A load stopped part-way keeps its checkpoint: --resume continues it.",
		)
		.action(
			verbAction(async ({ client, out }, [dataset, file]: [string, string], flags: LoadFlags) => {
				const format = formatOf(file, flags.format);
				if (!format) throw new UsageError(`cannot tell the format of ${file} from its extension: give --format ndjson|csv|parquet`);
				const stop = new AbortController();
				let stoppedBy: NodeJS.Signals | undefined;
				const onSignal = (signal: NodeJS.Signals) => {
					if (stoppedBy) process.exit(exitCodeOf(signal));
					stoppedBy = signal;
					out.note("\nstopping: finishing the chunks in flight, then saving the checkpoint (Ctrl-C again to quit at once)");
					stop.abort();
				};
				process.on("SIGINT", onSignal);
				process.on("SIGTERM", onSignal);
				const checkpoint = flags.checkpoint ?? `${file}.hotpath-load.json`;
				const resumeHint = `run the same command with --resume to continue (checkpoint: ${checkpoint})`;
				let report: LoadReport;
				try {
					// The readers (csv-parse, hyparquet) load only when a load runs: every other verb starts faster.
					const { runLoad } = await import("../load/run.ts");
					report = await runLoad({
						client,
						dataset,
						file,
						format,
						chunkRows: flags.chunkRows,
						chunkBytes: flags.chunkBytes,
						concurrency: flags.concurrency,
						eventTimeColumn: flags.eventTimeColumn,
						resume: flags.resume,
						checkpointPath: flags.checkpoint,
						progress: flags.progress,
						signal: stop.signal,
						note: (m) => out.note(m),
					});
				} catch (e) {
					if (e instanceof LoadFailed) {
						// The error as any verb reports it (stderr, its exit code), and what was done before it as the result.
						const code = reportError(e.cause, false);
						out.result({ ...e.report, error: errorDocument(e.cause) }, () => summary(e.report));
						out.note(`the load stopped; ${resumeHint}`);
						return code;
					}
					if (!(e instanceof UsageError) && existsSync(checkpoint)) out.note(`the load stopped; ${resumeHint}`);
					throw e;
				} finally {
					process.off("SIGINT", onSignal);
					process.off("SIGTERM", onSignal);
				}
				out.result(report, () => summary(report));
				if (report.interrupted) {
					out.note(`interrupted: ${resumeHint}`);
					return exitCodeOf(stoppedBy ?? "SIGINT");
				}
				return report.rejected ? EXIT.failed : EXIT.ok;
			}),
		);
}
