/** What `hotpath load` reports: the totals of a load, and the error of one that failed part-way (no reader loaded here). */
import type { Totals } from "./checkpoint.ts";
import type { RowRejection } from "./chunks.ts";
import type { Format } from "./source.ts";

export interface LoadReport extends Totals {
	dataset: string;
	file: string;
	format: Format;
	/** "line" (NDJSON, CSV) or "row" (Parquet): what rejection positions count. */
	unit: "line" | "row";
	/** Rejections sorted by position (at most the first 1,000 are kept). */
	rejections: RowRejection[];
	elapsed_ms: number;
	/** Rows sent in this run per second of this run. */
	rows_per_s: number;
	resumed: boolean;
	/** True when stopped before the end (Ctrl-C, an error): the checkpoint is kept for --resume. */
	interrupted: boolean;
	checkpoint: string;
	/** When the checkpoint is kept: the first line (or row) a --resume reads; done chunks after it are skipped. */
	resume_from?: number;
}

/** A load that failed part-way: the error, and the report of what was done before it (kept in the checkpoint). */
export class LoadFailed extends Error {
	readonly report: LoadReport;
	override readonly cause: unknown;

	constructor(cause: unknown, report: LoadReport) {
		super(cause instanceof Error ? cause.message : String(cause), { cause });
		this.name = "LoadFailed";
		this.cause = cause;
		this.report = report;
	}
}
