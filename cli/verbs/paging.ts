/** What the paged verbs (`search`, `history`) share: reading pages by cursor, NDJSON lines on stdout with back-pressure, and table lines cut to the terminal. */
import { stdoutClosed } from "../output.ts";

/** Writes one JSON document per line to stdout, waiting for 'drain' when its buffer is full. */
export async function writeLines(items: unknown[]): Promise<void> {
	if (!items.length || stdoutClosed()) return;
	const text = `${items.map((x) => JSON.stringify(x)).join("\n")}\n`;
	if (process.stdout.write(text)) return;
	await new Promise<void>((resolve) => {
		const done = () => {
			process.stdout.off("drain", done);
			process.stdout.off("close", done);
			resolve();
		};
		process.stdout.once("drain", done);
		process.stdout.once("close", done);
	});
}

/** A line cut to `columns` characters with an ellipsis, when there is a terminal width to fit. */
export function fitToTerminal(line: string, columns: number | undefined): string {
	if (!columns || columns < 20 || line.length <= columns) return line;
	return `${line.slice(0, columns - 1)}…`;
}

/**
 * Reads one page, or with `all` every page, following next_cursor from `cursor`. With `ndjson` the
 * items go to stdout as they come and are not kept; only the last page is. `onPage` sees each page
 * as it comes. `nextCursor` is where a further call would start (null after `all`).
 */
export async function readPages<P extends { next_cursor: string | null }, T>(
	fetchPage: (cursor: string | undefined) => Promise<P>,
	itemsOf: (page: P) => T[],
	f: { all?: boolean; ndjson?: boolean; cursor?: string },
	onPage: (page: P) => void = () => {},
): Promise<{ items: T[]; last: P; pages: number; nextCursor: string | null }> {
	const items: T[] = [];
	let pages = 0;
	let cursor = f.cursor;
	for (;;) {
		const page = await fetchPage(cursor);
		pages++;
		onPage(page);
		if (f.ndjson) await writeLines(itemsOf(page));
		else items.push(...itemsOf(page));
		// A cursor the server hands back twice would loop: stop there.
		if (!f.all || !page.next_cursor || page.next_cursor === cursor) return { items, last: page, pages, nextCursor: f.all ? null : page.next_cursor };
		cursor = page.next_cursor;
	}
}
