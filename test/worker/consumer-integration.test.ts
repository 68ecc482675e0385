/**
 * The queue consumers, called directly through the worker's queue() handler: acks after the D1
 * commit, KV write-through, dead letters and their replay, retries, and convergence of
 * out-of-order, duplicated events.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { rng } from "../../scripts/lib/rng";
import { consumeEvents } from "../../src/ingest/consumer";
import { servicesFor } from "../../src/services";
import { writeStates } from "../../src/storage/records";
import {
	call,
	createDataset,
	DLQ,
	d1Record,
	deadLetterByMessageId,
	EVENTS_QUEUE,
	env,
	eventsBody,
	eventually,
	expectJson,
	expectProblem,
	holdInKv,
	kvRecord,
	message,
	type QueueEvent,
	type RecordRow,
	runQueue,
	seedD1,
	uniqueName,
	waitForD1,
	waitForRecord,
} from "./helpers";

let ds = "";
beforeAll(async () => {
	ds = await createDataset({ key: "id", fields: { a: "int", b: "string", c: "bool" }, ttl_seconds: 3600 });
});

const ev = (key: string, op: QueueEvent["op"], time: number, value?: Record<string, unknown>, id = `${op}@${time}`): QueueEvent => ({
	id,
	dataset: ds,
	key,
	op,
	time,
	...(value ? { value } : {}),
});

/** The parts of a D1 row the merge decides (not rev or updated_at). */
const mergeState = (r: RecordRow | null) =>
	r && {
		value: r.value === null ? null : JSON.parse(r.value),
		base_time: r.base_time,
		base_id: r.base_id,
		base_deleted: r.base_deleted,
		field_clocks: JSON.parse(r.field_clocks),
		event_time: r.event_time,
		event_id: r.event_id,
	};

describe("events consumer (hotpath-events)", () => {
	describe("happy", () => {
		it("leaves a key KV does not hold out of KV (reads fill it), and refreshes keys KV holds", async () => {
			const k = uniqueName("cold");
			await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", Date.now(), { a: 1 })]))]);
			expect((await d1Record(ds, k))?.rev).toBe(1);
			expect(await kvRecord(ds, k)).toBeNull();
		});

		it("applies a message, acks it explicitly, leaves the record in D1, and refreshes the copy KV holds", async () => {
			const k = uniqueName("k");
			const t = Date.now() - 1000;
			const first = message(eventsBody([ev(k, "upsert", t, { a: 1, b: "x" }, "e1")]));
			const result = await runQueue(EVENTS_QUEUE, [first]);
			expect(result.explicitAcks).toEqual([first.id]);
			expect(result.retryMessages).toEqual([]);
			expect(result.ackAll).toBe(false);
			const row = await d1Record(ds, k);
			expect(row).toMatchObject({ dataset: ds, key: k, value: JSON.stringify({ a: 1, b: "x" }), event_time: t, event_id: "e1", rev: 1, base_deleted: 0 });
			// A key new to D1 cannot have a KV copy: the consumer neither asks KV nor writes it.
			expect(await kvRecord(ds, k)).toBeNull();

			await holdInKv(ds, k);
			const second = message(eventsBody([ev(k, "upsert", t + 1, { a: 2 }, "e2")]));
			expect((await runQueue(EVENTS_QUEUE, [second])).explicitAcks).toEqual([second.id]);
			expect((await d1Record(ds, k))?.rev).toBe(2);
			expect(await kvRecord(ds, k)).toEqual({ v: { a: 2 }, t: t + 1, i: "e2", r: 2 });
		});

		it("applies a message sent as JSON text, as the producer sends it", async () => {
			const k = uniqueName("txt");
			const msg = message(JSON.stringify(eventsBody([ev(k, "upsert", Date.now(), { a: 7 })])));
			expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
			expect(JSON.parse((await d1Record(ds, k))?.value ?? "null")).toEqual({ a: 7 });
		});

		it("writes a batch larger than one statement takes (1,200 keys), every key once, at rev 1 then rev 2", async () => {
			const prefix = uniqueName("many");
			const t = Date.now() - 5000;
			const keys = Array.from({ length: 1200 }, (_, i) => `${prefix}_${i}`);
			const first = keys.map((k, i) => ev(k, "upsert", t, { a: i }));
			expect((await runQueue(EVENTS_QUEUE, [message(eventsBody(first))])).retryMessages).toEqual([]);
			const second = keys.map((k, i) => ev(k, "patch", t + 1, { b: `p${i}` }));
			expect((await runQueue(EVENTS_QUEUE, [message(eventsBody(second))])).retryMessages).toEqual([]);
			const { results } = await env.DB.prepare("SELECT key, value, rev FROM records WHERE dataset = ?1 AND key LIKE ?2")
				.bind(ds, `${prefix}_%`)
				.all<{ key: string; value: string; rev: number }>();
			expect(results).toHaveLength(1200);
			for (const r of results) {
				const i = Number(r.key.slice(prefix.length + 1));
				expect(r.rev).toBe(2);
				expect(JSON.parse(r.value)).toEqual({ a: i, b: `p${i}` });
			}
		});

		it("writeStates: a write merged onto a revision writes only while D1 holds that revision, and never re-creates a missing row", async () => {
			const k = uniqueName("occ");
			const state = { value: { a: 1 }, base: [1, "e"] as const, baseDeleted: false, fieldClocks: {}, clock: [1, "e"] as const };
			const w = (prevRev: number | null, id: string, value = state.value) => ({
				dataset: ds,
				key: k,
				state: { ...state, value },
				prevRev,
				events: [{ time: 1, id, op: "upsert" as const, value }],
			});
			const logged = async () =>
				(
					await env.DB.prepare("SELECT event_id FROM event_log WHERE dataset = ?1 AND key = ?2 ORDER BY event_id").bind(ds, k).all<{ event_id: string }>()
				).results.map((r) => r.event_id);
			expect(await writeStates(env.DB, [w(3, "x1")])).toEqual([null]);
			expect(await d1Record(ds, k)).toBeNull();
			expect(await writeStates(env.DB, [w(null, "x2")])).toEqual([1]);
			expect(await writeStates(env.DB, [w(null, "x3")])).toEqual([null]);
			expect(await writeStates(env.DB, [w(2, "x4")])).toEqual([null]);
			// A write whose events include an id the log holds for this key is refused: it was applied already.
			expect(await writeStates(env.DB, [w(1, "x2", { a: 9 })])).toEqual([null]);
			expect(await writeStates(env.DB, [w(1, "x5", { a: 2 })])).toEqual([2]);
			expect(await d1Record(ds, k)).toMatchObject({ rev: 2, value: JSON.stringify({ a: 2 }) });
			// An event is in the log exactly when the write that carried it landed.
			expect(await logged()).toEqual(["x2", "x5"]);
		});

		it("writeStates: each log row holds its event's own value, whether the record's value is a copy of it or only looks like one", async () => {
			const event = { a: 1, nested: { b: [1, 2] } };
			const cases = {
				// An upsert onto nothing: the state is a shallow copy, so the log row takes the record's value.
				copy: { ...event },
				// The same JSON built apart: equal but not identical nested values.
				lookalike: { a: 1, nested: { b: [1, 2] } },
				// Same fields, other order: other JSON text, still the same event value in the log.
				reordered: { nested: event.nested, a: 1 },
				// A state that is not the event's value at all (a field kept from an older record).
				other: { ...event, kept: true },
			};
			for (const [name, value] of Object.entries(cases)) {
				const k = uniqueName(`log-${name}`);
				const clock = [5, `e-${name}`] as const;
				const write = {
					dataset: ds,
					key: k,
					state: { value, base: clock, baseDeleted: false, fieldClocks: {}, clock },
					prevRev: null,
					events: [{ time: 5, id: `e-${name}`, op: "upsert" as const, value: event }],
				};
				expect(await writeStates(env.DB, [write])).toEqual([1]);
				const row = await env.DB.prepare("SELECT value FROM event_log WHERE dataset = ?1 AND key = ?2").bind(ds, k).first<{ value: string }>();
				expect(JSON.parse(row?.value ?? "null"), name).toEqual(event);
				expect(JSON.parse((await d1Record(ds, k))?.value as string), name).toEqual(value);
			}
		});

		it("writeStates: a value near the record size limit made of characters JSON escapes stays within D1's 2 MB per bound string, record and log row", async () => {
			// 499,980 quotes: 999,968 bytes of JSON, under MAX_RECORD_BYTES; as a JSON string in its row it would take twice that.
			const cases = { quotes: { s: '"'.repeat(499_980) }, small: { s: 'a "quoted" \\ value' } };
			for (const [name, value] of Object.entries(cases)) {
				const k = uniqueName(`big-${name}`);
				const clock = [5, `e-${name}`] as const;
				const bound: number[] = [];
				// D1 in production refuses a string over 2,000,000 bytes; Miniflare's does not, so the test measures what is bound.
				const db = new Proxy(env.DB, {
					get(target, prop) {
						if (prop !== "prepare") return Reflect.get(target, prop);
						return (sql: string) => {
							const stmt = target.prepare(sql);
							const bind = stmt.bind.bind(stmt);
							return Object.assign(stmt, {
								bind: (...args: unknown[]) => {
									for (const a of args) if (typeof a === "string") bound.push(new TextEncoder().encode(a).length);
									return bind(...args);
								},
							});
						};
					},
				});
				const write = {
					dataset: ds,
					key: k,
					state: { value: { ...value, kept: 1 }, base: clock, baseDeleted: false, fieldClocks: {}, clock },
					prevRev: null,
					events: [{ time: 5, id: `e-${name}`, op: "upsert" as const, value }],
				};
				expect(await writeStates(db, [write])).toEqual([1]);
				expect(Math.max(...bound), name).toBeLessThanOrEqual(2_000_000);
				expect((await d1Record(ds, k))?.value, name).toBe(JSON.stringify({ ...value, kept: 1 }));
				const row = await env.DB.prepare("SELECT value FROM event_log WHERE dataset = ?1 AND key = ?2").bind(ds, k).first<{ value: string }>();
				expect(row?.value, name).toBe(JSON.stringify(value));
			}
		});

		it("values survive D1's JSON handling exactly: unicode, escapes, floats, large and negative numbers, nesting", async () => {
			const jds = await createDataset({ key: "id", fields: { j: "json", s: "string", f: "float", i: "int" }, ttl_seconds: 3600 });
			const value = {
				j: { deep: [1, [2, [3, { x: null }]]], empty: {}, list: [], t: true, "key with spaces": "v" },
				s: 'ünïcødé ✓ 😀 "quoted" back\\slash \n newline \u2028 \t tab <script>',
				f: -1.2345678901234567e-12,
				i: 9007199254740991,
			};
			const k = uniqueName("fid");
			const msg = message(JSON.stringify(eventsBody([{ ...ev(k, "upsert", Date.now(), value), dataset: jds }])));
			expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
			expect(JSON.parse((await d1Record(jds, k))?.value ?? "null")).toEqual(value);
			const read = await expectJson<{ value: unknown }>(await call("GET", `/v1/datasets/${jds}/records/${k}`), 200);
			expect(read.value).toEqual(value);
		});

		it("past one invocation's KV operations, the rest of the held keys is refreshed by a follow-up message", async () => {
			const prefix = uniqueName("budget");
			const t = Date.now() - 5000;
			const keys = Array.from({ length: 40 }, (_, i) => `${prefix}_${i}`);
			await runQueue(EVENTS_QUEUE, [message(eventsBody(keys.map((k) => ev(k, "upsert", t, { a: 1 }))))]);
			for (const k of keys) await holdInKv(ds, k);
			// 1 bulk get + 9 puts: 31 held keys are left for the refresh message, which goes on the real
			// queue at least a second later (KV takes one write per key per second), so this invocation's
			// own effect can be checked first.
			const batch = createMessageBatch(EVENTS_QUEUE, [message(eventsBody(keys.map((k) => ev(k, "upsert", t + 1, { a: 2 }))))]);
			await consumeEvents(batch, servicesFor(env), { kvOps: 10 });
			expect((await getQueueResult(batch, createExecutionContext())).explicitAcks).toHaveLength(1);
			const refreshed = async () => (await Promise.all(keys.map((k) => kvRecord(ds, k)))).filter((c) => c?.r === 2).length;
			expect(await refreshed()).toBe(9);
			// The real consumer takes the follow-up message and refreshes the other 31.
			await eventually(async () => ((await refreshed()) === keys.length ? true : undefined), { what: "the follow-up refresh of 31 KV copies" });
			for (const k of keys) expect((await kvRecord(ds, k))?.v).toEqual({ a: 2 });
		});

		it("a refresh message writes D1's current state to the keys KV holds, and leaves the rest alone", async () => {
			const held = uniqueName("rh");
			const cold = uniqueName("rc");
			await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(held, "upsert", Date.now(), { a: 5 }), ev(cold, "upsert", Date.now(), { a: 6 })]))]);
			await holdInKv(ds, held);
			const msg = message(
				JSON.stringify({
					v: 1,
					refresh: [
						{ dataset: ds, key: held },
						{ dataset: ds, key: cold },
						{ dataset: ds, key: "never-written" },
					],
				}),
			);
			expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
			expect(await kvRecord(ds, held)).toMatchObject({ r: 1, v: { a: 5 } });
			expect(await kvRecord(ds, cold)).toBeNull();
			expect(await kvRecord(ds, "never-written")).toBeNull();
		});

		it("acks every message of a batch, events of many keys and datasets", async () => {
			const other = await createDataset({ key: "id", fields: { a: "int" } });
			const t = Date.now();
			const msgs = [
				message(eventsBody([ev("m1", "upsert", t, { a: 1 })])),
				message(eventsBody([ev("m2", "upsert", t, { a: 2 }), { ...ev("m1", "upsert", t, { a: 3 }), dataset: other }])),
				message(eventsBody([])),
			];
			const result = await runQueue(EVENTS_QUEUE, msgs);
			expect([...result.explicitAcks].sort()).toEqual(msgs.map((m) => m.id).sort());
			expect(result.retryMessages).toEqual([]);
			expect(JSON.parse((await d1Record(ds, "m1"))?.value ?? "null")).toEqual({ a: 1 });
			expect(JSON.parse((await d1Record(ds, "m2"))?.value ?? "null")).toEqual({ a: 2 });
			expect(JSON.parse((await d1Record(other, "m1"))?.value ?? "null")).toEqual({ a: 3 });
		});

		it("folds several events for one key in one batch into one D1 write (rev grows by 1 per batch)", async () => {
			const k = uniqueName("k");
			const t = Date.now() - 10_000;
			await runQueue(EVENTS_QUEUE, [
				message(eventsBody([ev(k, "upsert", t, { a: 1 }), ev(k, "patch", t + 1, { b: "p" })])),
				message(eventsBody([ev(k, "patch", t + 2, { a: 2 })])),
			]);
			let row = await d1Record(ds, k);
			expect(row?.rev).toBe(1);
			expect(JSON.parse(row?.value ?? "null")).toEqual({ a: 2, b: "p" });
			await holdInKv(ds, k);

			await runQueue(EVENTS_QUEUE, [
				message(eventsBody([ev(k, "patch", t + 3, { c: true }), ev(k, "patch", t + 4, { b: "q" }), ev(k, "patch", t + 5, { a: 3 })])),
			]);
			row = await d1Record(ds, k);
			expect(row?.rev).toBe(2);
			expect(JSON.parse(row?.value ?? "null")).toEqual({ a: 3, b: "q", c: true });
			expect(await kvRecord(ds, k)).toEqual({ v: { a: 3, b: "q", c: true }, t: t + 5, i: `patch@${t + 5}`, r: 2 });
		});

		it("a redelivered batch is acked and changes nothing (no new revision)", async () => {
			const k = uniqueName("k");
			const msg = message(eventsBody([ev(k, "upsert", Date.now(), { a: 1 })]));
			await runQueue(EVENTS_QUEUE, [msg]);
			await holdInKv(ds, k);
			const before = await d1Record(ds, k);
			const again = await runQueue(EVENTS_QUEUE, [{ ...msg, attempts: 2 }]);
			expect(again.explicitAcks).toEqual([msg.id]);
			expect(await d1Record(ds, k)).toEqual(before);
			expect((await kvRecord(ds, k))?.r).toBe(1);
		});

		it("an older event after a newer one changes neither D1 nor KV", async () => {
			const k = uniqueName("k");
			const t = Date.now();
			await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", t, { a: 2 })]))]);
			await holdInKv(ds, k);
			const late = message(eventsBody([ev(k, "upsert", t - 1000, { a: 1 })]));
			expect((await runQueue(EVENTS_QUEUE, [late])).explicitAcks).toEqual([late.id]);
			expect(await d1Record(ds, k)).toMatchObject({ value: JSON.stringify({ a: 2 }), rev: 1, event_time: t });
			expect(await kvRecord(ds, k)).toMatchObject({ v: { a: 2 }, r: 1 });
		});

		it("a delete leaves a tombstone in D1 and in KV, and the record reads as 404", async () => {
			const k = uniqueName("k");
			const t = Date.now() - 1000;
			await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "upsert", t, { a: 1 })]))]);
			await holdInKv(ds, k);
			await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "delete", t + 1)]))]);
			expect(await d1Record(ds, k)).toMatchObject({ value: null, base_deleted: 1, rev: 2, event_time: t + 1 });
			expect(await kvRecord(ds, k)).toEqual({ v: null, t: t + 1, i: `delete@${t + 1}`, r: 2 });
			await expectProblem(await call("GET", `/v1/datasets/${ds}/records/${k}`), 404);
		});
	});

	describe("convergence: out-of-order and duplicated events across batches", () => {
		const T = 1_700_000_000_000;
		// In event_time order: upsert@1, delete@2, upsert@3, patch@4. In order, the result is upsert@3's value with patch@4's b on top.
		const scenario = (key: string) => [
			ev(key, "upsert", T + 3, { a: 3, b: "x", c: true }),
			ev(key, "delete", T + 2),
			ev(key, "patch", T + 4, { b: "p" }),
			ev(key, "upsert", T + 1, { a: 1 }),
		];

		/** Applies each distinct event once, in (time, id) order, one batch per event: the reference. */
		async function applyInOrder(events: QueueEvent[]) {
			const sorted = [...events].sort((x, y) => x.time - y.time || (x.id < y.id ? -1 : 1));
			for (const e of sorted) await runQueue(EVENTS_QUEUE, [message(eventsBody([e]))]);
		}

		it("the documented example ends as in-order application: {a:3, b:'p', c:true} at t=4", async () => {
			const k = uniqueName("k");
			const [u3, d2, p4, u1] = scenario(k) as [QueueEvent, QueueEvent, QueueEvent, QueueEvent];
			// Shuffled and duplicated over four batches, two messages in one of them.
			await runQueue(EVENTS_QUEUE, [message(eventsBody([p4, d2]))]);
			await holdInKv(ds, k);
			await runQueue(EVENTS_QUEUE, [message(eventsBody([u1, u3])), message(eventsBody([p4]))]);
			await runQueue(EVENTS_QUEUE, [message(eventsBody([d2, u1]))]);
			await runQueue(EVENTS_QUEUE, [message(eventsBody([u3, p4, u1]))]);
			const row = await d1Record(ds, k);
			expect(JSON.parse(row?.value ?? "null")).toEqual({ a: 3, b: "p", c: true });
			expect(row?.event_time).toBe(T + 4);
			expect(row?.base_deleted).toBe(0);

			const ref = uniqueName("ref");
			await applyInOrder(scenario(ref));
			expect(mergeState(row)).toEqual(mergeState(await d1Record(ds, ref)));
			// KV follows D1.
			expect(await kvRecord(ds, k)).toEqual({ v: { a: 3, b: "p", c: true }, t: T + 4, i: row?.event_id, r: row?.rev });
		});

		it.each([1, 2, 3, 4, 5, 6, 7, 8])("random shuffles and duplicates (seed %i) converge to in-order application", async (seed) => {
			const random = rng(seed);
			const k = uniqueName("k");
			let held = false;
			const events = [
				...scenario(k),
				ev(k, "patch", T + 5, { c: false }),
				ev(k, "delete", T + 6),
				ev(k, "patch", T + 7, { a: 7 }),
				ev(k, "upsert", T + 5, { a: 5 }, "tie-b"),
				ev(k, "upsert", T + 5, { a: 50 }, "tie-a"),
			];
			// Every event 1-3 times, shuffled, cut into batches of 1-3 messages of 1-3 events.
			const deliveries = events.flatMap((e) => Array.from({ length: 1 + Math.floor(random() * 3) }, () => e));
			for (let i = deliveries.length - 1; i > 0; i--) {
				const j = Math.floor(random() * (i + 1));
				[deliveries[i], deliveries[j]] = [deliveries[j] as QueueEvent, deliveries[i] as QueueEvent];
			}
			while (deliveries.length) {
				const msgs = Array.from({ length: 1 + Math.floor(random() * 3) }, () => deliveries.splice(0, 1 + Math.floor(random() * 3))).filter((m) => m.length);
				const result = await runQueue(
					EVENTS_QUEUE,
					msgs.map((m) => message(eventsBody(m))),
				);
				expect(result.retryMessages).toEqual([]);
				expect(result.explicitAcks).toHaveLength(msgs.length);
				// KV holds the key from the first read fill on, as production would.
				if (!held && (await d1Record(ds, k))) {
					await holdInKv(ds, k);
					held = true;
				}
			}
			const ref = uniqueName("ref");
			await applyInOrder(events.map((e) => ({ ...e, key: ref })));
			const got = await d1Record(ds, k);
			const want = await d1Record(ds, ref);
			expect(mergeState(got)).toEqual(mergeState(want));
			// Spelled out: patch@7 on top of the delete@6 tombstone.
			expect(JSON.parse(got?.value ?? "null")).toEqual({ a: 7 });
			expect(await kvRecord(ds, k)).toMatchObject({ v: { a: 7 }, t: T + 7, r: got?.rev });
		});

		it("a delete is final against every older event, whatever their order", async () => {
			const k = uniqueName("k");
			await runQueue(EVENTS_QUEUE, [message(eventsBody([ev(k, "delete", T + 10)]))]);
			await runQueue(EVENTS_QUEUE, [
				message(eventsBody([ev(k, "upsert", T + 5, { a: 1 }), ev(k, "patch", T + 9, { a: 2 }), ev(k, "upsert", T + 10, { a: 3 }, "delete@0")])),
			]);
			const row = await d1Record(ds, k);
			expect(row).toMatchObject({ value: null, base_deleted: 1, event_time: T + 10, rev: 1 });
		});
	});

	describe("error: poison messages go to the dead-letter table", () => {
		const poison: [string, unknown][] = [
			["a string body", "not an events message"],
			["a wrong version", { v: 2, events: [] }],
			["events that is not an array", { v: 1, events: "x" }],
			["an event without id", { v: 1, events: [{ dataset: "d", key: "k", op: "upsert", time: 1 }] }],
			["an event with a bad op", { v: 1, events: [{ id: "i", dataset: "d", key: "k", op: "merge", time: 1 }] }],
			["an event with a string time", { v: 1, events: [{ id: "i", dataset: "d", key: "k", op: "upsert", time: "1" }] }],
			["null", null],
		];
		it.each(poison)("%s: acked, and stored in dead_letters with the reason", async (_label, body) => {
			const msg = message(body);
			const result = await runQueue(EVENTS_QUEUE, [msg]);
			expect(result.explicitAcks).toEqual([msg.id]);
			expect(result.retryMessages).toEqual([]);
			const row = await deadLetterByMessageId(msg.id);
			expect(row).toMatchObject({
				queue: EVENTS_QUEUE,
				message_id: msg.id,
				error: expect.stringMatching(/not a Hotpath events message/),
				attempts: 1,
				replayed_at: null,
			});
			expect(JSON.parse(row?.body ?? "undefined")).toEqual(body);
		});

		it("a text body that is JSON but not an events message is stored as that JSON", async () => {
			const msg = message('{"v":3,"note":"from elsewhere"}');
			expect((await runQueue(EVENTS_QUEUE, [msg])).explicitAcks).toEqual([msg.id]);
			const row = await deadLetterByMessageId(msg.id);
			expect(row?.body).toBe('{"v":3,"note":"from elsewhere"}');
		});

		it("a poison message does not hold up the good messages of its batch", async () => {
			const k = uniqueName("k");
			const good = message(eventsBody([ev(k, "upsert", Date.now(), { a: 1 })]));
			const bad = message({ v: 99 });
			const result = await runQueue(EVENTS_QUEUE, [bad, good]);
			expect([...result.explicitAcks].sort()).toEqual([bad.id, good.id].sort());
			expect(await d1Record(ds, k)).toMatchObject({ rev: 1 });
			expect(await deadLetterByMessageId(bad.id)).not.toBeNull();
			expect(await deadLetterByMessageId(good.id)).toBeNull();
		});

		it("a redelivered poison message is stored once", async () => {
			const msg = message({ v: 0 });
			await runQueue(EVENTS_QUEUE, [msg]);
			await runQueue(EVENTS_QUEUE, [{ ...msg, attempts: 2 }]);
			const { results } = await env.DB.prepare("SELECT id FROM dead_letters WHERE message_id = ?").bind(msg.id).all();
			expect(results).toHaveLength(1);
		});
	});

	describe("replaying a poison message's dead letter", () => {
		it("is a 409 saying why, not a 200 that only dead-letters it again as a new letter; a bulk replay leaves it", async () => {
			const tag = uniqueName("poison");
			const msg = message({ v: 7, note: tag });
			await runQueue(EVENTS_QUEUE, [msg]);
			const row = await deadLetterByMessageId(msg.id);
			const p = await expectProblem(await call("POST", `/v1/dead-letters/${row?.id}/replay`), 409);
			expect(p.detail).toMatch(/cannot be replayed: its body is not a Hotpath queue message/);
			expect(await expectJson<{ replayed: number }>(await call("POST", "/v1/dead-letters/replay"), 200)).toMatchObject({ replayed: expect.any(Number) });
			await new Promise((r) => setTimeout(r, 500));
			// Still one letter for it, waiting to be inspected and deleted, and not marked replayed.
			const { results } = await env.DB.prepare("SELECT replayed_at FROM dead_letters WHERE body LIKE ?").bind(`%${tag}%`).all<{ replayed_at: number | null }>();
			expect(results).toEqual([{ replayed_at: null }]);
			expect((await call("DELETE", `/v1/dead-letters/${row?.id}`)).status).toBe(204);
		});
	});

	describe("a bulk replay's page", () => {
		it("is not filled by letters it cannot replay: a letter behind newer poison letters is replayed", async () => {
			const k = uniqueName("k");
			const real = message(eventsBody([ev(k, "upsert", Date.now() - 1000, { a: 5 })]), 6);
			await runQueue(DLQ, [real]);
			for (let i = 0; i < 2; i++) await runQueue(EVENTS_QUEUE, [message({ v: 7, note: uniqueName("poison") })]);
			// A full page says more, and where the run goes on.
			expect(await expectJson<{ replayed: number }>(await call("POST", "/v1/dead-letters/replay?limit=1"), 200)).toEqual({
				replayed: 1,
				more: true,
				before: expect.any(Number),
			});
			expect((await deadLetterByMessageId(real.id))?.replayed_at).toEqual(expect.any(Number));
			await eventually(async () => (await d1Record(ds, k)) ?? undefined, { what: "the replayed event applied" });
		});
	});

	describe("error: one key that cannot be applied fails alone", () => {
		// A stored row whose merge state is unreadable stands for a key that can no longer be written.
		// Its events are kept as a dead letter with the reason; the rest of the batch is applied and acked.
		it("a key whose stored record is corrupt is dead-lettered; the other keys of the batch are applied", async () => {
			const bad = uniqueName("corrupt");
			const other = uniqueName("k");
			await env.DB.prepare(
				"INSERT INTO records (dataset, key, value, base_time, base_id, base_deleted, field_clocks, event_time, event_id, rev, updated_at) VALUES (?1, ?2, '{\"a\":1}', 1, 'x', 0, 'not json', 1, 'x', 1, 1)",
			)
				.bind(ds, bad)
				.run();
			const m1 = message(eventsBody([ev(bad, "patch", Date.now(), { a: 2 }, "bad-patch")]), 3);
			const m2 = message(eventsBody([ev(other, "upsert", Date.now(), { a: 1 })]));
			const result = await runQueue(EVENTS_QUEUE, [m1, m2]);
			expect([...result.explicitAcks].sort()).toEqual([m1.id, m2.id].sort());
			expect(result.retryMessages).toEqual([]);
			expect(JSON.parse((await d1Record(ds, other))?.value ?? "null")).toEqual({ a: 1 });
			expect(await d1Record(ds, bad)).toMatchObject({ field_clocks: "not json", rev: 1 });
			const { results } = await env.DB.prepare("SELECT body, error, datasets FROM dead_letters WHERE body LIKE ?1")
				.bind(`%${bad}%`)
				.all<{ body: string; error: string; datasets: string }>();
			expect(results).toHaveLength(1);
			expect(results[0]?.error).toMatch(/stored record cannot be read/);
			expect(JSON.parse(results[0]?.datasets ?? "null")).toEqual([ds]);
			expect(JSON.parse(results[0]?.body ?? "null").events.map((e: { id: string }) => e.id)).toEqual(["bad-patch"]);
		});
	});
});

describe("dead-letter consumer (hotpath-events-dlq)", () => {
	it("stores every message in dead_letters and acks the batch", async () => {
		const k = uniqueName("k");
		const body = eventsBody([ev(k, "upsert", Date.now(), { a: 5 })]);
		const msgs = [message(body, 6), message({ whatever: true }, 6)];
		const result = await runQueue(DLQ, msgs);
		expect(result.ackAll || msgs.every((m) => result.explicitAcks.includes(m.id))).toBe(true);
		expect(result.retryBatch.retry).toBe(false);
		expect(result.retryMessages).toEqual([]);
		const row = await deadLetterByMessageId(msgs[0]?.id as string);
		expect(row).toMatchObject({ queue: DLQ, attempts: 6, error: expect.stringMatching(/max_retries/), replayed_at: null });
		expect(JSON.parse(row?.body ?? "null")).toEqual(body);
		expect(await deadLetterByMessageId(msgs[1]?.id as string)).toMatchObject({ queue: DLQ });
		// Dead-lettered events are kept, not applied.
		expect(await d1Record(ds, k)).toBeNull();
	});

	it("a redelivered dead letter is stored once", async () => {
		const msg = message(eventsBody([]), 6);
		await runQueue(DLQ, [msg]);
		await runQueue(DLQ, [{ ...msg, attempts: 7 }]);
		const { results } = await env.DB.prepare("SELECT attempts FROM dead_letters WHERE message_id = ?").bind(msg.id).all();
		expect(results).toEqual([{ attempts: 6 }]);
	});

	// Regression (was a bug): storeDeadLetters stores JSON.stringify(m.body); a body JSON cannot encode (a BigInt, which
	// a producer using the v8 content type can send) throws, the DLQ consumer retries the batch, and
	// after max_retries the message is dropped: "never dropped" is broken, and the other messages of
	// that batch are held up with it (src/ingest/consumer.ts, storeDeadLetters; fix: fall back to a
	// lossless text form such as String(body) / a structured description when JSON.stringify throws).
	it("keeps a message whose body JSON cannot encode", async () => {
		const msg = message({ amount: 10n }, 6);
		const result = await runQueue(DLQ, [msg]);
		expect(result.retryBatch.retry).toBe(false);
		expect(await deadLetterByMessageId(msg.id)).not.toBeNull();
	});
});

describe("GET /v1/dead-letters and POST /v1/dead-letters/:id/replay", () => {
	interface Listed {
		id: number;
		queue: string;
		message_id: string;
		error: string | null;
		attempts: number;
		created_at: string;
		replayed_at: string | null;
		body: unknown;
	}
	const list = async () => (await expectJson<{ dead_letters: Listed[] }>(await call("GET", "/v1/dead-letters?limit=500"), 200)).dead_letters;

	it("lists dead letters newest first, with the body parsed", async () => {
		const k = uniqueName("k");
		const body = eventsBody([ev(k, "upsert", Date.now(), { a: 1 })]);
		const first = message(body, 6);
		const second = message("second", 6);
		await runQueue(DLQ, [first]);
		await runQueue(DLQ, [second]);
		const all = await list();
		const a = all.find((d) => d.message_id === first.id);
		const b = all.find((d) => d.message_id === second.id);
		expect(a).toEqual({
			id: expect.any(Number),
			queue: DLQ,
			message_id: first.id,
			error: expect.any(String),
			attempts: 6,
			datasets: [ds],
			created_at: expect.any(String),
			replayed_at: null,
			waiting_in_kv: false,
			body,
		});
		expect(b?.body).toBe("second");
		expect(all.indexOf(b as Listed)).toBeLessThan(all.indexOf(a as Listed));
		expect(Number.isNaN(Date.parse(a?.created_at ?? ""))).toBe(false);
	});

	it("honours limit", async () => {
		await runQueue(DLQ, [message("one", 6), message("two", 6)]);
		expect((await expectJson<{ dead_letters: Listed[] }>(await call("GET", "/v1/dead-letters?limit=1"), 200)).dead_letters).toHaveLength(1);
	});

	it("replay puts the message back on the events queue: the record then appears, and replayed_at is set", async () => {
		const k = uniqueName("k");
		const t = Date.now() - 1000;
		const msg = message(eventsBody([ev(k, "upsert", t, { a: 42 }, "replayed-event")]), 6);
		await runQueue(DLQ, [msg]);
		const row = await deadLetterByMessageId(msg.id);
		expect(row).not.toBeNull();
		expect(await d1Record(ds, k)).toBeNull();

		const res = await expectJson<{ id: number; replayed_at: string }>(await call("POST", `/v1/dead-letters/${row?.id}/replay`), 200);
		expect(res).toEqual({ id: row?.id, replayed_at: expect.any(String) });
		const applied = await waitForD1(ds, k);
		expect(applied).toMatchObject({ value: JSON.stringify({ a: 42 }), event_id: "replayed-event", event_time: t });
		expect((await waitForRecord(ds, k)).value).toEqual({ a: 42 });
		expect((await list()).find((d) => d.message_id === msg.id)?.replayed_at).toBe(res.replayed_at);
	});

	it("replaying twice is harmless (events are idempotent): the second application of the same body changes nothing", async () => {
		const k = uniqueName("k");
		const msg = message(eventsBody([ev(k, "upsert", Date.now(), { a: 1 })]), 6);
		await runQueue(DLQ, [msg]);
		const row = await deadLetterByMessageId(msg.id);
		expect((await call("POST", `/v1/dead-letters/${row?.id}/replay`)).status).toBe(200);
		await waitForD1(ds, k);
		expect((await call("POST", `/v1/dead-letters/${row?.id}/replay`)).status).toBe(200);
		// What the second replay puts on the queue is the stored body: run it through the consumer
		// here, twice more, rather than guess when the queue delivers it (Queues keep no order).
		for (let i = 0; i < 2; i++) expect((await runQueue(EVENTS_QUEUE, [message(row?.body)])).retryMessages).toEqual([]);
		expect(await d1Record(ds, k)).toMatchObject({ rev: 1, value: JSON.stringify({ a: 1 }) });
	});

	it("replay of an unknown id -> 404 problem; of a non-integer id -> 400 problem", async () => {
		await expectProblem(await call("POST", "/v1/dead-letters/999999999/replay"), 404);
		await expectProblem(await call("POST", "/v1/dead-letters/abc/replay"), 400);
		await expectProblem(await call("POST", "/v1/dead-letters/1.5/replay"), 400);
		// Other spellings of a number are not an id either (they reached letters 16, 1000 and 7).
		for (const alias of ["0x10", "1e3", "%207", "07"]) {
			const p = await expectProblem(await call("POST", `/v1/dead-letters/${alias}/replay`), 400);
			expect(p.detail).toMatch(/positive integer/);
			await expectProblem(await call("GET", `/v1/dead-letters/${alias}`), 400);
		}
	});

	it("seeded D1 rows are untouched by dead-letter handling", async () => {
		const k = uniqueName("k");
		await seedD1(ds, k, { a: 1 });
		await runQueue(DLQ, [message(eventsBody([ev(k, "upsert", 1, { a: 0 })]), 6)]);
		expect(await d1Record(ds, k)).toMatchObject({ value: JSON.stringify({ a: 1 }), rev: 1 });
	});
});
