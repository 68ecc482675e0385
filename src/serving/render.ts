/**
 * JSON text of record views. A record's value is the bulk of a response (a 1.3 KB record with a
 * 64-float vector takes ~8 µs to serialise, as long as the rest of an L0 hit), and the caches hand
 * out the same value object on every hit, so its JSON text is computed once per cached copy and
 * spliced into each response.
 */
import type { RecordView } from "./freshness";

/**
 * Value object -> its JSON text. Cached values are never mutated (merges copy), so the text stays
 * right for as long as the object lives; entries go with their objects.
 */
const valueTexts = new WeakMap<object, string>();

function valueText(value: Record<string, unknown> | null): string {
	if (value === null) return "null";
	let text = valueTexts.get(value);
	if (text === undefined) {
		text = JSON.stringify(value);
		valueTexts.set(value, text);
	}
	return text;
}

/** The same text as JSON.stringify({ dataset, ...view }) (or of `view` alone), with the value spliced in. */
export function recordViewJson(view: RecordView, dataset?: string): string {
	const head = dataset === undefined ? "{" : `{"dataset":${JSON.stringify(dataset)},`;
	const time = view.event_time === null ? "null" : `"${view.event_time}"`;
	return `${head}"key":${JSON.stringify(view.key)},"status":"${view.status}","value":${valueText(view.value)},"event_time":${time},"age_ms":${view.age_ms ?? "null"}}`;
}

/** The body of POST /v1/lookup: `{"results":[{"dataset":…,"records":[…]}]}`. */
export function lookupResultsJson(results: readonly { dataset: string; records: readonly RecordView[] }[]): string {
	const parts = results.map((r) => `{"dataset":${JSON.stringify(r.dataset)},"records":[${r.records.map((v) => recordViewJson(v)).join(",")}]}`);
	return `{"results":[${parts.join(",")}]}`;
}
