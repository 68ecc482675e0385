/** CSV with a header row, streamed through csv-parse. A record with the wrong number of cells is rejected by its line. */
import { createReadStream } from "node:fs";
import { type CsvError, parse } from "csv-parse";
import type { Position, Source, SourceItem } from "./source.ts";

interface ParsedRecord {
	record: Record<string, string>;
	info: { lines: number; bytes: number };
}

export function csvSource(file: string, size: number): Source {
	return {
		format: "csv",
		unit: "line",
		total: size,
		// csv-parse needs the header and a record boundary to start from; a resumed load re-reads and skips.
		seekable: false,
		columns: () => csvHeader(file),
		items: (_from?: Position) => csvItems(file, size),
	};
}

/** The header row's names (parsed as the rows are: a byte-order mark dropped, quotes honoured). */
async function csvHeader(file: string): Promise<string[]> {
	const parser = createReadStream(file, { highWaterMark: 1 << 16 }).pipe(parse({ bom: true, to_line: 1, relax_column_count: true }));
	try {
		for await (const header of parser as AsyncIterable<string[]>) return header;
	} catch (e) {
		throw new Error(`${file}: not valid CSV: ${(e as Error).message}`);
	} finally {
		parser.destroy();
	}
	return [];
}

/** How many CR LF pairs the cells hold: csv-parse counts each of them as two lines (the CR and the LF) inside a quoted cell. */
function crlfsIn(cells: Iterable<unknown>): number {
	let n = 0;
	for (const cell of cells) if (typeof cell === "string") for (let i = cell.indexOf("\r\n"); i !== -1; i = cell.indexOf("\r\n", i + 2)) n++;
	return n;
}

/** csv-parse quotes the whole field it gave up on ('value is "..."'): a rejection stays one readable line. */
const MAX_REASON = 200;
const clipped = (message: string): string => (message.length > MAX_REASON ? `${message.slice(0, MAX_REASON)}...` : message);

async function* csvItems(file: string, size: number): AsyncGenerator<SourceItem[]> {
	// csv-parse's line count runs ahead by one for every CR LF inside a quoted cell so far (a cell
	// spanning lines of a Windows file); the callbacks below run in file order and count them, so a
	// row's number is the line where it ends, as in a file with LF line ends.
	let extraLines = 0;
	// Records that fail (a wrong cell count) are reported through on_skip while the parser runs
	// ahead of the reader; they are held here and put back in line order.
	const skipped: SourceItem[] = [];
	// csv-parse reports a malformed record once per fault it finds in it (`1,["a","b"]` is an
	// opening quote, another, then a closing one): the record is rejected once, with the first.
	let lastSkippedPos = -1;
	const parser = createReadStream(file, { highWaterMark: 1 << 20 }).pipe(
		parse({
			// A header naming a column twice would keep only the last cell of it, silently: refuse the file.
			columns: (header: string[]) => {
				const seen = new Set<string>();
				for (const name of header) {
					if (seen.has(name)) throw new Error(`the header names column "${name}" twice`);
					seen.add(name);
				}
				extraLines += crlfsIn(header);
				return header;
			},
			info: true,
			bom: true,
			skip_empty_lines: true,
			skip_records_with_error: true,
			on_record: (parsed: ParsedRecord) => {
				extraLines += crlfsIn(Object.values(parsed.record));
				return { record: parsed.record, info: { ...parsed.info, lines: parsed.info.lines - extraLines } };
			},
			on_skip: (err: CsvError | undefined) => {
				if (!err) return undefined;
				const failed = err as CsvError & { lines?: number; record?: unknown };
				if (Array.isArray(failed.record)) extraLines += crlfsIn(failed.record);
				const pos = Number(failed.lines ?? 0) - extraLines;
				if (pos === lastSkippedPos) return undefined;
				lastSkippedPos = pos;
				skipped.push({ pos, error: clipped(err.message.replace(/ on line \d+$/, "")), end: 0 });
				return undefined;
			},
		}),
	);
	let batch: SourceItem[] = [];
	try {
		for await (const { record, info } of parser as AsyncIterable<ParsedRecord>) {
			while (skipped.length && (skipped[0]?.pos ?? 0) < info.lines) batch.push({ ...(skipped.shift() as SourceItem), end: info.bytes });
			batch.push({ pos: info.lines, row: record, end: info.bytes });
			if (batch.length >= 1000) {
				yield batch;
				batch = [];
			}
		}
	} catch (e) {
		throw new Error(`${file}: not valid CSV: ${(e as Error).message}`);
	}
	for (const s of skipped) batch.push({ ...s, end: s.end || size });
	if (batch.length) yield batch;
}
