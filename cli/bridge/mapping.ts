/** Turns a source's message into a Hotpath event through the source's map of JSON Pointers, or says why it cannot. */
import { nonFiniteError } from "../finite.ts";
import { compilePointer, type Pointer, resolvePointer } from "./pointer.ts";
import type { Delivery, Op } from "./sources/source.ts";

/** One event as `POST /v1/events` takes it. */
export interface HotpathEvent {
	id: string;
	dataset: string;
	key: string;
	op: Op;
	value?: Record<string, unknown>;
	event_time?: number | string;
}

export interface MapSpec {
	key?: string;
	event_time?: string;
	op?: string;
	value?: string;
}

const OPS: readonly string[] = ["upsert", "patch", "delete"];

const describe = (v: unknown): string => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : JSON.stringify(v));

/** A compiled map: `map(delivery)` gives the event, or a string saying why the message cannot be one. */
export interface Mapper {
	map(delivery: Delivery): HotpathEvent | string;
	/**
	 * Tells the mapper the dataset's fields (once Hotpath has been asked): a member the key, op or
	 * time pointer names that is also a field of the dataset stays in a whole-message value.
	 */
	keepFields(fields: readonly string[]): void;
}

export function compileMap(spec: MapSpec, dataset: string | undefined): Mapper {
	const key = spec.key === undefined ? undefined : compilePointer(spec.key);
	const time = spec.event_time === undefined ? undefined : compilePointer(spec.event_time);
	const op = spec.op === undefined ? undefined : compilePointer(spec.op);
	const value = spec.value === undefined ? undefined : compilePointer(spec.value);
	// When the value is the whole message, the members that carry the key, op and time are not
	// fields of the record: a dataset would refuse them as unknown fields.
	const strip = new Set([key, time, op].filter((p): p is Pointer => p?.length === 1).map((p) => p[0] as string));

	const mapper: Mapper = {
		keepFields(fields: readonly string[]): void {
			for (const f of fields) strip.delete(f);
		},
		map(d: Delivery): HotpathEvent | string {
			if (d.error !== undefined) return d.error;
			const msg = d.message;
			const targetDataset = d.dataset ?? dataset;
			if (!targetDataset) return "no dataset for this message";

			// The map's pointer first; a key the source knows itself (a primary key, a Kafka record key) otherwise.
			let k: unknown = key ? (resolvePointer(msg, key) ?? d.key) : d.key;
			if (k === undefined) return `no key at ${JSON.stringify(spec.key ?? "")}`;
			if (typeof k === "number" && Number.isSafeInteger(k)) k = String(k);
			if (typeof k !== "string" || k === "") return `the key at ${JSON.stringify(spec.key ?? "")} must be a non-empty string or an integer, not ${describe(k)}`;

			let o: unknown = d.op;
			if (o === undefined && op) o = resolvePointer(msg, op) ?? "upsert";
			o ??= "upsert";
			if (typeof o !== "string" || !OPS.includes(o)) return `the op at ${JSON.stringify(spec.op)} must be upsert, patch or delete, not ${describe(o)}`;

			let t: unknown = time ? resolvePointer(msg, time) : undefined;
			if (t === undefined || t === null) t = d.time;
			else if (typeof t !== "string" && typeof t !== "number") {
				return `the event_time at ${JSON.stringify(spec.event_time)} must be an RFC 3339 string or epoch milliseconds, not ${describe(t)}`;
			} else if (d.textValues && typeof t === "string" && /^\d+$/.test(t)) {
				// Hotpath takes epoch ms only as a JSON number; a Redis field cannot hold one.
				t = Number(t);
			}

			const event: HotpathEvent = { id: d.id, dataset: targetDataset, key: k, op: o as Op };
			if (t !== undefined) event.event_time = t as number | string;
			if (o === "delete") return event;

			let v: unknown;
			if (value) {
				v = resolvePointer(msg, value);
				if (v === undefined) return `no value at ${JSON.stringify(spec.value)}`;
			} else if (d.value !== undefined) {
				v = d.value;
			} else {
				v = msg;
				if (strip.size && v !== null && typeof v === "object" && !Array.isArray(v)) {
					const rest: Record<string, unknown> = {};
					for (const [name, field] of Object.entries(v)) if (!strip.has(name)) rest[name] = field;
					v = rest;
				}
			}
			if (v === null || typeof v !== "object" || Array.isArray(v))
				return `the value at ${JSON.stringify(spec.value ?? "")} must be a JSON object, not ${describe(v)}`;
			event.value = v as Record<string, unknown>;
			return event;
		},
	};
	return {
		keepFields: (fields) => mapper.keepFields(fields),
		map(d: Delivery): HotpathEvent | string {
			const event = mapper.map(d);
			// JSON.stringify sends a number that is not finite (a 1e400 in the message reads as Infinity) as null, a
			// missing value Hotpath would store: such a message is rejected, as Hotpath rejects the number itself.
			return typeof event === "string" ? event : (nonFiniteError(event) ?? event);
		},
	};
}
