/**
 * `hotpath search DATASET [WORDS...]`: one page of a search (text, filters, sorts, vector k-NN or
 * text and vector fused), or every page with --all. Flags map onto the body of
 * POST /v1/datasets/:name/search; --query passes a whole body, which the flags then amend.
 */
import { readFileSync } from "node:fs";
import type { IfStale, SearchHit, SearchQuery, SearchVector } from "@hotpath/client";
import { type Command, Option } from "commander";
import { fieldsOption, intOption, jsonOption, listOption, nonEmptyOption, secondsOption, verbAction } from "../context.ts";
import { count, duration, table, UsageError } from "../output.ts";
import { withoutBom } from "../text.ts";
import { fitToTerminal, readPages } from "./paging.ts";

interface SearchFlags {
	text?: string;
	query?: string;
	filter?: unknown;
	vector?: unknown;
	like?: string;
	k?: number;
	sort?: string[];
	limit?: number;
	cursor?: string;
	all?: boolean;
	highlight?: boolean;
	fields?: string[];
	maxStaleness?: number;
	ifStale?: IfStale;
	ndjson?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isNumbers = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "number" && Number.isFinite(x));

/** The body of --query: a file's (or stdin's) JSON object. */
function readQueryFile(file: string): SearchQuery {
	let text: string;
	try {
		text = withoutBom(readFileSync(file === "-" ? 0 : file, "utf8"));
	} catch (e) {
		throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
	}
	let body: unknown;
	try {
		body = JSON.parse(text);
	} catch (e) {
		throw new UsageError(`--query ${file}: not JSON (${(e as Error).message})`);
	}
	if (!isObject(body)) throw new UsageError(`--query ${file}: a search body is a JSON object ({"q": ..., "filter": ..., ...})`);
	return body as SearchQuery;
}

/** The search body the arguments describe: --query's, amended by the flags. Throws UsageError for what cannot be a query. */
export function searchBody(words: string[], f: SearchFlags): SearchQuery {
	const body: SearchQuery = f.query === undefined ? {} : readQueryFile(f.query);
	if (words.length && f.text !== undefined) throw new UsageError("search: give the words as arguments or with --text, not both");
	const q = f.text ?? (words.length ? words.join(" ") : undefined);
	if (q !== undefined) body.q = q;
	if (f.filter !== undefined) {
		if (!isObject(f.filter)) throw new UsageError('--filter: a filter is a JSON object, e.g. {"price": {"lt": 20}}');
		body.filter = f.filter as SearchQuery["filter"];
	}
	if (f.vector !== undefined && f.like !== undefined) throw new UsageError("search: give --vector or --like, not both");
	let vector: SearchVector | undefined = body.vector;
	if (f.vector !== undefined) {
		if (isNumbers(f.vector)) vector = { value: f.vector };
		else if (isObject(f.vector)) vector = f.vector as SearchVector;
		else throw new UsageError("--vector: a JSON array of numbers ([0.1, 0.2, ...]) or an object {value | key, k}");
	}
	if (f.like !== undefined) vector = { key: f.like };
	if (f.k !== undefined) {
		if (!vector) throw new UsageError("--k: ranks nearest neighbours; give --vector or --like too");
		vector = { ...vector, k: f.k };
	}
	if (vector) body.vector = vector;
	if (f.sort !== undefined) {
		if (f.sort.length === 0) throw new UsageError('--sort: one to three fields, e.g. "-price" or "country,-age"');
		body.sort = f.sort.length === 1 ? f.sort[0] : f.sort;
	}
	if (f.limit !== undefined) body.limit = f.limit;
	if (f.cursor !== undefined) body.cursor = f.cursor;
	if (f.highlight) body.highlight = true;
	if (f.fields !== undefined) body.fields = f.fields;
	if (f.maxStaleness !== undefined) body.max_staleness = f.maxStaleness;
	if (f.ifStale !== undefined) body.if_stale = f.ifStale;
	return body;
}

/** `<mark>word</mark>` as people read it: bold and underlined on a terminal, as sent otherwise. */
const marks = (s: string, tty: boolean) => (tty ? s.replace(/<mark>(.*?)<\/mark>/gs, "\x1b[1;4m$1\x1b[22;24m") : s);

/** The hits as a table (a line per hit), each hit's highlights on indented lines below it. */
export function hitsTable(hits: SearchHit[], tty: boolean, columns?: number): string {
	const lines = table(
		["KEY", "SCORE", "STATUS", "AGE", "VALUE"],
		hits.map((h) => [h.key, h.score, h.status, h.age_ms === null ? null : duration(h.age_ms), h.value === null ? null : JSON.stringify(h.value)]),
	).split("\n");
	const out = [lines[0] ?? ""];
	hits.forEach((h, i) => {
		out.push(fitToTerminal(lines[i + 1] ?? "", tty ? columns : undefined));
		for (const [field, text] of Object.entries(h.highlights ?? {})) {
			const shown = Array.isArray(text) ? text.join(" | ") : text;
			out.push(`    ${field}: ${marks(shown.replace(/\s+/g, " "), tty)}`);
		}
	});
	return out.join("\n");
}

export function registerSearch(program: Command): void {
	program
		.command("search")
		.description("search a dataset (one with `search` in its spec): words (BM25), filters, sorts, vector k-NN, or words and vector fused")
		.argument("<dataset>")
		.argument("[words...]", "words to find in the text fields (all of them); the same as --text")
		.option("-t, --text <words>", "words to find in the text fields", nonEmptyOption)
		.option("--filter <json>", 'on filter fields: {"age": {"gte": 30}, "or": [...]} (or @FILE)', jsonOption)
		.option("--vector <json>", "nearest neighbours of a vector: [0.1, 0.2, ...] or {value | key, k} (or @FILE)", jsonOption)
		.option("--like <key>", "nearest neighbours of this record's vector (the record itself left out)", nonEmptyOption)
		.option("--k <n>", "neighbours to rank with --vector or --like (1-1000; default 100)", intOption(1, 1000))
		.option("--sort <fields>", 'comma-separated filter fields, "-" for descending, or _score: "-age", "country,-age"', listOption)
		.option("--limit <n>", "hits per page (1-100; default 10)", intOption(1, 100))
		.option("--cursor <cursor>", "the next page of the same query (next_cursor of the previous one)", nonEmptyOption)
		.option("--all", "every page (up to the 1,000 hits a query ranks)")
		.option("--highlight", "show where the words matched (<mark>)")
		.option("--fields <a,b>", "only these fields of each hit's value", fieldsOption)
		.option("--max-staleness <seconds>", "report values older than this as stale", secondsOption)
		.addOption(new Option("--if-stale <mode>", "serve a stale value marked stale, or omit it").choices(["serve", "omit"]))
		.option("--query <file>", "a whole search body as JSON (- for stdin); the flags above amend it")
		.option("--ndjson", "one JSON hit per line on stdout (no page envelope)")
		.addHelpText(
			"after",
			`
Examples:
  hotpath search demo_users travel --highlight
  hotpath search demo_users --filter '{"age": {"gte": 30}, "is_premium": true}' --sort -lifetime_value
  hotpath search demo_users outdoors --like u1 --limit 3
  hotpath search demo_users --filter '{"country": {"in": ["DE", "JP"]}}' --all --ndjson`,
		)
		.action(
			verbAction(async ({ client, out }, [dataset, words]: [string, string[]], f: SearchFlags) => {
				const body = searchBody(words, f);
				const tty = process.stdout.isTTY === true;
				let tookMs = 0;
				const read = await readPages(
					(cursor) => client.search(dataset, cursor === undefined ? body : { ...body, cursor }),
					(p) => p.hits,
					{ ...f, cursor: body.cursor },
					(p) => {
						tookMs += p.took_ms;
					},
				);
				const { items: hits, last: page, pages, nextCursor } = read;
				if (f.ndjson) {
					if (nextCursor) out.note(`more: --cursor ${nextCursor}`);
					return 0;
				}
				out.result(f.all ? { hits, next_cursor: null, took_ms: tookMs, pages } : page, () =>
					hits.length ? hitsTable(hits, tty, process.stdout.columns) : "no hits",
				);
				if (!out.json) {
					out.note(`${count(hits.length)} hit${hits.length === 1 ? "" : "s"}${pages > 1 ? ` in ${pages} pages` : ""} (took ${duration(tookMs)})`);
					if (nextCursor) out.note(`more: --cursor ${nextCursor}  (or --all for every page)`);
				}
				return 0;
			}),
		);
}
