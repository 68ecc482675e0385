/** Log-shipper records to events, through a dataset's `ingest` mapping of JSON Pointers (RFC 6901). */
import { derivedFieldNames } from "../registry/derived";
import type { DatasetSpec, IngestMapping } from "../registry/spec";
import { type Refusal, refusedAt } from "./events";

const MISSING = Symbol("missing");
const OPS: readonly unknown[] = ["upsert", "patch", "delete"];

/** A value as a problem names it: JSON for scalars, "an object" or "an array" otherwise. */
const describe = (v: unknown): string => (Array.isArray(v) ? "an array" : v !== null && typeof v === "object" ? "an object" : JSON.stringify(v));

/** A JSON Pointer's member names, unescaped: "/a~1b/c" is ["a/b", "c"], "" (the whole document) is []. */
export const pointerTokens = (pointer: string): string[] =>
	pointer === ""
		? []
		: pointer
				.slice(1)
				.split("/")
				.map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));

/** The value at `pointer` in `doc`, or MISSING. Only own properties and array indexes are followed. */
export function resolvePointer(doc: unknown, pointer: string): unknown {
	let cur: unknown = doc;
	for (const token of pointerTokens(pointer)) {
		if (Array.isArray(cur)) {
			if (!/^(0|[1-9]\d*)$/.test(token) || Number(token) >= cur.length) return MISSING;
			cur = cur[Number(token)];
		} else if (cur !== null && typeof cur === "object" && Object.hasOwn(cur, token)) {
			cur = (cur as Record<string, unknown>)[token];
		} else return MISSING;
	}
	return cur;
}

/**
 * Maps one record to a raw event (then validated like any event), or says why it cannot be mapped.
 * Fields the record does not hold are left out of the value (an upsert then has them null). A
 * record that holds none of them, with no op of its own, is refused: a log line of another shape
 * (a heartbeat carrying the key) would otherwise upsert nothing and empty the key's record. In a
 * dataset with aggregates it is taken: there it is a fact, and `count` needs no field. A refusal
 * about the key or the op points at the mapping's pointer in the record.
 */
export function mapRecord(record: unknown, spec: DatasetSpec, mapping: IngestMapping): Record<string, unknown> | Refusal {
	if (record === null || typeof record !== "object" || Array.isArray(record)) return "a record must be a JSON object";
	const key = resolvePointer(record, mapping.key);
	if (key === MISSING) return refusedAt(pointerTokens(mapping.key), `no key at ${mapping.key || '""'} (ingest.key)`);
	// Said here, with the pointer: the event's own message would send the shipper to a value field that ingest never reads.
	if (!((typeof key === "string" && key !== "") || (typeof key === "number" && Number.isSafeInteger(key)))) {
		return refusedAt(
			pointerTokens(mapping.key),
			`the key at ${mapping.key || '""'} (ingest.key) must be a non-empty string or an integer, not ${describe(key)}`,
		);
	}
	const event: Record<string, unknown> = { dataset: spec.name, key, op: "upsert" };
	let opGiven = false;
	if (mapping.op !== undefined) {
		// null is no op, as a missing one (and as the bridge reads a message's op): an upsert.
		const op = resolvePointer(record, mapping.op);
		if (op !== MISSING && op !== null) {
			if (typeof op !== "string" || !OPS.includes(op))
				return refusedAt(pointerTokens(mapping.op), `the op at ${mapping.op || '""'} (ingest.op) must be upsert, patch or delete, not ${describe(op)}`);
			event.op = op;
			opGiven = true;
		}
	}
	if (mapping.event_time !== undefined) {
		const t = resolvePointer(record, mapping.event_time);
		if (t !== MISSING && t !== null) event.event_time = t;
	}
	if (event.op === "delete") return event;
	const value: Record<string, unknown> = {};
	const derived = derivedFieldNames(spec);
	if (mapping.fields) {
		for (const [field, pointer] of Object.entries(mapping.fields)) {
			const v = resolvePointer(record, pointer);
			if (v !== MISSING) value[field] = v;
		}
	} else {
		// Derived fields are computed on write, whatever a record holds under their names.
		for (const field of Object.keys(spec.fields)) {
			if (!derived.has(field) && Object.hasOwn(record, field)) value[field] = (record as Record<string, unknown>)[field];
		}
	}
	if (!opGiven && !spec.aggregates && Object.keys(value).length === 0) {
		const mapped = mapping.fields
			? Object.entries(mapping.fields).map(([f, p]) => `${f} at ${p || '""'}`)
			: Object.keys(spec.fields).filter((f) => !derived.has(f));
		return `the record holds none of the mapped fields (${mapped.join(", ")}): as an upsert it would empty the record (send an op of "upsert" to mean that)`;
	}
	event.value = value;
	return event;
}
