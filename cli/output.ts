/** What the CLI prints: results on stdout (JSON with --json, text for people otherwise), diagnostics on stderr, errors as exit codes. */
import { constants } from "node:os";
import { CLIENT_PROBLEM, HotpathError } from "@hotpath/client";

/** Exit codes: 0 success, 1 a failed operation, 2 bad usage. A stop by a signal: see exitCodeOf. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/**
 * The exit code of work stopped by a signal: 128 + its number, as a shell reports a process the
 * signal killed (130 for SIGINT, Ctrl-C; 143 for SIGTERM), so scripts and supervisors can tell which.
 */
export const exitCodeOf = (signal: NodeJS.Signals): number => 128 + (constants.signals[signal] ?? 0);

/** Bad usage: a missing argument, a bad option value, an unreadable or malformed input file. Exit 2. */
export class UsageError extends Error {
	constructor(message: string) {
		super(message);
		this.name = "UsageError";
	}
}

/** An operation that ran and failed (rows rejected, a rebuild that failed...). Exit 1; `result` is printed with --json. */
export class OperationFailed extends Error {
	readonly result?: unknown;
	constructor(message: string, result?: unknown) {
		super(message);
		this.name = "OperationFailed";
		this.result = result;
	}
}

let stdoutGone = false;

/** Whether stdout's reader has gone (`| head`): verbs that write many lines stop writing. */
export const stdoutClosed = (): boolean => stdoutGone;

/**
 * A reader that goes away before the CLI is done writing (`| head`, `2>&1 | true`) ends the output
 * quietly, stdout and stderr alike, and the verb's exit code stands. Without a listener, the write's
 * EPIPE is an unhandled 'error' event: the CLI crashed with a stack and exit 1. Any other write
 * error on stdout is reported without a stack (exit 1).
 */
export function endQuietlyOnClosedPipes(): void {
	process.stdout.on("error", (e: NodeJS.ErrnoException) => {
		if (e.code === "EPIPE") stdoutGone = true;
		else {
			process.stderr.write(`hotpath: cannot write stdout: ${e.code ?? e.message}\n`);
			process.exit(EXIT.failed);
		}
	});
	process.stderr.on("error", () => {});
}

export class Output {
	readonly json: boolean;

	constructor(json: boolean) {
		this.json = json;
	}

	/** The verb's result: as one JSON document with --json, else through `human`. */
	result(value: unknown, human: () => string | undefined): void {
		if (this.json) process.stdout.write(`${JSON.stringify(value)}\n`);
		else {
			const text = human();
			if (text !== undefined && text !== "") process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
		}
	}

	/** A note for people, on stderr (never mixed into the result). */
	note(message: string): void {
		process.stderr.write(`${message}\n`);
	}
}

/** An error as --json output holds it: the problem document of an HTTP error, else `{title, detail}`. */
export function errorDocument(e: unknown): object {
	if (e instanceof HotpathError) return e.problem;
	return { title: e instanceof UsageError ? "Bad usage" : "Error", detail: e instanceof Error ? e.message : String(e) };
}

/** Prints an error the way a person (or a script, with --json) wants it, and gives its exit code. Never a stack. */
export function reportError(e: unknown, json: boolean): number {
	if (e instanceof UsageError) {
		process.stderr.write(`hotpath: ${e.message}\n`);
		return EXIT.usage;
	}
	if (e instanceof HotpathError) {
		if (json) process.stdout.write(`${JSON.stringify({ error: errorDocument(e) })}\n`);
		process.stderr.write(`${describeProblem(e)}\n`);
		return EXIT.failed;
	}
	if (e instanceof OperationFailed) {
		if (json && e.result !== undefined) process.stdout.write(`${JSON.stringify(e.result)}\n`);
		process.stderr.write(`hotpath: ${e.message}\n`);
		return EXIT.failed;
	}
	if (json) process.stdout.write(`${JSON.stringify({ error: errorDocument(e) })}\n`);
	process.stderr.write(`hotpath: ${e instanceof Error ? e.message : String(e)}\n`);
	return EXIT.failed;
}

/** `error: Title (status): detail` and one line per item error the detail does not already say. */
export function describeProblem(e: HotpathError, maxItems = 20): string {
	const p = e.problem;
	// "" points at the whole body.
	const itemText = (item: { pointer: string; detail: string }) => `${item.pointer || "body"}: ${item.detail}`;
	const all = p.errors ?? [];
	const heading = `error: ${p.title}${p.status ? ` (${p.status})` : ""}`;
	// A validation error's detail is its items joined with "; " (and a one-item 400 repeats its
	// detail at the item): shown as they were, every item came twice. Such a detail becomes the list.
	const detailIsItems = all.length > 1 && p.detail === all.map(itemText).join("; ");
	const lines = [detailIsItems ? `${heading}:` : `${heading}: ${p.detail}`];
	const items = detailIsItems ? all : all.filter((item) => item.detail !== p.detail && !p.detail.includes(itemText(item)));
	for (const item of items.slice(0, maxItems)) lines.push(`  ${itemText(item)}`);
	if (items.length > maxItems) lines.push(`  ... and ${items.length - maxItems} more`);
	if (p.request_id) lines.push(`  (request id ${p.request_id})`);
	// No answer at all: most often nothing listens there yet.
	if (p.type === CLIENT_PROBLEM.network)
		lines.push("  is Hotpath running there? Start it with `npm run dev`, or point the CLI at it with --url or HOTPATH_URL");
	return lines.join("\n");
}

/** A plain text table: one header row, columns padded to their widest cell. */
export function table(header: string[], rows: (string | number | null | undefined)[][]): string {
	const cells = [header, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))))];
	const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
	return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")).join("\n");
}

/** 1234567 -> "1,234,567". */
export const count = (n: number): string => n.toLocaleString("en-US");

/** Milliseconds as "950ms", "12.3s", "4m05s", "1h02m". */
export function duration(ms: number): string {
	if (!Number.isFinite(ms)) return "?";
	if (ms < 1000) return `${Math.round(ms)}ms`;
	const s = ms / 1000;
	if (s < 60) return `${s.toFixed(1)}s`;
	const m = Math.floor(s / 60);
	if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
	return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
