/**
 * Parquet through hyparquet, a range of rows of one row group at a time from an async file buffer
 * (byte ranges of the file, never the whole file). Columns are decoded as columns and rows are
 * built from them a thousand at a time as they are encoded, so the rows of a group never all exist
 * as objects at once. Snappy, gzip, brotli, zstd and lz4 pages are decompressed by hyparquet-compressors.
 */
import { asyncBufferFromFile, type ColumnData, type DecodedArray, type FileMetaData, parquetMetadataAsync, parquetRead, parquetSchema } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import type { Position, Source, SourceItem } from "./source.ts";

/** Rows decoded per read: a row group is read in ranges of this many rows (peak memory grows with it). */
export const RANGE_ROWS = 5000;
/** Rows built into objects at a time. */
const BATCH_ROWS = 1000;

/**
 * The row ranges to read, in order. A range fetches only the pages it needs when the file has an
 * offset index; without one hyparquet fetches the group's column chunks again per range and skips
 * the pages before it, which costs time on very large row groups but keeps memory bounded.
 */
export function readPlan(metadata: FileMetaData, fromRow = 0): [number, number][] {
	const ranges: [number, number][] = [];
	let groupStart = 0;
	for (const group of metadata.row_groups) {
		const rows = Number(group.num_rows);
		const groupEnd = groupStart + rows;
		for (let s = Math.max(groupStart, fromRow); s < groupEnd; s += RANGE_ROWS) ranges.push([s, Math.min(groupEnd, s + RANGE_ROWS)]);
		groupStart = groupEnd;
	}
	return ranges;
}

export async function parquetSource(file: string): Promise<Source> {
	const buffer = await asyncBufferFromFile(file);
	let metadata: FileMetaData;
	try {
		metadata = await parquetMetadataAsync(buffer);
	} catch (e) {
		throw new Error(`${file}: not a Parquet file: ${(e as Error).message}`);
	}
	return {
		format: "parquet",
		unit: "row",
		total: Number(metadata.num_rows),
		seekable: true,
		columns: async () => parquetSchema(metadata).children.map((c) => c.element.name),
		items: (from?: Position) => parquetItems(buffer, metadata, from?.offset ?? 0),
	};
}

/** One column's decoded runs; a run may start before the range asked for. */
type Runs = { start: number; data: DecodedArray }[];

function valueAt(runs: Runs, row: number): unknown {
	for (const run of runs) if (row >= run.start && row < run.start + run.data.length) return run.data[row - run.start];
	return null;
}

async function* parquetItems(file: Awaited<ReturnType<typeof asyncBufferFromFile>>, metadata: FileMetaData, fromRow: number): AsyncGenerator<SourceItem[]> {
	const names = parquetSchema(metadata).children.map((c) => c.element.name);
	for (const [rowStart, rowEnd] of readPlan(metadata, fromRow)) {
		const columns = new Map<string, Runs>(names.map((n) => [n, []]));
		await parquetRead({
			file,
			metadata,
			rowStart,
			rowEnd,
			compressors,
			useOffsetIndex: true,
			onChunk: (c: ColumnData) => columns.get(c.columnName)?.push({ start: c.rowStart, data: c.columnData }),
		});
		for (let b = rowStart; b < rowEnd; b += BATCH_ROWS) {
			const batch: SourceItem[] = [];
			for (let r = b; r < Math.min(rowEnd, b + BATCH_ROWS); r++) {
				const row: Record<string, unknown> = {};
				for (const [name, runs] of columns) row[name] = valueAt(runs, r);
				batch.push({ pos: r + 1, row, end: r + 1 });
			}
			yield batch;
		}
	}
}
