/** What every verb runs with: the resolved URL and key, the SDK client, the output; and the wrapper that turns a verb's outcome into an exit code. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseEnv } from "node:util";
import { Hotpath } from "@hotpath/client";
import { type Command, InvalidArgumentError } from "commander";
import { Output, reportError, UsageError } from "./output.ts";
import { withoutBom } from "./text.ts";

export const DEFAULT_URL = "http://127.0.0.1:8787";

/** The options every verb takes (declared once, on the program). */
export interface GlobalOptions {
	url?: string;
	key?: string;
	json?: boolean;
}

export interface CliContext {
	url: string;
	client: Hotpath;
	out: Output;
	json: boolean;
}

/**
 * HOTPATH_ADMIN_KEY from a .dev.vars file, if the file has one, read as wrangler reads the file
 * (dotenv): single, double or no quotes, `export `, a trailing comment, the last line winning.
 */
export function devVarsKey(dir: string): string | undefined {
	const file = path.join(dir, ".dev.vars");
	if (!existsSync(file)) return undefined;
	return parseEnv(readFileSync(file, "utf8")).HOTPATH_ADMIN_KEY || undefined;
}

/** --url/--key, else HOTPATH_URL/HOTPATH_KEY, else the local dev server and the admin key in .dev.vars (here, or in the repo the CLI lives in). */
export function resolveTarget(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): { url: string; key?: string } {
	// An empty option is bad usage, as an empty argument is: `--key "$UNSET"` must not fall back to the
	// admin key in .dev.vars (sent, with `--url`, to whatever host that names). An empty variable counts as unset.
	if (opts.url === "") throw new UsageError(`--url is empty (an unset variable?); leave it out to use HOTPATH_URL or the default, ${DEFAULT_URL}`);
	if (opts.key === "") throw new UsageError("--key is empty (an unset variable?); leave it out to use HOTPATH_KEY or the admin key in .dev.vars");
	const url = opts.url || env.HOTPATH_URL || DEFAULT_URL;
	const key = opts.key || env.HOTPATH_KEY || devVarsKey(cwd) || devVarsKey(path.join(import.meta.dirname, ".."));
	return { url, key };
}

/** The base URL, checked: one that is not an absolute http(s) URL is bad usage (exit 2), not a failed request. */
function checkUrl(url: string): string {
	let protocol: string | undefined;
	try {
		protocol = new URL(url).protocol;
	} catch {
		protocol = undefined;
	}
	if (protocol !== "http:" && protocol !== "https:")
		throw new UsageError(`--url (or HOTPATH_URL) must be an http:// or https:// URL, not ${JSON.stringify(url)}`);
	return url;
}

export function createContext(opts: GlobalOptions): CliContext {
	const target = resolveTarget(opts);
	const url = checkUrl(target.url);
	const key = target.key;
	// Bulk work under load can wait on D1 for a while; retries cover 429/503 and dropped connections.
	const out = new Output(opts.json === true);
	const client = new Hotpath({
		url,
		key,
		retries: 5,
		timeoutMs: 120_000,
		// A wait of seconds on a 429's Retry-After looks like a hang unless it is said (on stderr, so --json stays clean).
		onRetry: ({ error, attempt, waitMs }) =>
			out.note(
				`hotpath: ${error.status ? `${error.status} ${error.problem.title}` : error.problem.title}; retry ${attempt} in ${(waitMs / 1000).toFixed(1)} s`,
			),
	});
	return { url, client, out, json: opts.json === true };
}

/**
 * An empty argument (`get "" u1`, `get users "$UNSET"`) is a missing one: bad usage, not a request
 * to a path with an empty segment that the server answers with "no route for GET /v1/datasets//...".
 */
function checkNotEmpty(command: Command, args: unknown[]): void {
	args.forEach((value, i) => {
		if (value === "" || (Array.isArray(value) && value.includes(""))) {
			const name = command.registeredArguments[i]?.name() ?? `argument ${i + 1}`;
			throw new UsageError(`${command.name()}: <${name}> is empty`);
		}
	});
}

/**
 * Wraps a verb for commander: builds the context from the global options, runs the verb, and sets
 * the exit code from what it returns or throws (errors printed without a stack).
 *
 * @example
 * program.command("get <dataset> <key>").action(verbAction(async (ctx, [dataset, key]: [string, string]) => { ... }));
 */
export function verbAction<A extends unknown[], O = Record<string, unknown>>(
	run: (ctx: CliContext, args: A, opts: O, command: Command) => Promise<number | undefined>,
): (...all: unknown[]) => Promise<void> {
	return async (...all: unknown[]) => {
		const command = all[all.length - 1] as Command;
		const globals = command.optsWithGlobals() as GlobalOptions;
		let json = globals.json === true;
		try {
			const args = all.slice(0, -2);
			checkNotEmpty(command, args);
			const ctx = createContext(globals);
			json = ctx.json;
			process.exitCode = (await run(ctx, args as A, command.opts() as O, command)) ?? 0;
		} catch (e) {
			process.exitCode = reportError(e, json);
		}
	};
}

/** commander argParser: an integer within [min, max]. */
export const intOption =
	(min: number, max = Number.MAX_SAFE_INTEGER) =>
	(raw: string): number => {
		const n = Number(raw);
		if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
		return n;
	};

/** A decimal number as the server takes one for max_staleness (src/serving/params.ts): no sign, hex, blanks or padding. */
const DECIMAL = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * commander argParser: a decimal number of seconds >= 0. Number() alone read "0x10" as 16 and ""
 * or " " as 0 (a read held to D1), values the server refuses as `max_staleness`.
 */
export const secondsOption = (raw: string): number => {
	const n = DECIMAL.test(raw) ? Number(raw) : Number.NaN;
	if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a decimal number of seconds >= 0, e.g. 60 or 0.5");
	return n;
};

/**
 * commander argParser: a value that is not empty. An empty one (`--cursor "$NEXT"` with NEXT unset)
 * is bad usage, as an empty argument is, not a request the server refuses.
 */
export const nonEmptyOption = (raw: string): string => {
	if (raw === "") throw new InvalidArgumentError("expected a value, not an empty one (an unset variable?); leave the option out instead");
	return raw;
};

/** commander argParser: a comma-separated list. */
export const listOption = (raw: string): string[] =>
	raw
		.split(",")
		.map((s) => s.trim())
		.filter(Boolean);

/** commander argParser: a comma-separated list of at least one `what`; an empty one is bad usage, as an empty argument is. */
export const nonEmptyListOption =
	(what: string, hint = "") =>
	(raw: string): string[] => {
		const names = listOption(raw);
		if (!names.length) throw new InvalidArgumentError(`expected a comma-separated list of ${what}${hint}`);
		return names;
	};

/**
 * --fields: at least one name. An empty one (`--fields ""`, `--fields ,`) was sent as `fields=`,
 * which the server refuses (400, exit 1), or in a search as `fields: []`, values with no field.
 */
export const fieldsOption = nonEmptyListOption("field names", " (leave the option out for every field)");

/** RFC 3339 as the server takes it: a date, a time and an offset (Z or +hh:mm). */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
/** The latest epoch ms a Date holds. */
const MAX_TIME_MS = 8_640_000_000_000_000;

/**
 * A time option: epoch ms when it is all digits, else RFC 3339 text as given. What the server would
 * refuse is bad usage here: Date.parse alone took a date without a time ("2026-01-01"), a time
 * without an offset, "Jan 1 2026" or "-5", and rolled "2026-02-30" over to March.
 */
export const timeOption = (raw: string): string | number => {
	const bad = () => new InvalidArgumentError("expected RFC 3339 with an offset (2026-01-02T03:04:05Z) or epoch milliseconds");
	if (/^\d+$/.test(raw)) {
		if (Number(raw) > MAX_TIME_MS) throw new InvalidArgumentError(`${raw} is past the latest time there is (${new Date(MAX_TIME_MS).toISOString()})`);
		return Number(raw);
	}
	const m = RFC3339.exec(raw);
	if (!m || Number.isNaN(Date.parse(raw))) throw bad();
	const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
	const day = new Date(Date.UTC(y as number, (mo as number) - 1, d));
	if (day.getUTCMonth() !== (mo as number) - 1 || day.getUTCDate() !== d || (h as number) > 23 || (mi as number) > 59 || (s as number) > 59) throw bad();
	return raw;
};

/**
 * commander argParser: JSON text, or `@FILE` for a file's JSON (`@-` for stdin). A value that is not
 * JSON, or a file that cannot be read, is bad usage (exit 2).
 */
export const jsonOption = (raw: string): unknown => {
	let text = raw;
	if (raw.startsWith("@")) {
		const file = raw.slice(1);
		try {
			text = withoutBom(readFileSync(file === "-" ? 0 : file, "utf8"));
		} catch (e) {
			throw new InvalidArgumentError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
		}
	}
	try {
		return JSON.parse(text);
	} catch (e) {
		throw new InvalidArgumentError(`not JSON (${(e as Error).message}); give JSON text or @FILE`);
	}
};
