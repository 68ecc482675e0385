/** JSON Pointers (RFC 6901): where in a message the bridge finds an event's key, time, op and value. */

/** Why `text` is not a JSON Pointer, or null when it is one. */
export function pointerProblem(text: string): string | null {
	if (text !== "" && !text.startsWith("/")) return 'must be a JSON Pointer: "" (the whole message) or "/" followed by the path, e.g. "/user/id"';
	if (/~(?![01])/.test(text)) return 'must be a JSON Pointer: "~" may only appear as "~0" (for ~) or "~1" (for /)';
	return null;
}

/** A pointer parsed once into its reference tokens. */
export type Pointer = readonly string[];

export function compilePointer(text: string): Pointer {
	const problem = pointerProblem(text);
	if (problem) throw new Error(`${JSON.stringify(text)} ${problem}`);
	if (text === "") return [];
	return text
		.slice(1)
		.split("/")
		.map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/** The value the pointer addresses, or undefined when the message has nothing there. */
export function resolvePointer(doc: unknown, pointer: Pointer): unknown {
	let at = doc;
	for (const token of pointer) {
		if (Array.isArray(at)) {
			// RFC 6901: an array index is "0" or digits without a leading zero.
			if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
			at = at[Number(token)];
		} else if (at !== null && typeof at === "object") {
			if (!Object.hasOwn(at, token)) return undefined;
			at = (at as Record<string, unknown>)[token];
		} else {
			return undefined;
		}
	}
	return at;
}
