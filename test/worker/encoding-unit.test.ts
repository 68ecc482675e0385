/**
 * The hand-built JSON of the hot paths: response bodies spliced from cached value text, and queue
 * message bodies packed from events serialised once. Each must equal what JSON.stringify gives.
 */
import { describe, expect, it } from "vitest";
import { rng } from "../../scripts/lib/rng";
import { encodeEvent, MAX_EVENT_BYTES } from "../../src/ingest/events";
import type { ChangeEvent } from "../../src/ingest/merge";
import { packBatches, packMessages, readQueueMessage } from "../../src/ingest/producer";
import type { RecordView } from "../../src/serving/freshness";
import { lookupResultsJson, recordViewJson } from "../../src/serving/render";

const views: RecordView[] = [
	{
		key: "u1",
		status: "present",
		value: { a: 1, b: "x", v: [0.1, -2.5e-7, 3], nested: { ok: true, n: null } },
		event_time: "2026-11-24T10:00:00.000Z",
		age_ms: 12,
	},
	{ key: 'quote"and\\slash\n', status: "stale", value: { s: "ünïcødé ✓ \u2028 😀" }, event_time: "1970-01-01T00:00:00.000Z", age_ms: 0 },
	{ key: "gone", status: "not_found", value: null, event_time: null, age_ms: null },
	{ key: "omitted", status: "stale", value: null, event_time: "2026-01-01T00:00:00.000Z", age_ms: 99_000 },
	{ key: "empty", status: "present", value: {}, event_time: "2026-01-01T00:00:00.000Z", age_ms: 1 },
];

describe("recordViewJson / lookupResultsJson", () => {
	it("gives exactly JSON.stringify's text, with and without the dataset", () => {
		for (const v of views) {
			expect(recordViewJson(v, "ds_1")).toBe(JSON.stringify({ dataset: "ds_1", ...v }));
			expect(recordViewJson(v)).toBe(JSON.stringify(v));
		}
		const results = [
			{ dataset: "a", records: views.slice(0, 2) },
			{ dataset: "b", records: views.slice(2) },
		];
		expect(lookupResultsJson(results)).toBe(JSON.stringify({ results }));
		expect(lookupResultsJson([])).toBe(JSON.stringify({ results: [] }));
	});

	it("serves the same value object the same text on every hit, and a different object its own text", () => {
		const value: Record<string, unknown> = { score: 0.5 };
		const v: RecordView = { key: "k", status: "present", value, event_time: "2026-01-01T00:00:00.000Z", age_ms: 1 };
		const first = recordViewJson(v);
		expect(recordViewJson({ ...v, age_ms: 2 })).toBe(first.replace('"age_ms":1', '"age_ms":2'));
		// A new revision arrives as a new object (cached values are never mutated), and is serialised anew.
		expect(recordViewJson({ ...v, value: { score: 0.75 } })).toContain('"value":{"score":0.75}');
	});
});

const event = (i: number, bytes: number): ChangeEvent => ({
	id: `e${i}`,
	dataset: "ds",
	key: `k${i}`,
	op: "upsert",
	time: 1_700_000_000_000 + i,
	value: { pad: "é".repeat(bytes / 2) },
});

describe("encodeEvent / packMessages / packBatches", () => {
	it("encodes an event once, counting UTF-8 bytes, and refuses one too large for a message", () => {
		const e = event(1, 1000);
		const enc = encodeEvent(e);
		if (typeof enc === "string") throw new Error(enc);
		expect(enc.json).toBe(JSON.stringify(e));
		expect(enc.bytes).toBe(new TextEncoder().encode(enc.json).length);
		expect(enc.bytes).toBeGreaterThan(enc.json.length); // é is two bytes
		expect(encodeEvent(event(2, MAX_EVENT_BYTES))).toMatch(/event is larger than 102400 bytes/);
	});

	it("packs events in order into message bodies under 110 KiB, each valid JSON, and batches under the sendBatch limits", () => {
		const r = rng(7);
		const events = Array.from({ length: 1500 }, (_, i) => event(i, 200 + Math.floor(r() * 3000)));
		const encoded = events.map((e) => {
			const enc = encodeEvent(e);
			if (typeof enc === "string") throw new Error(enc);
			return enc;
		});
		const messages = packMessages(encoded);
		expect(messages.length).toBeGreaterThan(10);
		const back: ChangeEvent[] = [];
		for (const m of messages) {
			expect(m.bytes).toBe(new TextEncoder().encode(m.body).length);
			expect(m.bytes).toBeLessThanOrEqual(110 * 1024);
			const parsed = readQueueMessage(m.body);
			if (parsed?.kind !== "events") throw new Error("not an events message");
			expect(parsed.events.length).toBe(m.count);
			back.push(...parsed.events);
		}
		expect(back).toEqual(events);
		const batches = packBatches(messages);
		expect(batches.flat()).toEqual(messages);
		for (const b of batches) {
			expect(b.length).toBeLessThanOrEqual(100);
			expect(b.reduce((n, m) => n + m.bytes, 0)).toBeLessThanOrEqual(240 * 1024);
		}
	});

	it("reads an events or refresh message sent as text or as an object, and nothing else", () => {
		const body = { v: 1, events: [event(1, 10)] };
		expect(readQueueMessage(JSON.stringify(body))).toEqual({ kind: "events", events: body.events });
		expect(readQueueMessage(body)).toEqual({ kind: "events", events: body.events });
		const refresh = { v: 1, refresh: [{ dataset: "d", key: "k" }] };
		expect(readQueueMessage(JSON.stringify(refresh))).toEqual({ kind: "refresh", refs: refresh.refresh });
		expect(readQueueMessage(JSON.stringify({ v: 1, refresh: [{ dataset: "d" }] }))).toBeNull();
		// What a consumer without text support dead-letters is the text as a JSON string; replayed, it still reads.
		expect(readQueueMessage(JSON.stringify(JSON.stringify(body)))).toEqual({ kind: "events", events: body.events });
		expect(readQueueMessage("not json")).toBeNull();
		expect(readQueueMessage(JSON.stringify({ v: 2, events: [] }))).toBeNull();
		expect(readQueueMessage(JSON.stringify({ v: 1, events: [{ id: "x" }] }))).toBeNull();
		expect(readQueueMessage(42)).toBeNull();
	});
});
