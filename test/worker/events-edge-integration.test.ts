/** Event intake edge cases: future times, impossible dates, key conflicts, NDJSON line numbers. */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createDataset, expectJson, type IngestResult, postEvents, uniqueName, userSpec } from "./helpers";

let ds = "";
beforeAll(async () => {
	ds = await createDataset(userSpec());
});

describe("POST /v1/events edge cases", () => {
	it("refuses an event_time more than MAX_FUTURE_SKEW_SECONDS (5 min) ahead, which would freeze the record until then", async () => {
		const res = await postEvents([
			{ dataset: ds, key: uniqueName("k"), op: "upsert", value: { age: 1 }, event_time: Date.now() + 2 * 86_400_000 },
			{ dataset: ds, key: uniqueName("k"), op: "upsert", value: { age: 1 }, event_time: Date.now() + 60_000 },
			// An hour ahead was accepted before (the bound was 24 h): one skewed producer froze a key for that long.
			{ dataset: ds, key: uniqueName("k"), op: "upsert", value: { age: 1 }, event_time: new Date(Date.now() + 3_600_000).toISOString() },
			{ dataset: ds, key: uniqueName("k"), op: "upsert", value: { age: 1 }, event_time: Date.now() + 6 * 60_000 },
		]);
		expect(res.accepted).toBe(1);
		expect(res.rejected).toEqual([
			{ index: 0, error: expect.stringMatching(/more than 5 min ahead of the server's clock/) },
			{ index: 2, error: expect.stringMatching(/more than 5 min ahead/) },
			{ index: 3, error: expect.stringMatching(/more than 5 min ahead/) },
		]);
	});

	it("refuses an impossible calendar date instead of rolling it over", async () => {
		const res = await postEvents([
			{ dataset: ds, key: uniqueName("k"), op: "upsert", value: { age: 1 }, event_time: "2026-02-30T00:00:00Z" },
			{ dataset: ds, key: uniqueName("k"), op: "upsert", value: { age: 1 }, event_time: "2026-02-28T23:59:59.5+02:00" },
		]);
		expect(res.accepted).toBe(1);
		expect(res.rejected[0]).toMatchObject({ index: 0, error: expect.stringMatching(/2026-02-30.*not a valid RFC 3339/) });
	});

	it("refuses a key that disagrees with the entity key inside the value", async () => {
		const res = await postEvents([
			{ dataset: ds, key: "a", op: "upsert", value: { user_id: "b", age: 1 } },
			{ dataset: ds, key: "c", op: "upsert", value: { user_id: "c", age: 1 } },
		]);
		expect(res.accepted).toBe(1);
		expect(res.rejected).toEqual([{ index: 0, error: 'key "a" disagrees with value.user_id "b"' }]);
	});

	it("numbers NDJSON rejections by line, blank lines included", async () => {
		const line = JSON.stringify({ dataset: ds, key: uniqueName("k"), op: "upsert", value: { age: 1 } });
		const res = await expectJson<IngestResult>(
			await call("POST", "/v1/events", { body: [line, "", "{bad", "", line].join("\n"), headers: { "content-type": "application/x-ndjson" } }),
			202,
		);
		expect(res.accepted).toBe(2);
		expect(res.rejected.map((r) => r.index)).toEqual([2]);
		expect(res.rejected[0]?.error).toMatch(/^line 3 is not valid JSON/);
	});
});

describe("a queue that refuses part of a body", () => {
	it("says a resend would apply the queued events again when they have random ids, and that it is safe when they keep theirs", async () => {
		const { acceptEvents } = await import("../../src/ingest/intake");
		const { HotpathError } = await import("../../src/errors");
		// About 90 KB each: one event a message, two messages a sendBatch, so four events take two calls.
		const body = (withTime: boolean) =>
			Array.from({ length: 4 }, (_, index) => ({
				index,
				sentTime: withTime ? Date.now() - 1000 : null,
				event: { id: "", dataset: ds, key: `k${index}`, op: "upsert" as const, value: { name: "x".repeat(90_000) }, time: Date.now() },
			}));
		let calls = 0;
		const queue = {
			sendBatch: async () => {
				if (++calls % 2 === 0) throw new Error("queue is over its limit");
			},
		} as unknown as Queue<unknown>;
		const refusal = async (withTime: boolean, idempotencyKey?: string) => {
			const e = await acceptEvents(queue, body(withTime), [], { principalId: "p", ...(idempotencyKey ? { idempotencyKey } : {}) }, "event(s)").catch((x) => x);
			expect(e).toBeInstanceOf(HotpathError);
			return (e as Error).message;
		};
		const random = await refusal(false);
		expect(random).toMatch(/after 2 of 4 events/);
		expect(random).not.toMatch(/resending the request is safe/);
		expect(random).toMatch(/resending them would apply them again/);
		expect(await refusal(true)).toMatch(/resending the request is safe/);
		expect(await refusal(false, "K")).toMatch(/resending the request is safe/);
	});
});
