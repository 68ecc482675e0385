/**
 * Deterministic chunking: rows go into a chunk until it holds `rows` rows or one more would pass
 * `bytes`. The same file read with the same limits always gives the same chunks, from the start
 * or from any chunk boundary, which is what lets a checkpoint name chunks by their index.
 */
import type { Encoded } from "./rows.ts";
import type { Position, SourceItem } from "./source.ts";

export interface ChunkLimits {
	/** Rows per chunk (the import route takes at most 5,000). */
	rows: number;
	/** Bytes of NDJSON per chunk (the import route takes at most 5 MiB). */
	bytes: number;
}

/** A row refused before sending (unreadable, untyped), or by the server: its line or row number and why. */
export interface RowRejection {
	pos: number;
	error: string;
}

export interface Chunk {
	index: number;
	/** Encoded rows, the NDJSON body's lines. */
	lines: string[];
	/** Line or row number of each line, so a rejection's body index maps back to the file. */
	positions: number[];
	/** Rows refused before sending. */
	localRejects: RowRejection[];
	/** Rows read into this chunk: lines and local rejects. */
	items: number;
	bytes: number;
	/** Where reading resumes after this chunk. */
	end: Position;
}

export async function* chunked(
	batches: AsyncIterable<SourceItem[]>,
	encode: (item: SourceItem) => Encoded,
	limits: ChunkLimits,
	first: { index: number; end: Position },
): AsyncGenerator<Chunk> {
	const fresh = (index: number, end: Position): Chunk => ({ index, lines: [], positions: [], localRejects: [], items: 0, bytes: 0, end });
	let chunk = fresh(first.index, first.end);
	for await (const batch of batches) {
		for (const item of batch) {
			const encoded = encode(item);
			if ("error" in encoded) {
				chunk.localRejects.push({ pos: item.pos, error: encoded.error });
			} else {
				const size = Buffer.byteLength(encoded.text) + 1;
				if (size > limits.bytes) {
					chunk.localRejects.push({ pos: item.pos, error: `row is ${size} bytes encoded, more than a chunk's ${limits.bytes}` });
				} else {
					if (chunk.lines.length && (chunk.lines.length >= limits.rows || chunk.bytes + size > limits.bytes)) {
						yield chunk;
						chunk = fresh(chunk.index + 1, chunk.end);
					}
					chunk.lines.push(encoded.text);
					chunk.positions.push(item.pos);
					chunk.bytes += size;
				}
			}
			chunk.items++;
			chunk.end = { offset: item.end, pos: item.pos };
		}
	}
	if (chunk.items) yield chunk;
}
