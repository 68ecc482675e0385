/** Opaque page cursors (record pages, history, search): text in URL-safe base64 (UTF-8), refused unless it round-trips. */
import { HotpathError } from "../errors";

const encoder = new TextEncoder();

export const encodeCursor = (text: string): string =>
	btoa(String.fromCharCode(...encoder.encode(text)))
		.replaceAll("+", "-")
		.replaceAll("/", "_")
		.replace(/=+$/, "");

export const badCursor = () =>
	new HotpathError("bad_request", "cursor is not one this API gave out: pass next_cursor from the previous page as is", {
		errors: [{ pointer: "cursor", detail: "not a cursor from a previous page" }],
	});

/** The text of a cursor this API gave out, or a bad_request naming the parameter. */
export function decodeCursor(cursor: string): string {
	// No page has an empty cursor: an empty one is a mistake (an unset variable), not "the first page again".
	if (cursor === "") {
		throw new HotpathError("bad_request", "cursor is empty: pass next_cursor from the previous page as is, or leave cursor out for the first page", {
			errors: [{ pointer: "cursor", detail: "empty" }],
		});
	}
	try {
		const bin = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
		const text = new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
		if (encodeCursor(text) === cursor.replace(/=+$/, "")) return text;
	} catch {
		// falls through to the problem below
	}
	throw badCursor();
}
