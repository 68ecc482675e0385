/**
 * The checkpoint of a load: which chunks are done, what they did, and where a resumed load starts.
 * Rewritten atomically (temp file + rename) after every chunk, so a crash or SIGKILL loses at most
 * the chunks in flight, which a resumed load sends again (their rows have the same ids, so the
 * server counts them as unchanged, not twice).
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { UsageError } from "../output.ts";
import type { RowRejection } from "./chunks.ts";
import type { Position } from "./source.ts";

/** What must match for a checkpoint to apply to this load. */
export interface LoadIdentity {
	dataset: string;
	file: string;
	size: number;
	mtime_ms: number;
	format: string;
	event_time_column: string | null;
}

export interface ChunkSettings {
	chunk_rows: number;
	chunk_bytes: number;
}

export interface Totals {
	rows: number;
	imported: number;
	unchanged: number;
	rejected: number;
}

export interface ChunkOutcome {
	items: number;
	imported: number;
	unchanged: number;
	rejections: RowRejection[];
	end: Position;
}

interface State {
	version: 1;
	identity: LoadIdentity;
	chunks: ChunkSettings;
	/** Chunks [0, prefix.chunks) are all done; reading can resume at prefix.end. */
	prefix: { chunks: number; end: Position };
	/** Done chunks past the prefix (they finished out of order), with where each ends. */
	ahead: [number, Position][];
	totals: Totals;
	/** The first MAX_KEPT rejections, by line or row number. */
	rejections: RowRejection[];
	updated_at: string;
}

export const MAX_KEPT_REJECTIONS = 1000;

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isPosition = (v: unknown): v is Position => isObject(v) && typeof v.offset === "number" && typeof v.pos === "number";

/** The parts of a checkpoint a load reads, each of its type. */
function isState(s: State): boolean {
	const { identity, chunks, prefix, ahead, totals, rejections } = s as unknown as Record<string, unknown>;
	return (
		isObject(identity) &&
		isObject(chunks) &&
		typeof chunks.chunk_rows === "number" &&
		typeof chunks.chunk_bytes === "number" &&
		isObject(prefix) &&
		typeof prefix.chunks === "number" &&
		isPosition(prefix.end) &&
		Array.isArray(ahead) &&
		ahead.every((a) => Array.isArray(a) && typeof a[0] === "number" && isPosition(a[1])) &&
		isObject(totals) &&
		["rows", "imported", "unchanged", "rejected"].every((k) => typeof totals[k] === "number") &&
		Array.isArray(rejections)
	);
}

/**
 * Held while a load works with a checkpoint: a second load of it (a --resume started while the
 * first still runs, say after killing only `npx`, its parent) is refused instead of both
 * rewriting the same file. The lock file holds the holder's pid; one whose process is gone (a
 * crash, a second Ctrl-C) is taken over.
 */
export class CheckpointLock {
	readonly #path: string;

	private constructor(path: string) {
		this.#path = path;
	}

	static acquire(checkpointPath: string): CheckpointLock {
		const lockPath = `${checkpointPath}.lock`;
		for (let attempt = 0; attempt < 3; attempt++) {
			try {
				writeFileSync(lockPath, String(process.pid), { flag: "wx" });
				return new CheckpointLock(lockPath);
			} catch (e) {
				const code = (e as NodeJS.ErrnoException).code;
				if (code !== "EEXIST") throw new UsageError(`cannot write the checkpoint ${checkpointPath} (${code ?? e}); choose another place with --checkpoint`);
			}
			let holder = Number.NaN;
			try {
				holder = Number(readFileSync(lockPath, "utf8"));
			} catch {
				// Gone meanwhile: try again.
			}
			if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && isRunning(holder)) {
				throw new UsageError(
					`another hotpath load (pid ${holder}) is using the checkpoint ${checkpointPath}: wait for it to end or stop it (if no load is running, delete ${lockPath})`,
				);
			}
			rmSync(lockPath, { force: true });
		}
		throw new UsageError(`cannot lock the checkpoint ${checkpointPath}: other loads keep taking it`);
	}

	/** Frees the lock, if it is still this process's. */
	release(): void {
		try {
			if (readFileSync(this.#path, "utf8") === String(process.pid)) rmSync(this.#path, { force: true });
		} catch {
			// Already gone.
		}
	}
}

/** Whether a process with this pid exists (EPERM: it does, as another user's). */
function isRunning(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch (e) {
		return (e as NodeJS.ErrnoException).code === "EPERM";
	}
}

export class Checkpoint {
	readonly path: string;
	readonly #state: State;
	readonly #ahead: Map<number, Position>;

	private constructor(path: string, state: State) {
		this.path = path;
		this.#state = state;
		this.#ahead = new Map(state.ahead);
	}

	/** Default place: next to the file. */
	static defaultPath(file: string): string {
		return `${file}.hotpath-load.json`;
	}

	static fresh(path: string, identity: LoadIdentity, chunks: ChunkSettings): Checkpoint {
		return new Checkpoint(path, {
			version: 1,
			identity,
			chunks,
			prefix: { chunks: 0, end: { offset: 0, pos: 0 } },
			ahead: [],
			totals: { rows: 0, imported: 0, unchanged: 0, rejected: 0 },
			rejections: [],
			updated_at: new Date().toISOString(),
		});
	}

	/** The checkpoint at `path` if it is one for this very load; undefined when there is none. */
	static resume(path: string, identity: LoadIdentity): Checkpoint | undefined {
		if (!existsSync(path)) return undefined;
		let state: State;
		try {
			state = JSON.parse(readFileSync(path, "utf8")) as State;
		} catch (e) {
			throw new UsageError(`checkpoint ${path} is unreadable (${(e as Error).message}); delete it to load from the start`);
		}
		if (state?.version !== 1) throw new UsageError(`checkpoint ${path} has an unknown version`);
		// Valid JSON of another shape (edited, or another program's file) would fail deep inside the load with a TypeError.
		if (!isState(state)) throw new UsageError(`${path} is not a checkpoint of hotpath load; delete it to load from the start`);
		for (const k of Object.keys(identity) as (keyof LoadIdentity)[]) {
			if (state.identity[k] !== identity[k]) {
				throw new UsageError(
					`checkpoint ${path} is for another load: its ${k} is ${JSON.stringify(state.identity[k])}, this load's ${JSON.stringify(identity[k])}` +
						(k === "size" || k === "mtime_ms" ? " (the file changed since; load it again without --resume)" : ""),
				);
			}
		}
		return new Checkpoint(path, state);
	}

	get chunks(): ChunkSettings {
		return this.#state.chunks;
	}

	get totals(): Totals {
		return this.#state.totals;
	}

	get rejections(): RowRejection[] {
		return this.#state.rejections;
	}

	get prefix(): { chunks: number; end: Position } {
		return this.#state.prefix;
	}

	/** Chunks done: the prefix and those ahead of it. */
	get doneChunks(): number {
		return this.#state.prefix.chunks + this.#ahead.size;
	}

	isDone(index: number): boolean {
		return index < this.#state.prefix.chunks || this.#ahead.has(index);
	}

	/** Records a finished chunk and saves. */
	record(index: number, outcome: ChunkOutcome): void {
		const s = this.#state;
		s.totals.rows += outcome.items;
		s.totals.imported += outcome.imported;
		s.totals.unchanged += outcome.unchanged;
		s.totals.rejected += outcome.rejections.length;
		for (const r of outcome.rejections) if (s.rejections.length < MAX_KEPT_REJECTIONS) s.rejections.push(r);
		this.#ahead.set(index, outcome.end);
		for (let next = this.#ahead.get(s.prefix.chunks); next !== undefined; next = this.#ahead.get(s.prefix.chunks)) {
			this.#ahead.delete(s.prefix.chunks);
			s.prefix = { chunks: s.prefix.chunks + 1, end: next };
		}
		this.save();
	}

	save(): void {
		this.#state.ahead = [...this.#ahead];
		this.#state.updated_at = new Date().toISOString();
		const tmp = `${this.path}.tmp`;
		writeFileSync(tmp, JSON.stringify(this.#state));
		renameSync(tmp, this.path);
	}

	remove(): void {
		rmSync(this.path, { force: true });
	}
}
