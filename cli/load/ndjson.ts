/** NDJSON / JSON Lines: one JSON object per line, read as raw lines (byte offsets kept, so a resumed load can seek). */
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { withoutBom } from "../text.ts";
import type { Position, Source, SourceItem } from "./source.ts";

const NL = 0x0a;

/**
 * Splits a byte stream into lines: one batch per chunk read. Blank lines are skipped but counted,
 * a byte-order mark before the first line and a trailing \r are dropped, and `end` is the byte offset just past each line's newline.
 */
export async function* ndjsonLines(stream: AsyncIterable<Buffer>, from: Position = { offset: 0, pos: 0 }): AsyncGenerator<SourceItem[]> {
	/** Bytes of a line begun in an earlier read. */
	let carry: Buffer | undefined;
	/** File offset of the current read's first byte. */
	let base = from.offset;
	let line = from.pos;
	const item = (buf: Buffer, start: number, stop: number, end: number): SourceItem | undefined => {
		line++;
		let e = stop;
		if (e > start && buf[e - 1] === 0x0d) e--;
		let text = buf.toString("utf8", start, e);
		// A byte-order mark (as Windows tools write) before the file's first line is not part of its JSON.
		if (line === 1) text = withoutBom(text);
		return text.trim() === "" ? undefined : { pos: line, text, end };
	};
	for await (const chunk of stream) {
		const batch: SourceItem[] = [];
		let start = 0;
		let nl = chunk.indexOf(NL);
		if (carry) {
			if (nl === -1) {
				carry = Buffer.concat([carry, chunk]);
				base += chunk.length;
				continue;
			}
			// Only the line that straddles two reads is copied; the others are decoded from the read in place.
			const joined = Buffer.concat([carry, chunk.subarray(0, nl)]);
			const it = item(joined, 0, joined.length, base + nl + 1);
			if (it) batch.push(it);
			start = nl + 1;
			nl = chunk.indexOf(NL, start);
		}
		for (; nl !== -1; nl = chunk.indexOf(NL, start)) {
			const it = item(chunk, start, nl, base + nl + 1);
			if (it) batch.push(it);
			start = nl + 1;
		}
		carry = start < chunk.length ? Buffer.from(chunk.subarray(start)) : undefined;
		base += chunk.length;
		if (batch.length) yield batch;
	}
	if (carry?.length) {
		const it = item(carry, 0, carry.length, base);
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
			ndjsonLines(createReadStream(file, { start: from?.offset ?? 0, highWaterMark: 1 << 16 }) as Readable & AsyncIterable<Buffer>, from),
	};
}
