/**
 * JSON text of record views. A record's value is the bulk of a response, and its JSON text is
 * computed once per cached copy (or kept from the copy it was decoded from: `valueJson`) and
 * spliced into each response.
 */
import { valueJson } from "../storage/cached-record";
import type { RecordView } from "./freshness";

/** The same text as JSON.stringify({ dataset, ...view }) (or of `view` alone), with the value spliced in. */
export function recordViewJson(view: RecordView, dataset?: string): string {
	const head = dataset === undefined ? "{" : `{"dataset":${JSON.stringify(dataset)},`;
	const time = view.event_time === null ? "null" : `"${view.event_time}"`;
	return `${head}"key":${JSON.stringify(view.key)},"status":"${view.status}","value":${valueJson(view.value)},"event_time":${time},"age_ms":${view.age_ms ?? "null"}}`;
}

/** The body of POST /v1/lookup: `{"results":[{"dataset":…,"records":[…]}]}`. */
export function lookupResultsJson(results: readonly { dataset: string; records: readonly RecordView[] }[]): string {
	const parts = results.map((r) => `{"dataset":${JSON.stringify(r.dataset)},"records":[${r.records.map((v) => recordViewJson(v)).join(",")}]}`);
	return `{"results":[${parts.join(",")}]}`;
}
