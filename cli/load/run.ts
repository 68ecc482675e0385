/**
 * `hotpath load`: streams a file into POST /v1/datasets/:name/import in deterministic chunks,
 * several in flight, keeping a checkpoint so that a crash or Ctrl-C can be resumed.
 */
import { createHash } from "node:crypto";
import { existsSync, realpathSync, type Stats, statSync } from "node:fs";
import path from "node:path";
import { type Hotpath, HotpathError, type ImportResult, type Spec } from "@hotpath/client";
import { UsageError } from "../output.ts";
import { Progress } from "../progress.ts";
import { Checkpoint, CheckpointLock, type ChunkOutcome, type LoadIdentity } from "./checkpoint.ts";
import { type Chunk, type ChunkLimits, chunked } from "./chunks.ts";
import { csvSource } from "./csv.ts";
import { DEFAULTS, HEAP_BOUND } from "./limits.ts";
import { heapBounded } from "./memory.ts";
import { ndjsonSource } from "./ndjson.ts";
import { parquetSource } from "./parquet.ts";
import { runPool } from "./pool.ts";
import { LoadFailed, type LoadReport } from "./report.ts";
import { fastLineError, RowEncoder, type Typing } from "./rows.ts";
import type { Format, Source } from "./source.ts";

export interface LoadOptions {
	client: Hotpath;
	dataset: string;
	file: string;
	format: Format;
	chunkRows?: number;
	chunkBytes?: number;
	concurrency?: number;
	eventTimeColumn?: string;
	resume?: boolean;
	checkpointPath?: string;
	/** Progress bar or lines on stderr (default on). */
	progress?: boolean;
	/** Set to stop: no new chunk is sent, those in flight finish, the checkpoint is saved. */
	signal?: AbortSignal;
	note?: (message: string) => void;
}

/** The file's identity: the same file (path, size, mtime) loaded the same way gives the same row ids. */
function idPrefix(identity: LoadIdentity): string {
	const h = createHash("sha256").update(JSON.stringify(identity)).digest("hex").slice(0, 16);
	return `hp:${h}:`;
}

async function openSource(file: string, format: Format, size: number): Promise<Source> {
	switch (format) {
		case "ndjson":
			return ndjsonSource(file, size);
		case "csv":
			return csvSource(file, size);
		case "parquet":
			return parquetSource(file);
	}
}

const typingOf: Record<Format, Typing> = { ndjson: "json", csv: "text", parquet: "parquet" };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The server numbers an NDJSON body's lines from the chunk's start ("line 3 is not valid JSON: ..."),
 * while a rejection is reported at the file's own line: the chunk-relative number is dropped.
 */
const fileRelative = (error: string): string => error.replace(/^line \d+ is not valid JSON: /, "not valid JSON: ");

/**
 * Sends one chunk. A 400 whose items point at rows (`/3`) means no row of the chunk was valid:
 * that is a chunk of rejections, not a failure. 5xx and lost connections are retried (the rows'
 * ids make a resend harmless); anything else stops the load.
 */
export async function importChunk(client: Hotpath, dataset: string, chunk: Chunk): Promise<ImportResult> {
	const rows = chunk.lines.length;
	if (!rows) return { imported: 0, unchanged: 0, rejected: [] };
	const body = `${chunk.lines.join("\n")}\n`;
	// The body holds the rows now; the chunk keeps only their positions while the request is in flight.
	chunk.lines = [];
	let sent: string[] | undefined;
	/** A row's rejection as the file has the row: a line that is not JSON is parsed again here, without the fast path's prefix. */
	const reason = (index: number, error: string): string => {
		const relative = fileRelative(error);
		if (!relative.startsWith("not valid JSON: ")) return relative;
		sent ??= body.split("\n");
		return fastLineError(sent[index] ?? "") ?? relative;
	};
	for (let attempt = 0; ; attempt++) {
		try {
			const result = await client.importNdjson(dataset, body);
			return { ...result, rejected: result.rejected.map((r) => ({ index: r.index, error: reason(r.index, r.error) })) };
		} catch (e) {
			if (!(e instanceof HotpathError)) throw e;
			if (e.status === 400 && e.errors.length && e.errors.every((i) => /^\/\d+(\/|$)/.test(i.pointer))) {
				const why = new Map<number, string>();
				for (const item of e.errors) {
					const index = Number(item.pointer.split("/")[1]);
					const detail = reason(index, item.detail);
					why.set(index, why.has(index) ? `${why.get(index)}; ${detail}` : detail);
				}
				return { imported: 0, unchanged: 0, rejected: Array.from({ length: rows }, (_, index) => ({ index, error: why.get(index) ?? e.detail })) };
			}
			if ((e.status >= 500 || e.status === 0) && attempt < 3) {
				await sleep(1000 * 2 ** attempt);
				continue;
			}
			throw e;
		}
	}
}

/**
 * The dataset's spec, which types CSV and Parquet cells (and tells whether an --event-time-column
 * is a field). The import route needs only the write scope: NDJSON rows go as they are, so a key
 * that may not read specs (403) still loads them, and the server checks each row.
 */
async function readSpec(o: LoadOptions, note: (message: string) => void): Promise<Spec | undefined> {
	try {
		return await o.client.datasets.get(o.dataset);
	} catch (e) {
		if (!(e instanceof HotpathError && e.status === 403)) throw e;
		if (o.format !== "ndjson" || o.eventTimeColumn !== undefined) {
			note(
				`hotpath load reads ${o.dataset}'s spec to type ${o.format === "ndjson" ? "rows with --event-time-column" : `${o.format} cells`}: the key needs the read scope besides write`,
			);
			throw e;
		}
		return undefined;
	}
}

export async function runLoad(o: LoadOptions): Promise<LoadReport> {
	const note = o.note ?? ((m: string) => process.stderr.write(`${m}\n`));
	let stat: Stats;
	let file: string;
	try {
		file = realpathSync(o.file);
		stat = statSync(file);
	} catch (e) {
		throw new UsageError(`cannot read ${o.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
	}
	if (!stat.isFile()) throw new UsageError(`${o.file} is not a file`);
	const lock = CheckpointLock.acquire(o.checkpointPath ?? Checkpoint.defaultPath(o.file));
	try {
		return await loadFile(o, file, stat, note);
	} finally {
		lock.release();
	}
}

/** The load itself, once the file is found and its checkpoint locked. */
async function loadFile(o: LoadOptions, file: string, stat: Stats, note: (message: string) => void): Promise<LoadReport> {
	const identity: LoadIdentity = {
		dataset: o.dataset,
		file,
		size: stat.size,
		mtime_ms: Math.floor(stat.mtimeMs),
		format: o.format,
		event_time_column: o.eventTimeColumn ?? null,
	};
	const wanted = { chunk_rows: o.chunkRows ?? DEFAULTS.chunkRows, chunk_bytes: o.chunkBytes ?? DEFAULTS.chunkBytes };
	const checkpointPath = o.checkpointPath ?? Checkpoint.defaultPath(o.file);

	// Opened before the checkpoint is touched: a file that cannot be read, or a column it lacks, is bad usage that leaves none behind.
	const source = await openSource(file, o.format, stat.size).catch((e: unknown) => {
		throw new UsageError((e as Error).message);
	});
	const column = o.eventTimeColumn;
	let columns: string[] | undefined;
	if (source.columns) {
		columns = await source.columns().catch((e: unknown) => {
			throw new UsageError((e as Error).message);
		});
		// A header naming a column twice fails the reader at its first row: said here, before a checkpoint that --resume could not use.
		const seen = new Set<string>();
		for (const [i, name] of columns.entries()) {
			// A column without a name (a trailing comma) made every row a rejection reading ": unknown field".
			if (name === "") throw new UsageError(`${path.basename(o.file)}: column ${i + 1} of the header has no name (a trailing comma?); name it or remove it`);
			if (seen.has(name)) throw new UsageError(`${path.basename(o.file)}: the header names column "${name}" twice`);
			seen.add(name);
		}
		if (column !== undefined && !columns.includes(column)) {
			throw new UsageError(`--event-time-column ${column}: ${path.basename(o.file)} has no such column (it has ${columns.join(", ") || "none"})`);
		}
	}

	const spec = await readSpec(o, note);
	// Without the key column every row is refused: a file read in the wrong format (a Parquet file
	// with --format csv: a header of binary text and no rows, "loaded 0 rows", exit 0) or another
	// dataset's file. Said before anything is sent, as bad usage, not as one rejection per row.
	if (spec && columns && !columns.includes(spec.key)) {
		const shown = columns.slice(0, 10).map((c) => JSON.stringify(c.length > 40 ? `${c.slice(0, 40)}...` : c));
		throw new UsageError(
			`${path.basename(o.file)} has no column "${spec.key}", ${o.dataset}'s key field (its ${o.format} columns: ${shown.join(", ") || "none"}${columns.length > 10 ? ", ..." : ""}); is it the right file and format?`,
		);
	}

	let checkpoint: Checkpoint | undefined;
	if (o.resume) {
		checkpoint = Checkpoint.resume(checkpointPath, identity);
		if (!checkpoint) note(`no checkpoint at ${checkpointPath}: loading from the start`);
		else {
			if (checkpoint.chunks.chunk_rows !== wanted.chunk_rows || checkpoint.chunks.chunk_bytes !== wanted.chunk_bytes) {
				note(`resuming with the checkpoint's chunk size (${checkpoint.chunks.chunk_rows} rows, ${checkpoint.chunks.chunk_bytes} bytes)`);
			}
			note(`resuming: ${checkpoint.doneChunks} chunk(s), ${checkpoint.totals.rows} row(s) already done`);
		}
	} else if (existsSync(checkpointPath)) {
		note(`starting over: ${checkpointPath} (an earlier, unfinished load) is replaced; --resume would have continued it`);
	}
	checkpoint ??= Checkpoint.fresh(checkpointPath, identity, wanted);
	try {
		checkpoint.save();
	} catch (e) {
		throw new UsageError(`cannot write the checkpoint ${checkpointPath} (${(e as NodeJS.ErrnoException).code ?? e}); choose another place with --checkpoint`);
	}
	const limits: ChunkLimits = { rows: checkpoint.chunks.chunk_rows, bytes: checkpoint.chunks.chunk_bytes };
	const resumed = checkpoint.doneChunks > 0;

	const encoder = new RowEncoder({
		spec,
		typing: typingOf[o.format],
		idPrefix: idPrefix(identity),
		defaultEventTime: identity.mtime_ms,
		eventTimeColumn: o.eventTimeColumn,
	});
	// A seekable source starts after the done prefix; otherwise the file is read from the start and done chunks are skipped.
	const start = source.seekable ? { index: checkpoint.prefix.chunks, end: checkpoint.prefix.end } : { index: 0, end: { offset: 0, pos: 0 } };
	const batches = heapBounded(source.items(start.index ? start.end : undefined), HEAP_BOUND);
	const chunks = chunked(batches, (item) => encoder.encode(item), limits, start);

	const startedAt = Date.now();
	const baseRows = checkpoint.totals.rows;
	let furthest = start.index ? start.end.offset : 0;
	const progress = new Progress({ label: `load ${path.basename(o.file)}`, total: source.total, start: furthest, quiet: o.progress === false });
	const showProgress = () =>
		progress.update({ done: furthest, items: checkpoint.totals.rows, sent: checkpoint.totals.rows - baseRows, rejected: checkpoint.totals.rejected });
	showProgress();

	let interrupted = false;
	let failure: { error: unknown } | undefined;
	try {
		await runPool(chunks, {
			concurrency: o.concurrency ?? DEFAULTS.concurrency,
			stopped: () => {
				interrupted ||= o.signal?.aborted === true;
				return interrupted;
			},
			run: async (chunk) => {
				if (checkpoint.isDone(chunk.index)) return;
				const result = await importChunk(o.client, o.dataset, chunk);
				const outcome: ChunkOutcome = {
					items: chunk.items,
					imported: result.imported,
					unchanged: result.unchanged,
					rejections: [...chunk.localRejects, ...result.rejected.map((r) => ({ pos: chunk.positions[r.index] ?? -1, error: r.error }))],
					end: chunk.end,
				};
				checkpoint.record(chunk.index, outcome);
				furthest = Math.max(furthest, chunk.end.offset);
				showProgress();
			},
		});
	} catch (error) {
		interrupted = true;
		failure = { error };
	} finally {
		progress.stop();
	}
	// A load that failed before any chunk was done (a 403, a dataset gone) has nothing to resume: no checkpoint suggests it.
	const kept = interrupted && !(failure && checkpoint.doneChunks === 0);
	if (kept) checkpoint.save();
	else checkpoint.remove();
	if (failure && !kept) throw failure.error;

	const elapsed = Date.now() - startedAt;
	const report: LoadReport = {
		dataset: o.dataset,
		file: o.file,
		format: o.format,
		unit: source.unit,
		...checkpoint.totals,
		rejections: [...checkpoint.rejections].sort((a, b) => a.pos - b.pos),
		elapsed_ms: elapsed,
		rows_per_s: Math.round(((checkpoint.totals.rows - baseRows) * 1000) / Math.max(1, elapsed)),
		resumed,
		interrupted,
		checkpoint: checkpointPath,
		...(kept ? { resume_from: checkpoint.prefix.end.pos + 1 } : {}),
	};
	// What was done is in the report even when the load failed: a script learns how far it got, not only why it stopped.
	if (failure) throw new LoadFailed(failure.error, report);
	return report;
}
