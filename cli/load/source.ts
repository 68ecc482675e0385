/** What a file source yields, and the formats `hotpath load` reads. */

export type Format = "ndjson" | "csv" | "parquet";

/** One row as read, before it is typed and encoded. */
export interface SourceItem {
	/** 1-based line (NDJSON, CSV) or row (Parquet) number: named in reports, and part of the row's id. */
	pos: number;
	/** The raw JSON text of the row (NDJSON). */
	text?: string;
	/** The row as an object (CSV: text cells; Parquet: typed values). */
	row?: Record<string, unknown>;
	/** Why the source could not read this row (it is rejected without being sent). */
	error?: string;
	/** Where reading would resume after this row: a byte offset (NDJSON, CSV) or a row count (Parquet). */
	end: number;
}

/** A place in the file a resumed load can start from: `offset` as in SourceItem.end, `pos` the last row number before it. */
export interface Position {
	offset: number;
	pos: number;
}

export interface Source {
	format: Format;
	/** What `pos` counts, for messages: "line" or "row". */
	unit: "line" | "row";
	/** The amount progress counts towards: bytes (NDJSON, CSV) or rows (Parquet). */
	total: number;
	/** Whether `items(from)` can start in the middle (else a resumed load reads from the start and skips). */
	seekable: boolean;
	/** The file's column names, where it declares them (CSV's header, Parquet's schema); NDJSON rows have their own. */
	columns?(): Promise<string[]>;
	/** Rows in file order, in batches. */
	items(from?: Position): AsyncIterable<SourceItem[]>;
}

/** The format from --format or the file's extension. */
export function formatOf(file: string, given?: string): Format | undefined {
	const f = (given ?? file.split(".").pop() ?? "").toLowerCase();
	// Not ".json": such a file is as often one JSON array as it is JSON Lines.
	if (f === "ndjson" || f === "jsonl") return "ndjson";
	if (f === "csv") return "csv";
	if (f === "parquet" || f === "pq") return "parquet";
	return undefined;
}
