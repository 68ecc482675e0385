/** NDJSON / JSON Lines: one JSON object per line, read as raw lines (byte offsets kept, so a resumed load can seek). */
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import type { Position, Source, SourceItem } from "./source.ts";

const NL = 0x0a;

/**
 * Splits a byte stream into lines: one batch per chunk read. Blank lines are skipped but counted,
 * a trailing \r is dropped, and `end` is the byte offset just past each line's newline.
 */
export async function* ndjsonLines(stream: AsyncIterable<Buffer>, from: Position = { offset: 0, pos: 0 }): AsyncGenerator<SourceItem[]> {
	let carry: Buffer | undefined;
	let offset = from.offset;
	let line = from.pos;
	const item = (buf: Buffer, start: number, stop: number, end: number): SourceItem | undefined => {
		line++;
		let e = stop;
		if (e > start && buf[e - 1] === 0x0d) e--;
		const text = buf.toString("utf8", start, e);
		return text.trim() === "" ? undefined : { pos: line, text, end };
	};
	for await (const chunk of stream) {
		const buf = carry ? Buffer.concat([carry, chunk]) : chunk;
		const batch: SourceItem[] = [];
		let start = 0;
		for (let nl = buf.indexOf(NL, start); nl !== -1; nl = buf.indexOf(NL, start)) {
			const it = item(buf, start, nl, offset + nl + 1);
			if (it) batch.push(it);
			start = nl + 1;
		}
		offset += start;
		carry = start < buf.length ? buf.subarray(start) : undefined;
		if (batch.length) yield batch;
	}
	if (carry?.length) {
		const it = item(carry, 0, carry.length, offset + carry.length);
		if (it) yield [it];
	}
}

export function ndjsonSource(file: string, size: number): Source {
	return {
		format: "ndjson",
		unit: "line",
		total: size,
		seekable: true,
		items: (from?: Position) =>
			ndjsonLines(createReadStream(file, { start: from?.offset ?? 0, highWaterMark: 1 << 20 }) as Readable & AsyncIterable<Buffer>, from),
	};
}
