/** Ingest: POST /v1/events with JSON arrays and NDJSON, per-event validation, limits, and what reaches D1. */
import { beforeAll, describe, expect, it } from "vitest";
import {
	call,
	createDataset,
	d1Count,
	d1Record,
	expectJson,
	expectProblem,
	getRecord,
	type IngestResult,
	postEvents,
	type RecordBody,
	staysFalse,
	uniqueName,
	userSpec,
	waitForD1,
	waitForRecord,
} from "./helpers";

let ds = "";
beforeAll(async () => {
	ds = await createDataset(userSpec());
});

const good = (key = uniqueName("k"), value: Record<string, unknown> = { age: 1 }) => ({ dataset: ds, key, op: "upsert", value });
const ndjson = (lines: string[], type = "application/x-ndjson") => call("POST", "/v1/events", { body: lines.join("\n"), headers: { "content-type": type } });

describe("POST /v1/events", () => {
	describe("happy", () => {
		it("accepts a JSON array: 202 {accepted, rejected: []}, and the events reach D1", async () => {
			const k1 = uniqueName("k");
			const k2 = uniqueName("k");
			const res = await call("POST", "/v1/events", {
				json: [good(k1, { age: 31, name: "Ann", emb: [0.1, 0.2, 0.3] }), { dataset: ds, key: k2, op: "patch", value: { tags: ["a", "b"], active: true } }],
			});
			expect(await expectJson<IngestResult>(res, 202)).toEqual({ accepted: 2, rejected: [] });
			expect((await waitForRecord(ds, k1)).value).toEqual({ age: 31, name: "Ann", emb: [0.1, 0.2, 0.3] });
			expect((await waitForRecord(ds, k2)).value).toEqual({ tags: ["a", "b"], active: true });
		});

		it("accepts NDJSON (application/x-ndjson), one event per line, blank lines skipped", async () => {
			const keys = [uniqueName("k"), uniqueName("k"), uniqueName("k")];
			const res = await ndjson([
				JSON.stringify(good(keys[0], { age: 1 })),
				"",
				JSON.stringify(good(keys[1], { age: 2 })),
				JSON.stringify(good(keys[2], { age: 3 })),
				"",
			]);
			expect(await expectJson<IngestResult>(res, 202)).toEqual({ accepted: 3, rejected: [] });
			for (const [i, k] of keys.entries()) expect((await waitForD1(ds, k as string)).value).toBe(JSON.stringify({ age: i + 1 }));
		});

		it("accepts NDJSON with CRLF line ends and a charset parameter", async () => {
			const k = uniqueName("k");
			const res = await call("POST", "/v1/events", {
				body: `${JSON.stringify(good(k, { age: 7 }))}\r\n${JSON.stringify(good(uniqueName("k")))}\r\n`,
				headers: { "content-type": "application/x-ndjson; charset=utf-8" },
			});
			expect(await expectJson<IngestResult>(res, 202)).toEqual({ accepted: 2, rejected: [] });
			expect((await waitForRecord(ds, k)).value).toEqual({ age: 7 });
		});

		it("accepts application/json with a charset parameter, and a single event object", async () => {
			const k = uniqueName("k");
			const res = await call("POST", "/v1/events", {
				body: JSON.stringify(good(k, { age: 8 })),
				headers: { "content-type": "application/json; charset=utf-8" },
			});
			expect(await expectJson<IngestResult>(res, 202)).toEqual({ accepted: 1, rejected: [] });
			expect((await waitForRecord(ds, k)).value).toEqual({ age: 8 });
		});

		it("takes the key from the entity-key field inside value, and does not store that field", async () => {
			const k = uniqueName("k");
			expect(await postEvents([{ dataset: ds, op: "upsert", value: { user_id: k, age: 5 } }])).toEqual({ accepted: 1, rejected: [] });
			expect((await waitForRecord(ds, k)).value).toEqual({ age: 5 });
		});

		it("turns whole-number keys into strings, in key and in the entity-key field", async () => {
			const n = Date.now() * 1000 + Math.floor(Math.random() * 1000);
			expect(
				await postEvents([
					{ dataset: ds, key: n, op: "upsert", value: { age: 1 } },
					{ dataset: ds, op: "upsert", value: { user_id: n + 1, age: 2 } },
				]),
			).toEqual({ accepted: 2, rejected: [] });
			expect((await waitForRecord(ds, String(n))).value).toEqual({ age: 1 });
			expect((await waitForRecord(ds, String(n + 1))).value).toEqual({ age: 2 });
		});

		it("takes event_time as RFC 3339 (Z and offset, with fractions) or as epoch ms", async () => {
			const cases: [string | number, number][] = [
				["2026-01-02T03:04:05Z", Date.UTC(2026, 0, 2, 3, 4, 5)],
				["2026-01-02T03:04:05.678Z", Date.UTC(2026, 0, 2, 3, 4, 5, 678)],
				["2026-01-02T05:04:05+02:00", Date.UTC(2026, 0, 2, 3, 4, 5)],
				["2026-01-01T22:04:05.5-05:00", Date.UTC(2026, 0, 2, 3, 4, 5, 500)],
				[1767323045678, 1767323045678],
				[0, 0],
			];
			const keys = cases.map(() => uniqueName("t"));
			const res = await postEvents(cases.map(([t], i) => ({ ...good(keys[i]), event_time: t })));
			expect(res).toEqual({ accepted: cases.length, rejected: [] });
			for (const [i, [, ms]] of cases.entries()) {
				const row = await waitForD1(ds, keys[i] as string);
				expect(row.event_time).toBe(ms);
				const body = await waitForRecord(ds, keys[i] as string);
				expect(body.event_time).toBe(new Date(ms).toISOString());
			}
		});

		it("uses the receipt time when event_time is absent", async () => {
			const k = uniqueName("k");
			const before = Date.now();
			await postEvents([good(k)]);
			const after = Date.now();
			const row = await waitForD1(ds, k);
			expect(row.event_time).toBeGreaterThanOrEqual(before);
			expect(row.event_time).toBeLessThanOrEqual(after);
		});

		it("an event without id sent twice is applied once (its id derives from its content)", async () => {
			const k = uniqueName("k");
			const event = { ...good(k, { age: 50, name: "Dup" }), event_time: Date.now() - 1000 };
			await postEvents([event]);
			const first = await waitForD1(ds, k);
			expect(first.rev).toBe(1);
			expect(first.event_id).toMatch(/\S/);
			// The duplicate travels with a marker in the same request, so in the same queue message, which the
			// consumer applies as a whole: once the marker is in D1, the duplicate went through the consumer too.
			const marker = uniqueName("marker");
			await postEvents([event, good(marker)]);
			await waitForD1(ds, marker);
			const second = await d1Record(ds, k);
			expect(second?.rev).toBe(1);
			expect(second?.event_id).toBe(first.event_id);
			const body = await waitForRecord(ds, k);
			expect(body.value).toEqual({ age: 50, name: "Dup" });
		});

		it("an event with an explicit id sent again (same id and time) is applied once, even if its value differs", async () => {
			const k = uniqueName("k");
			const id = uniqueName("id");
			const t = Date.now() - 500;
			await postEvents([{ ...good(k, { age: 1 }), id, event_time: t }]);
			await waitForD1(ds, k);
			const marker = uniqueName("marker");
			await postEvents([{ ...good(k, { age: 2 }), id, event_time: t }, good(marker)]);
			await waitForD1(ds, marker);
			const row = await d1Record(ds, k);
			expect(row?.rev).toBe(1);
			expect(row?.event_id).toBe(id);
			expect(JSON.parse(row?.value ?? "null")).toEqual({ age: 1 });
		});

		it("applies the events of one request in event_time order whatever their order in the body", async () => {
			const k = uniqueName("k");
			const t = Date.now() - 10_000;
			await postEvents([
				{ dataset: ds, key: k, op: "patch", value: { name: "late patch" }, event_time: t + 3 },
				{ dataset: ds, key: k, op: "upsert", value: { age: 2, name: "second" }, event_time: t + 2 },
				{ dataset: ds, key: k, op: "delete", event_time: t + 1 },
				{ dataset: ds, key: k, op: "upsert", value: { age: 0 }, event_time: t },
			]);
			const row = await waitForD1(ds, k);
			expect(JSON.parse(row.value ?? "null")).toEqual({ age: 2, name: "late patch" });
			expect(row.event_time).toBe(t + 3);
		});
	});

	describe("error: per-event rejection in a mixed request", () => {
		const longKey = "k".repeat(401);
		const cases: [string, () => unknown, RegExp][] = [
			["unknown dataset", () => ({ dataset: "no_such_dataset_x", key: "a", op: "upsert", value: { age: 1 } }), /dataset "no_such_dataset_x" does not exist/],
			["dataset missing", () => ({ key: "a", op: "upsert", value: { age: 1 } }), /dataset is required/],
			["bad op", () => ({ dataset: ds, key: "a", op: "merge", value: { age: 1 } }), /op must be one of upsert, patch, delete/],
			["op missing", () => ({ dataset: ds, key: "a", value: { age: 1 } }), /op must be one of/],
			["wrong field type (int)", () => ({ dataset: ds, key: "a", op: "upsert", value: { age: "old" } }), /value\.age: expected an integer/],
			[
				"wrong field type (float given a string)",
				() => ({ dataset: ds, key: "a", op: "patch", value: { score: "1.5" } }),
				/value\.score: expected a finite number/,
			],
			["wrong field type (bool)", () => ({ dataset: ds, key: "a", op: "upsert", value: { active: 1 } }), /value\.active: expected true or false/],
			["wrong field type (string[])", () => ({ dataset: ds, key: "a", op: "upsert", value: { tags: ["a", 1] } }), /value\.tags: expected an array of strings/],
			["int that is not whole", () => ({ dataset: ds, key: "a", op: "upsert", value: { age: 1.5 } }), /value\.age: expected an integer/],
			["vector of the wrong length", () => ({ dataset: ds, key: "a", op: "upsert", value: { emb: [1, 2] } }), /value\.emb: expected 3 numbers, got 2/],
			[
				"vector with a non-number",
				() => ({ dataset: ds, key: "a", op: "upsert", value: { emb: [1, "2", 3] } }),
				/value\.emb: expected an array of 3 finite numbers/,
			],
			["unknown field", () => ({ dataset: ds, key: "a", op: "upsert", value: { colour: "red" } }), /value\.colour: unknown field/],
			["missing key", () => ({ dataset: ds, op: "upsert", value: { age: 1 } }), /key is required/],
			// A key sent but unfit is named as sent, not called missing.
			["empty key", () => ({ dataset: ds, key: "", op: "upsert", value: { age: 1 } }), /^key must be a non-empty string or a safe integer, not ""$/],
			["key of the wrong type", () => ({ dataset: ds, key: { id: 1 }, op: "upsert", value: { age: 1 } }), /^key must be .*, not an object$/],
			[
				"fractional numeric key",
				() => ({ dataset: ds, key: 1.5, op: "upsert", value: { age: 1 } }),
				/^key must be a non-empty string or a safe integer, not 1\.5$/,
			],
			["unsafe integer key", () => ({ dataset: ds, key: 2 ** 60, op: "delete" }), /^key must be .*, not 1152921504606847000$/],
			[
				"key field in value of the wrong type",
				() => ({ dataset: ds, op: "upsert", value: { user_id: true, age: 1 } }),
				/^value\.user_id must be a non-empty string or a safe integer, not true$/,
			],
			["key longer than 400 bytes", () => ({ dataset: ds, key: longKey, op: "upsert", value: { age: 1 } }), /key is longer than 400 bytes/],
			[
				"key of 201 two-byte characters (402 bytes)",
				() => ({ dataset: ds, key: "é".repeat(201), op: "upsert", value: { age: 1 } }),
				/key is longer than 400 bytes/,
			],
			["event_time that is not a date", () => ({ ...good("a"), event_time: "yesterday" }), /event_time "yesterday" is not a valid RFC 3339 time/],
			["event_time without a zone", () => ({ ...good("a"), event_time: "2026-01-02T03:04:05" }), /event_time .* is not a valid RFC 3339 time/],
			["event_time negative", () => ({ ...good("a"), event_time: -5 }), /event_time -5 is before 1970-01-01T00:00:00Z \(epoch 0\)/],
			// Well-formed RFC 3339 before the epoch is not "not a valid RFC 3339 time": the answer says what is wrong.
			[
				"event_time before the epoch, with an offset",
				() => ({ ...good("a"), event_time: "1970-01-01T00:30:00+01:00" }),
				/event_time "1970-01-01T00:30:00\+01:00" is before 1970-01-01T00:00:00Z/,
			],
			["event_time fractional", () => ({ ...good("a"), event_time: 1.5 }), /event_time as a number must be whole epoch milliseconds/],
			// Epoch milliseconds as a string, and a leap second: well-formed, so the answer says what to send instead.
			[
				"event_time as a numeric string",
				() => ({ ...good("a"), event_time: "1700000000000" }),
				/event_time "1700000000000" is a string: send epoch milliseconds as a JSON number \(1700000000000\)/,
			],
			[
				"event_time on a leap second",
				() => ({ ...good("a"), event_time: "2016-12-31T23:59:60Z" }),
				/event_time "2016-12-31T23:59:60Z" is a leap second.*send 2016-12-31T23:59:59\.999Z or the next second/,
			],
			["event_time of the wrong type", () => ({ ...good("a"), event_time: true }), /event_time must be an RFC 3339 string or epoch milliseconds/],
			["delete with a value", () => ({ dataset: ds, key: "a", op: "delete", value: { age: 1 } }), /a delete takes no value/],
			["upsert without a value", () => ({ dataset: ds, key: "a", op: "upsert" }), /upsert needs value/],
			["patch with an array value", () => ({ dataset: ds, key: "a", op: "patch", value: [1] }), /patch needs value/],
			["patch with no field", () => ({ dataset: ds, key: "a", op: "patch", value: { user_id: "a" } }), /a patch needs at least one field/],
			["non-object event (number)", () => 42, /an event must be a JSON object/],
			["non-object event (string)", () => "upsert a", /an event must be a JSON object/],
			["non-object event (array)", () => [good("a")], /an event must be a JSON object/],
			["non-object event (null)", () => null, /an event must be a JSON object/],
			["unknown property", () => ({ ...good("a"), ttl: 5 }), /unknown property "ttl"/],
			["empty id", () => ({ ...good("a"), id: "" }), /id must be a non-empty string/],
			["id longer than 128 characters", () => ({ ...good("a"), id: "i".repeat(129) }), /id must be a non-empty string of at most 128/],
			["event larger than 100 KiB", () => good("a", { name: "x".repeat(110 * 1024) }), /event is larger than 102400 bytes/],
		];

		it.each(cases)("%s: rejected with its index and a reason, the good events around it accepted", async (_label, bad, reason) => {
			const res = await postEvents([good(), bad(), good()]);
			expect(res.accepted).toBe(2);
			expect(res.rejected).toHaveLength(1);
			expect(res.rejected[0]?.index).toBe(1);
			expect(res.rejected[0]?.error).toMatch(reason);
		});

		it("accepted events reach D1 and nothing from the rejected ones does", async () => {
			const own = await createDataset(userSpec());
			const goodKeys = [uniqueName("g"), uniqueName("g"), uniqueName("g")];
			const events = [
				{ dataset: own, key: goodKeys[0], op: "upsert", value: { age: 1 } },
				{ dataset: own, key: "bad_type", op: "upsert", value: { age: "x" } },
				{ dataset: own, key: "bad_field", op: "upsert", value: { nope: 1 } },
				{ dataset: own, key: goodKeys[1], op: "patch", value: { name: "b" } },
				{ dataset: own, key: "bad_vector", op: "upsert", value: { emb: [1] } },
				{ dataset: own, key: "bad_delete", op: "delete", value: {} },
				{ dataset: own, key: "bad_time", op: "upsert", value: { age: 1 }, event_time: "soon" },
				{ dataset: own, key: goodKeys[2], op: "upsert", value: { age: 3 } },
			];
			const res = await postEvents(events);
			expect(res.accepted).toBe(3);
			expect(res.rejected.map((r) => r.index)).toEqual([1, 2, 4, 5, 6]);
			for (const k of goodKeys) await waitForD1(own, k as string);
			expect(await d1Count(own)).toBe(3);
			for (const k of ["bad_type", "bad_field", "bad_vector", "bad_delete", "bad_time"]) await expectProblem(await getRecord(own, k), 404);
		});

		it("an NDJSON line that is not JSON is rejected by its index; the other lines are accepted", async () => {
			const k = uniqueName("k");
			const res = await expectJson<IngestResult>(await ndjson([JSON.stringify(good(k)), "{not json", JSON.stringify(good()), "[1,2"]), 202);
			expect(res.accepted).toBe(2);
			expect(res.rejected.map((r) => r.index)).toEqual([1, 3]);
			for (const r of res.rejected) expect(r.error).toMatch(/line \d+ is not valid JSON/);
			await waitForD1(ds, k);
		});

		it("rejections come back sorted by index, NDJSON parse errors and validation errors together", async () => {
			const res = await expectJson<IngestResult>(
				await ndjson([JSON.stringify(good()), JSON.stringify({ dataset: ds, op: "x" }), "nope", JSON.stringify(good())]),
				202,
			);
			expect(res.rejected.map((r) => r.index)).toEqual([1, 2]);
		});

		// Regression (was a bug): checkValue looks fields up with `spec.fields[name]`, which walks the prototype chain, so
		// "constructor", "toString", "hasOwnProperty" and "__proto__" count as declared fields
		// (checkFieldValue then returns undefined = "no problem"). The event is accepted and the
		// undeclared field is stored in D1 (src/registry/spec.ts, checkValue; fix: Object.hasOwn).
		it.each(["constructor", "toString", "hasOwnProperty", "__proto__"])("an undeclared field named %s is rejected as unknown", async (field) => {
			const body = `[${JSON.stringify(good())},{"dataset":"${ds}","key":"${uniqueName("proto")}","op":"upsert","value":{"${field}":1}}]`;
			const res = await expectJson<IngestResult>(await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } }), 202);
			expect(res.rejected).toEqual([{ index: 1, error: expect.stringMatching(new RegExp(`value\\.${field}: unknown field`)) }]);
		});

		// Regression (was a bug): an impossible calendar date passes the RFC 3339 regex and Date.parse rolls it over
		// (2026-02-30 becomes 2026-03-02), so the event is stored under a time the client never sent
		// (src/input.ts, parseEventTime; fix: check the parsed date's Y-M-D against the text).
		it("an impossible calendar date in event_time is rejected", async () => {
			const res = await postEvents([good(), { ...good(), event_time: "2026-02-30T00:00:00Z" }]);
			expect(res.rejected).toEqual([{ index: 1, error: expect.stringMatching(/event_time/) }]);
		});

		// Regression (was a bug): a key with a lone UTF-16 surrogate ("\udc00") is accepted, but it cannot be stored
		// faithfully: D1 stores it as U+FFFD (another key), and the consumer's KV write-through fails
		// ("Could not URL-decode key name"), so the whole queue batch, good messages included, is
		// retried until it dead-letters (src/ingest/events.ts, validateEvent: reject keys that are not
		// well-formed Unicode, e.g. `!key.isWellFormed()`; the same check belongs in the lookup and
		// records routes).
		it("a key that is not well-formed Unicode (lone surrogate) is rejected", async () => {
			const body = `[${JSON.stringify(good())},{"dataset":"${ds}","key":"\\udc00${uniqueName("s")}","op":"upsert","value":{"age":1}}]`;
			const res = await expectJson<IngestResult>(await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } }), 202);
			expect(res.accepted).toBe(1);
			expect(res.rejected).toEqual([{ index: 1, error: expect.stringMatching(/key/) }]);
		});

		// The id is stored as the record's clock id: a lone surrogate would not survive D1 unchanged.
		it("an id that is not well-formed Unicode (lone surrogate) is rejected", async () => {
			const body = `[${JSON.stringify(good())},{"id":"e\\ud800x","dataset":"${ds}","key":"${uniqueName("s")}","op":"upsert","value":{"age":1}}]`;
			const res = await expectJson<IngestResult>(await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } }), 202);
			expect(res.accepted).toBe(1);
			expect(res.rejected).toEqual([{ index: 1, error: "id must be well-formed Unicode (it holds a lone surrogate)" }]);
		});
	});

	describe("error: whole-request failures", () => {
		it("all events bad -> 400 problem with one error per index, and nothing enqueued", async () => {
			const own = await createDataset(userSpec());
			const res = await call("POST", "/v1/events", {
				json: [{ dataset: own, key: "a", op: "upsert", value: { age: "x" } }, 7, { dataset: "nope_zz", key: "b", op: "upsert", value: {} }],
			});
			const p = await expectProblem(res, 400);
			expect(p.errors).toEqual([
				{ pointer: "/0/value/age", detail: expect.stringMatching(/value\.age: expected an integer/) },
				{ pointer: "/1", detail: expect.stringMatching(/must be a JSON object/) },
				{ pointer: "/2/dataset", detail: expect.stringMatching(/dataset "nope_zz" does not exist/) },
			]);
			expect(p.detail).toMatch(/none of the 3 event\(s\) is valid/);
			// The local queue delivers within about a second: a wrongly enqueued event would land within this window.
			await staysFalse(async () => (await d1Count(own)) > 0, 2500, "a refused event landing");
		});

		it("all NDJSON lines bad -> 400 problem", async () => {
			const p = await expectProblem(await ndjson(["nope", "{}"]), 400);
			expect(p.errors?.map((e) => e.pointer)).toEqual(["/0", "/1/dataset"]);
		});

		it("a body over 5 MiB -> 413 problem", async () => {
			const body = `[${JSON.stringify(good())}${" ".repeat(5 * 1024 * 1024)}]`;
			const p = await expectProblem(await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } }), 413);
			expect(p.detail).toMatch(/larger than 5 MiB/);
		});

		it("a body of exactly 5 MiB is within the limit", async () => {
			const head = `[${JSON.stringify(good())}`;
			const body = `${head}${" ".repeat(5 * 1024 * 1024 - head.length - 1)}]`;
			expect(new TextEncoder().encode(body).length).toBe(5 * 1024 * 1024);
			const res = await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } });
			expect(await expectJson<IngestResult>(res, 202)).toEqual({ accepted: 1, rejected: [] });
		});

		it("a streamed body over 5 MiB (no content-length) -> 413 problem", async () => {
			const chunk = new TextEncoder().encode(" ".repeat(1024 * 1024));
			let sent = 0;
			const stream = new ReadableStream<Uint8Array>({
				pull(c) {
					if (sent++ < 6) c.enqueue(chunk);
					else c.close();
				},
			});
			await expectProblem(await call("POST", "/v1/events", { body: stream, headers: { "content-type": "application/json" } }), 413);
		});

		it("more than 10,000 events -> 413 problem (JSON and NDJSON)", async () => {
			const events = Array.from({ length: 10_001 }, () => ({}));
			let p = await expectProblem(await call("POST", "/v1/events", { json: events }), 413);
			expect(p.detail).toMatch(/10001 events .* limit is 10000/);
			p = await expectProblem(await ndjson(Array.from({ length: 10_001 }, () => "{}")), 413);
			expect(p.detail).toMatch(/10001 events/);
		});

		it("10,000 events is within the count limit (all invalid here, so 400 rather than 413)", async () => {
			const p = await expectProblem(await call("POST", "/v1/events", { json: Array.from({ length: 10_000 }, () => 1) }), 400);
			expect(p.errors).toHaveLength(10_000);
		});

		it.each([
			["malformed JSON", '[{"dataset": '],
			["an empty body", ""],
			["an empty array", "[]"],
			["a JSON number", "42"],
			["a JSON string", '"events"'],
			["JSON null", "null"],
		])("%s -> 400 problem", async (_label, body) => {
			await expectProblem(await call("POST", "/v1/events", { body, headers: { "content-type": "application/json" } }), 400);
		});

		it("an NDJSON body with only blank lines -> 400 problem", async () => {
			const p = await expectProblem(await ndjson(["", "  ", ""]), 400);
			expect(p.detail).toMatch(/no events/);
		});

		it.each(["text/csv", "application/xml", "multipart/form-data; boundary=x", "application/octet-stream"])("Content-Type %s -> 415 problem", async (type) => {
			const p = await expectProblem(await call("POST", "/v1/events", { body: JSON.stringify([good()]), headers: { "content-type": type } }), 415);
			expect(p.detail).toContain(type.split(";")[0] as string);
		});
	});
});

describe("ingest results read back through the API", () => {
	it("the record endpoint shows the value, event_time and age of an accepted event", async () => {
		const k = uniqueName("k");
		const t = Date.now() - 2000;
		await postEvents([{ ...good(k, { age: 9, meta: { nested: [1, { a: null }] }, weights: [0.5, -1] }), event_time: new Date(t).toISOString() }]);
		const body: RecordBody = await waitForRecord(ds, k);
		expect(body).toMatchObject({
			dataset: ds,
			key: k,
			status: "present",
			value: { age: 9, meta: { nested: [1, { a: null }] }, weights: [0.5, -1] },
			event_time: new Date(t).toISOString(),
		});
		expect(body.age_ms).toBeGreaterThanOrEqual(2000);
		expect(body.age_ms).toBeLessThan(60_000);
	});
});
