/** Message bytes to JSON, or the reason they are not, with the text kept (shortened) for the reject log. */

const utf8 = new TextDecoder("utf-8", { fatal: true });
/** How much of an unreadable message the reject log keeps. */
const MAX_RAW = 64 * 1024;

export type Decoded = { message: unknown; error?: undefined; raw?: undefined } | { message?: undefined; error: string; raw: string };

export function decodeJson(data: Uint8Array | string): Decoded {
	let text: string;
	if (typeof data === "string") text = data;
	else {
		try {
			text = utf8.decode(data);
		} catch {
			return { error: "the message is not UTF-8 text", raw: Buffer.from(data.subarray(0, MAX_RAW)).toString("base64") };
		}
	}
	try {
		return { message: JSON.parse(text) };
	} catch (e) {
		return { error: `the message is not valid JSON: ${(e as Error).message}`, raw: text.slice(0, MAX_RAW) };
	}
}
