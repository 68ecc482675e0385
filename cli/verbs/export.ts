/**
 * `hotpath export DATASET`: every record as NDJSON, in the row format `hotpath load` reads, so that
 * exporting and loading into an empty deployment gives equal records (value, event_time, event id).
 */
import { createWriteStream, openSync } from "node:fs";
import type { Writable } from "node:stream";
import type { ExportedRecord } from "@hotpath/client";
import type { Command } from "commander";
import { intOption, verbAction } from "../context.ts";
import { count, duration, UsageError } from "../output.ts";
import { Progress } from "../progress.ts";

/** One record as an import row: `{<key field>: key, ...value, _event_time, _id}`; a tombstone as `_op: "delete"`. */
export function exportRow(keyField: string, r: ExportedRecord): Record<string, unknown> {
	if (r.deleted) return { [keyField]: r.key, _op: "delete", _event_time: r.event_time, _id: r.event_id };
	const row: Record<string, unknown> = { [keyField]: r.key, ...r.value, _event_time: r.event_time, _id: r.event_id };
	row[keyField] = r.key;
	return row;
}

/**
 * The output stream's state: a closed pipe (`| head`) ends the export quietly; any other write
 * error is kept and reported once the loop stops (never thrown from an event handler, which
 * would crash the process with a stack).
 */
interface Sink {
	stream: Writable;
	closed: boolean;
	error?: NodeJS.ErrnoException;
}

function sink(stream: Writable): Sink {
	const s: Sink = { stream, closed: false };
	stream.on("error", (e: NodeJS.ErrnoException) => {
		s.closed = true;
		if (e.code !== "EPIPE") s.error ??= e;
	});
	return s;
}

/** Writes with back-pressure: waits for 'drain' when the stream's buffer is full, or until it fails or closes. */
async function write(s: Sink, text: string): Promise<void> {
	if (s.closed || s.stream.write(text)) return;
	await new Promise<void>((resolve) => {
		const done = () => {
			s.stream.off("drain", done);
			s.stream.off("error", done);
			s.stream.off("close", done);
			resolve();
		};
		s.stream.once("drain", done);
		s.stream.once("error", done);
		s.stream.once("close", done);
	});
}

/** Opens the output file now, so that a path that cannot be written is bad usage (exit 2) before any request. */
function openOutput(file: string): Writable {
	let fd: number;
	try {
		fd = openSync(file, "w");
	} catch (e) {
		throw new UsageError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
	}
	return createWriteStream(file, { fd });
}

export function registerExport(program: Command): void {
	program
		.command("export")
		.description("write every record of a dataset as NDJSON (the row format load reads), in key order")
		.argument("<dataset>")
		.option("-o, --output <file>", "write to this file instead of stdout")
		.option("--include-deleted", 'tombstones too, as rows with "_op": "delete"')
		.option("--page-size <n>", "records per request (1-1000)", intOption(1, 1000))
		.option("--no-progress", "no progress on stderr")
		.action(
			verbAction(async ({ client, out }, [dataset]: [string], o: { output?: string; includeDeleted?: boolean; pageSize?: number; progress: boolean }) => {
				const spec = await client.datasets.get(dataset);
				const output = sink(o.output ? openOutput(o.output) : process.stdout);
				const progress = new Progress({ label: `export ${dataset}`, noun: "records", quiet: !o.progress || (!o.output && process.stdout.isTTY === true) });
				const started = Date.now();
				let n = 0;
				try {
					for await (const r of client.export(dataset, { pageSize: o.pageSize, includeDeleted: o.includeDeleted === true })) {
						if (output.closed) break;
						await write(output, `${JSON.stringify(exportRow(spec.key, r))}\n`);
						n++;
						if (n % 1000 === 0) progress.update({ done: n, items: n });
					}
				} finally {
					progress.stop();
					// A file's last writes can fail only as it is flushed (ENOSPC): wait for it to close.
					if (o.output && !output.closed)
						await new Promise<void>((resolve) => {
							output.stream.once("close", resolve);
							output.stream.end();
						});
				}
				if (output.error) throw new Error(`cannot write ${o.output ?? "stdout"}: ${output.error.code ?? output.error.message}`);
				const report = { dataset, records: n, file: o.output ?? null, elapsed_ms: Date.now() - started };
				if (o.output) out.result(report, () => `exported ${count(n)} records of ${dataset} to ${o.output} in ${duration(report.elapsed_ms)}`);
				else if (!out.json) out.note(`exported ${count(n)} records of ${dataset} in ${duration(report.elapsed_ms)}`);
				return 0;
			}),
		);
}
