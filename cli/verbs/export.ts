/**
 * `hotpath export DATASET`: every record as NDJSON, in the row format `hotpath load` reads, so that
 * exporting and loading into an empty deployment gives equal records (value, event_time, event id).
 */
import { createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import type { ExportedRecord } from "@hotpath/client";
import type { Command } from "commander";
import { intOption, verbAction } from "../context.ts";
import { count, duration } from "../output.ts";
import { Progress } from "../progress.ts";

/** One record as an import row: `{<key field>: key, ...value, _event_time, _id}`; a tombstone as `_op: "delete"`. */
export function exportRow(keyField: string, r: ExportedRecord): Record<string, unknown> {
	if (r.deleted) return { [keyField]: r.key, _op: "delete", _event_time: r.event_time, _id: r.event_id };
	const row: Record<string, unknown> = { [keyField]: r.key, ...r.value, _event_time: r.event_time, _id: r.event_id };
	row[keyField] = r.key;
	return row;
}

/** Writes with back-pressure: waits for 'drain' when the stream's buffer is full. */
async function write(stream: Writable, text: string): Promise<void> {
	if (!stream.write(text))
		await new Promise<void>((resolve, reject) => {
			stream.once("drain", resolve);
			stream.once("error", reject);
		});
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
				const stream: Writable = o.output ? createWriteStream(o.output) : process.stdout;
				// A closed pipe (| head) ends the export quietly.
				let closed = false;
				stream.on("error", (e: NodeJS.ErrnoException) => {
					if (e.code === "EPIPE") closed = true;
					else throw e;
				});
				const progress = new Progress({ label: `export ${dataset}`, noun: "records", quiet: !o.progress || (!o.output && process.stdout.isTTY === true) });
				const started = Date.now();
				let n = 0;
				try {
					for await (const r of client.export(dataset, { pageSize: o.pageSize, includeDeleted: o.includeDeleted === true })) {
						if (closed) break;
						await write(stream, `${JSON.stringify(exportRow(spec.key, r))}\n`);
						n++;
						if (n % 1000 === 0) progress.update({ done: n, items: n });
					}
				} finally {
					progress.stop();
					if (o.output) await new Promise<void>((resolve) => stream.end(resolve));
				}
				const report = { dataset, records: n, file: o.output ?? null, elapsed_ms: Date.now() - started };
				if (o.output) out.result(report, () => `exported ${count(n)} records of ${dataset} to ${o.output} in ${duration(report.elapsed_ms)}`);
				else if (!out.json) out.note(`exported ${count(n)} records of ${dataset} in ${duration(report.elapsed_ms)}`);
				return 0;
			}),
		);
}
