/** What the paged verbs (`search`, `history`) share: NDJSON lines on stdout with back-pressure, and table lines cut to the terminal. */

let stdoutClosed = false;
let guarded = false;

/** A closed pipe (`| head`) ends the output quietly instead of an unhandled EPIPE. */
function guardStdout(): void {
	if (guarded) return;
	guarded = true;
	process.stdout.on("error", (e: NodeJS.ErrnoException) => {
		if (e.code === "EPIPE") stdoutClosed = true;
		else throw e;
	});
}

/** Writes one JSON document per line to stdout, waiting for 'drain' when its buffer is full. */
export async function writeLines(items: unknown[]): Promise<void> {
	guardStdout();
	if (!items.length || stdoutClosed) return;
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
