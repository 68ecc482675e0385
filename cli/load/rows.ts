/**
 * Turns what a file source read into the JSON text of one import row: typed by the spec (CSV and
 * Parquet), with `_event_time` (the column given, the row's own, or the file's modification time)
 * and a deterministic `_id` (the file's identity and the row's line or row number), so that a
 * resumed or repeated load of the same file changes nothing twice.
 */
import type { Spec } from "@hotpath/client";
import { nonFiniteError } from "../finite.ts";
import { coerceParquet, coerceText, eventTimeValue } from "./coerce.ts";
import type { SourceItem } from "./source.ts";

/** How cells are typed: CSV cells are text; Parquet values are typed by the file; NDJSON is JSON already. */
export type Typing = "text" | "parquet" | "json";

export interface RowEncoderOptions {
	/** Needed to type CSV and Parquet cells, and with `eventTimeColumn`; NDJSON rows go as they are without it. */
	spec?: Spec;
	typing: Typing;
	/** `_id` of a row without one: `${idPrefix}` and its position, zero-padded. */
	idPrefix: string;
	/** `_event_time` of a row without one (epoch ms). */
	defaultEventTime: number;
	/** Take `_event_time` from this column (removed from the value unless it is a field or the key). */
	eventTimeColumn?: string;
}

export type Encoded = { text: string } | { error: string };

const SPECIAL = new Set(["_id", "_op", "_event_time"]);

/**
 * A row's position as its id ends: zero-padded to 12 digits. Rows without an event time all take
 * the file's modification time, and the server breaks a tie on the larger id as text, so unpadded
 * positions put line 9 after line 10 and kept an earlier row of a key over a later one; padded,
 * the last row of a key in the file wins, as the events of one request apply in body order.
 */
const rowNumber = (pos: number): string => String(pos).padStart(12, "0");

export class RowEncoder {
	readonly #o: RowEncoderOptions;
	readonly #timeText: string;

	constructor(options: RowEncoderOptions) {
		this.#o = options;
		this.#timeText = String(options.defaultEventTime);
	}

	encode(item: SourceItem): Encoded {
		if (item.error !== undefined) return { error: item.error };
		if (item.text !== undefined) {
			const fast = this.#fastPath(item.text, item.pos);
			if (fast !== undefined) return { text: fast };
			let parsed: unknown;
			try {
				parsed = JSON.parse(item.text);
			} catch (e) {
				return { error: `not valid JSON: ${(e as Error).message}` };
			}
			if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return { error: "a row must be a JSON object" };
			return this.#finish(parsed as Record<string, unknown>, item.pos);
		}
		const row = item.row ?? {};
		if (this.#o.typing === "json") return this.#finish(row, item.pos);
		const typed: Record<string, unknown> = {};
		const errors: string[] = [];
		for (const [name, v] of Object.entries(row)) {
			if (SPECIAL.has(name) || name === this.#o.eventTimeColumn) {
				typed[name] = v;
				continue;
			}
			const fields = this.#o.spec?.fields ?? {};
			const field = Object.hasOwn(fields, name) ? fields[name] : undefined;
			// A derived field is computed by the server, which ignores a row's value for it (an
			// exported file holds them): left out here, where typing it could only refuse the row.
			if (field?.derive !== undefined) continue;
			const c = this.#o.typing === "text" ? (field ? coerceText(field, String(v ?? "")) : { value: v }) : coerceParquet(field, v);
			if ("error" in c) errors.push(`${name}: ${c.error}`);
			else typed[name] = c.value;
		}
		if (errors.length) return { error: errors.join("; ") };
		return this.#finish(typed, item.pos);
	}

	/**
	 * A JSON object line without `_id` or `_event_time` needs only both prepended: no parse, no
	 * re-serialisation. Anything else (or a line the substring test cannot vouch for) is parsed.
	 */
	#fastPath(text: string, pos: number): string | undefined {
		if (this.#o.eventTimeColumn !== undefined) return undefined;
		// The line goes on as it is after its "{", so that fastLineError can give it back exactly.
		if (text.charCodeAt(0) !== 123 /* { */ || text.includes('"_id"') || text.includes('"_event_time"')) return undefined;
		const rest = text.slice(1);
		if (rest.trimStart().startsWith("}")) return undefined;
		return `{"_id":"${this.#o.idPrefix}${rowNumber(pos)}","_event_time":${this.#timeText},${rest}`;
	}

	#finish(row: Record<string, unknown>, pos: number): Encoded {
		// JSON.stringify would send a 1e400 (parsed as Infinity: an NDJSON line, a json cell) as null, a missing value.
		const notFinite = nonFiniteError(row);
		if (notFinite) return { error: notFinite };
		const col = this.#o.eventTimeColumn;
		if (col !== undefined) {
			const t = eventTimeValue(row[col]);
			if (t === undefined) return { error: `no event time in column ${col}` };
			if (col !== this.#o.spec?.key && !Object.hasOwn(this.#o.spec?.fields ?? {}, col)) delete row[col];
			row._event_time = t;
		} else {
			const own = row._event_time === undefined ? undefined : eventTimeValue(row._event_time);
			row._event_time = own ?? this.#o.defaultEventTime;
		}
		if (row._id === undefined || row._id === null || row._id === "") row._id = `${this.#o.idPrefix}${rowNumber(pos)}`;
		if (row._op === "" || row._op === null) delete row._op;
		return { text: JSON.stringify(row) };
	}
}

/** What the fast path puts before a line's text after its "{". */
const FAST_PREFIX = /^\{"_id":"[^"\\]*","_event_time":-?\d+,/;

/**
 * Why a line the fast path sent is not JSON, said of the file's own line: the server parses the
 * line with the fast path's prefix, so its positions ("at position 80") and excerpts are of a text
 * the file does not hold. Undefined when `sent` is not such a line or parses after all.
 */
export function fastLineError(sent: string): string | undefined {
	const prefix = FAST_PREFIX.exec(sent);
	if (!prefix) return undefined;
	try {
		JSON.parse(`{${sent.slice(prefix[0].length)}`);
		return undefined;
	} catch (e) {
		return `not valid JSON: ${(e as Error).message}`;
	}
}
