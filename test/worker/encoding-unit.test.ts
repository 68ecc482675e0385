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
import { type CachedRecord, decodeRecord, encodeRecord, valueJson } from "../../src/storage/cached-record";

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

	it("counts bytes exactly at the limit: MAX_EVENT_BYTES passes, one byte more does not, whatever characters end the event", () => {
		const utf8 = (s: string) => new TextEncoder().encode(s).length;
		// An event of exactly `bytes` UTF-8 bytes: ASCII padding, then `tail` (1-4 bytes per character).
		const sized = (bytes: number, tail = "") => {
			const base = { id: "e", dataset: "d", key: "k", op: "upsert" as const, time: 1, value: { pad: "" } };
			const pad = bytes - utf8(JSON.stringify(base)) - utf8(tail);
			return { ...base, value: { pad: "x".repeat(pad) + tail } };
		};
		for (const tail of ["", "é", "€", "😀"]) {
			const at = encodeEvent(sized(MAX_EVENT_BYTES, tail));
			if (typeof at === "string") throw new Error(`${tail}: ${at}`);
			expect(at.bytes).toBe(MAX_EVENT_BYTES);
			expect(at.bytes).toBe(utf8(at.json));
			expect(encodeEvent(sized(MAX_EVENT_BYTES + 1, tail))).toMatch(/event is larger than 102400 bytes/);
		}
		// A multi-byte character that would end past the counting buffer, and an event many times the limit.
		expect(encodeEvent(sized(MAX_EVENT_BYTES + 3, "😀"))).toMatch(/larger than/);
		expect(encodeEvent(sized(MAX_EVENT_BYTES * 5, "é"))).toMatch(/larger than/);
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
		// A refresh message without tiers is a KV refresh (as written before Redis refreshes existed).
		expect(readQueueMessage(JSON.stringify(refresh))).toEqual({ kind: "refresh", refs: refresh.refresh, tiers: ["kv"] });
		expect(readQueueMessage({ ...refresh, tiers: ["redis"], until: 5 })).toEqual({ kind: "refresh", refs: refresh.refresh, tiers: ["redis"], until: 5 });
		expect(readQueueMessage({ ...refresh, tiers: ["l0"] })).toBeNull();
		expect(readQueueMessage(JSON.stringify({ v: 1, refresh: [{ dataset: "d" }] }))).toBeNull();
		// What a consumer without text support dead-letters is the text as a JSON string; replayed, it still reads.
		expect(readQueueMessage(JSON.stringify(JSON.stringify(body)))).toEqual({ kind: "events", events: body.events });
		expect(readQueueMessage("not json")).toBeNull();
		expect(readQueueMessage(JSON.stringify({ v: 2, events: [] }))).toBeNull();
		expect(readQueueMessage(JSON.stringify({ v: 1, events: [{ id: "x" }] }))).toBeNull();
		expect(readQueueMessage(42)).toBeNull();
	});
});

describe("cached copies: encodeRecord / decodeRecord / valueJson", () => {
	/** A random JSON value: numbers of every kind, escapes, unicode, nesting. */
	function randomValue(next: () => number, depth = 0): unknown {
		const pick = Math.floor(next() * (depth > 2 ? 5 : 7));
		if (pick === 0) return next() < 0.5 ? null : next() < 0.5;
		if (pick === 1) return [0, -0, 1e21, -1.5e-300, 2 ** 53 - 1, next() * 1e6 - 5e5, Math.floor(next() * 1000)][Math.floor(next() * 7)];
		if (pick === 2) return ["", "plain", 'q"uote', "back\\slash", "nl\n\u2028", "ünï ✓ 😀", '"v":', "\u0001"][Math.floor(next() * 8)];
		if (pick === 3) return Math.floor(next() * 100);
		if (pick === 4) return `s${Math.floor(next() * 1e9)}`;
		if (pick === 5) return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1));
		return randomObject(next, depth + 1);
	}
	function randomObject(next: () => number, depth = 0): Record<string, unknown> {
		const o: Record<string, unknown> = {};
		const n = Math.floor(next() * 6);
		for (let k = 0; k < n; k++) o[["a", "b c", 'k"q', "ü", "v", "__x", `f${k}`][Math.floor(next() * 7)] as string] = randomValue(next, depth);
		return o;
	}

	it("round-trip: the encoding is JSON.stringify's, and a decoded value's text is JSON.stringify's", () => {
		const next = rng(20261124);
		for (let n = 0; n < 500; n++) {
			const rec: CachedRecord = {
				v: n % 50 === 0 ? null : randomObject(next),
				t: Math.floor(next() * 2e12),
				i: ["e1", 'x","v":{"a":1}', "ünï", ""][n % 4] as string,
				r: 1 + Math.floor(next() * 1e6),
			};
			const text = encodeRecord(rec);
			expect(text).toBe(JSON.stringify({ r: rec.r, t: rec.t, i: rec.i, v: rec.v }));
			const back = decodeRecord(text);
			expect(back).toEqual(JSON.parse(text));
			expect(valueJson(back?.v ?? null)).toBe(JSON.stringify(back?.v ?? null));
			expect(encodeRecord(back as CachedRecord)).toBe(text);
		}
	});

	it("a copy in another layout still decodes, and its value is serialised afresh", () => {
		const foreign = ' { "v" : { "b" : 2, "a" : [1, 2.50] }, "i": "e", "t": 5, "r": 3 } ';
		const rec = decodeRecord(foreign);
		expect(rec).toEqual({ v: { b: 2, a: [1, 2.5] }, i: "e", t: 5, r: 3 });
		expect(valueJson(rec?.v ?? null)).toBe('{"b":2,"a":[1,2.5]}');
		expect(encodeRecord(rec as CachedRecord)).toBe('{"r":3,"t":5,"i":"e","v":{"b":2,"a":[1,2.5]}}');
	});

	it("refuses what is not a copy", () => {
		for (const s of [null, undefined, "", "not json", "[]", "null", '{"r":1}', '{"t":1}', '{"r":"1","t":1}']) expect(decodeRecord(s)).toBeNull();
	});
});
