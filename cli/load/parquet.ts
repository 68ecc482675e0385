/**
 * Parquet through hyparquet, read a slice of rows at a time from an async file buffer (ranges of
 * the file, never the whole file), so memory stays bounded whatever the file's size. Snappy,
 * gzip, brotli, zstd and lz4 pages are decompressed by hyparquet-compressors.
 */
import { asyncBufferFromFile, type FileMetaData, parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import type { Position, Source, SourceItem } from "./source.ts";

/** Rows decoded at once: bounds memory whatever the row groups' size. */
export const SLICE_ROWS = 10_000;

/**
 * The row ranges to read, in order: each row group in slices of SLICE_ROWS rows (a small group in
 * one go). With an offset index hyparquet fetches only the pages a slice needs; without one it
 * fetches the column chunk again per slice and skips the pages before it, which costs time on
 * very large row groups but keeps memory bounded.
 */
export function readPlan(metadata: FileMetaData, fromRow = 0): [number, number][] {
	const ranges: [number, number][] = [];
	let groupStart = 0;
	for (const group of metadata.row_groups) {
		const rows = Number(group.num_rows);
		const groupEnd = groupStart + rows;
		const step = rows <= 2 * SLICE_ROWS ? rows : SLICE_ROWS;
		for (let s = Math.max(groupStart, fromRow); s < groupEnd; s += step) ranges.push([s, Math.min(groupEnd, s + step)]);
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
		items: (from?: Position) => parquetItems(buffer, metadata, from?.offset ?? 0),
	};
}

async function* parquetItems(file: Awaited<ReturnType<typeof asyncBufferFromFile>>, metadata: FileMetaData, fromRow: number): AsyncGenerator<SourceItem[]> {
	for (const [rowStart, rowEnd] of readPlan(metadata, fromRow)) {
		const rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd, compressors, useOffsetIndex: true });
		yield rows.map((row, i) => ({ pos: rowStart + i + 1, row, end: rowStart + i + 1 }));
	}
}
