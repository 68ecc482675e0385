// JSON Pointers, the message-to-event mapping, ordered acks and PostgreSQL value conversion.
import { describe, expect, it } from "vitest";
import { compileMap } from "../../../cli/bridge/mapping.ts";
import { OrderedAcks } from "../../../cli/bridge/ordered-acks.ts";
import { compilePointer, pointerProblem, resolvePointer } from "../../../cli/bridge/pointer.ts";
import { type PgType, toJsonValue } from "../../../cli/bridge/sources/pg-values.ts";

describe("JSON Pointer (RFC 6901)", () => {
	it("resolves objects, arrays and escapes, and finds nothing where there is nothing", () => {
		const doc = { a: { "b/c": [10, { "m~n": "x" }] }, "": 1, n: null };
		expect(resolvePointer(doc, compilePointer(""))).toBe(doc);
		expect(resolvePointer(doc, compilePointer("/a/b~1c/1/m~0n"))).toBe("x");
		expect(resolvePointer(doc, compilePointer("/a/b~1c/0"))).toBe(10);
		expect(resolvePointer(doc, compilePointer("/"))).toBe(1);
		expect(resolvePointer(doc, compilePointer("/n"))).toBeNull();
		expect(resolvePointer(doc, compilePointer("/a/b~1c/01"))).toBeUndefined();
		expect(resolvePointer(doc, compilePointer("/a/b~1c/-"))).toBeUndefined();
		expect(resolvePointer(doc, compilePointer("/missing/x"))).toBeUndefined();
		expect(resolvePointer(doc, compilePointer("/a/toString"))).toBeUndefined();
		expect(pointerProblem("a")).toMatch(/must be a JSON Pointer/);
		expect(pointerProblem("/a~")).toMatch(/~0/);
	});
});

describe("mapping a message to an event", () => {
	const d = (message: unknown, extra: object = {}) => ({ id: "src:1", message, time: 1000, ...extra });

	it("refuses a number JSON cannot carry (1e400 parses as Infinity; JSON.stringify would send null), naming where in the event", () => {
		const m = compileMap({ key: "/id", event_time: "/at" }, "ds");
		expect(m.map(d(JSON.parse('{"id":"k","score":1e400}')))).toMatch(/^value\.score: expected a finite number, not Infinity/);
		expect(m.map(d({ id: "k", v: { w: [0, Number.NaN] } }))).toMatch(/^value\.v\.w\[1\]: expected a finite number, not NaN/);
		expect(m.map(d({ id: "k", at: Number.NEGATIVE_INFINITY, x: 1 }))).toMatch(/^event_time: expected a finite number, not -Infinity/);
		// A member the event does not carry may hold anything.
		expect(compileMap({ key: "/id", value: "/v" }, "ds").map(d({ id: "k", junk: Number.NaN, v: { x: 1 } }))).toMatchObject({ value: { x: 1 } });
	});

	it("takes key, op, time and value through the pointers; the whole message minus those members by default", () => {
		const m = compileMap({ key: "/id", op: "/op", event_time: "/at" }, "ds");
		expect(m.map(d({ id: "k", op: "patch", at: "2026-01-01T00:00:00Z", x: 1 }))).toEqual({
			id: "src:1",
			dataset: "ds",
			key: "k",
			op: "patch",
			event_time: "2026-01-01T00:00:00Z",
			value: { x: 1 },
		});
		// Without a time in the message: the source's own time. Without op: upsert. An integer key becomes text.
		expect(m.map(d({ id: 7, x: 1 }))).toEqual({ id: "src:1", dataset: "ds", key: "7", op: "upsert", event_time: 1000, value: { x: 1 } });
		expect(m.map(d({ id: "k", op: "delete", x: 1 }))).toEqual({ id: "src:1", dataset: "ds", key: "k", op: "delete", event_time: 1000 });
		const nested = compileMap({ key: "/meta/key", value: "/data" }, "ds");
		expect(nested.map(d({ meta: { key: "k" }, data: { a: [1] } }))).toMatchObject({ key: "k", value: { a: [1] } });
	});

	it("says why a message cannot be an event", () => {
		const m = compileMap({ key: "/id", op: "/op", event_time: "/at", value: "/v" }, "ds");
		expect(m.map({ id: "x", error: "the message is not valid JSON: …" })).toBe("the message is not valid JSON: …");
		expect(m.map(d({ v: {} }))).toBe('no key at "/id"');
		expect(m.map(d({ id: 1.5, v: {} }))).toMatch(/must be a non-empty string or an integer, not 1.5/);
		expect(m.map(d({ id: "", v: {} }))).toMatch(/must be a non-empty string or an integer/);
		expect(m.map(d({ id: { a: 1 }, v: {} }))).toMatch(/not an object/);
		expect(m.map(d({ id: "k", op: "insert", v: {} }))).toMatch(/must be upsert, patch or delete, not "insert"/);
		expect(m.map(d({ id: "k", at: true, v: {} }))).toMatch(/event_time .* not true/);
		expect(m.map(d({ id: "k" }))).toBe('no value at "/v"');
		expect(m.map(d({ id: "k", v: [1] }))).toMatch(/must be a JSON object, not an array/);
		expect(compileMap({ key: "" }, "ds").map(d("just-a-string"))).toMatch(/must be a JSON object, not "just-a-string"/);
	});

	it("a string of digits as event_time is epoch ms where a message holds only text (Redis fields); JSON's own strings are sent as they are", () => {
		const m = compileMap({ key: "/id", event_time: "/at" }, "ds");
		expect(m.map(d({ id: "k", at: "1764300000000" }, { textValues: true }))).toMatchObject({ event_time: 1764300000000 });
		expect(m.map(d({ id: "k", at: "2026-01-02T03:04:05Z" }, { textValues: true }))).toMatchObject({ event_time: "2026-01-02T03:04:05Z" });
		expect(m.map(d({ id: "k", at: "17643e5" }, { textValues: true }))).toMatchObject({ event_time: "17643e5" });
		expect(m.map(d({ id: "k", at: "1764300000000" }))).toMatchObject({ event_time: "1764300000000" });
	});

	it("a key, op, value or dataset the source knows itself (postgres, a Kafka tombstone) fills in for the map", () => {
		const m = compileMap({}, undefined);
		expect(m.map(d({ id: 1, n: "x" }, { key: "1", op: "upsert", value: { n: "x" }, dataset: "t" }))).toEqual({
			id: "src:1",
			dataset: "t",
			key: "1",
			op: "upsert",
			event_time: 1000,
			value: { n: "x" },
		});
		expect(compileMap({ key: "/id" }, "ds").map(d(null, { key: "k", op: "delete" }))).toMatchObject({ key: "k", op: "delete" });
	});
});

describe("ordered acks", () => {
	it("moves only over the acked prefix, whatever the order of the acks", () => {
		const acks = new OrderedAcks<number>();
		for (let i = 0; i < 3000; i++) acks.add(i);
		expect(acks.ack([1, 2])).toBeUndefined();
		expect(acks.ack([0])).toBe(2);
		expect(acks.ack(Array.from({ length: 2000 }, (_, i) => 2999 - i))).toBeUndefined();
		expect(acks.outstanding).toBe(2997);
		expect(acks.ack(Array.from({ length: 997 }, (_, i) => 3 + i))).toBe(2999);
		expect(acks.outstanding).toBe(0);
		acks.add(5000);
		expect(acks.ack([4999])).toBeUndefined();
		expect(acks.ack([5000])).toBe(5000);
	});
});

describe("PostgreSQL values to JSON", () => {
	const types = new Map<number, PgType>([
		[20, { name: "int8", category: "N", elem: 0 }],
		[1700, { name: "numeric", category: "N", elem: 0 }],
		[1016, { name: "_int8", category: "A", elem: 20 }],
		[1082, { name: "date", category: "D", elem: 0 }],
		[1114, { name: "timestamp", category: "D", elem: 0 }],
		[1184, { name: "timestamptz", category: "D", elem: 0 }],
		[17, { name: "bytea", category: "U", elem: 0 }],
		[99999, { name: "vector", category: "U", elem: 0 }],
	]);
	it("numbers when nothing is lost, text otherwise; dates, times, arrays, bytea and vectors", () => {
		expect(toJsonValue("9007199254740991", 20, types)).toBe(9007199254740991);
		expect(toJsonValue("9007199254740993", 20, types)).toBe("9007199254740993");
		expect(toJsonValue("1.50", 1700, types)).toBe(1.5);
		expect(toJsonValue("0.000123", 1700, types)).toBe(0.000123);
		expect(toJsonValue("12345678901234567.89", 1700, types)).toBe("12345678901234567.89");
		expect(toJsonValue("NaN", 1700, types)).toBe("NaN");
		expect(toJsonValue(["1", "99999999999999999999"], 1016, types)).toEqual([1, "99999999999999999999"]);
		expect(toJsonValue(new Date(2024, 1, 29), 1082, types)).toBe("2024-02-29");
		expect(toJsonValue(new Date(2024, 0, 1, 10, 0, 0, 123), 1114, types)).toBe("2024-01-01T10:00:00.123");
		expect(toJsonValue(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), 1184, types)).toBe("2026-01-02T03:04:05.678Z");
		expect(toJsonValue(Buffer.from([1, 2, 3]), 17, types)).toBe("AQID");
		expect(toJsonValue("[0.5,1,2]", 99999, types)).toEqual([0.5, 1, 2]);
		expect(toJsonValue({ a: 1 }, 3802, types)).toEqual({ a: 1 });
		expect(toJsonValue(null, 20, types)).toBeNull();
	});
});
